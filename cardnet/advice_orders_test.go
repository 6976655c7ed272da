package cardnet_test

import (
	"context"
	"testing"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/cardnet"
	"github.com/corebank/corebank/errors"
)

// unreachable is an authorization service that cannot be reached for
// authorizations: nothing is decided, the gateway sees Unavailable.
type unreachable struct{ authorization.Service }

func (unreachable) Authorize(context.Context, authorization.Request) (*authorization.Decision, error) {
	return nil, errors.New(errors.Unavailable, "connection refused")
}

// The 0100 is never decided (the authorization service is away): the
// gateway answers 91 and reverses it (original_not_found). The network
// stands in and sends its 0120 reusing the original's ids, without DE90
// (iso8583.md: "with or without DE90"). The network paid: the stand-in
// must hold, as it does when the advice carries DE90.
func TestStandInReusingIDsAfterTheGatewayReversedAnUndecidedOriginal(t *testing.T) {
	for _, withDE90 := range []bool{true, false} {
		t.Run(map[bool]string{true: "with DE90", false: "without DE90"}[withDE90], func(t *testing.T) {
			b := newBank(t, bankOptions{wrap: func(s authorization.Service) authorization.Service { return unreachable{s} }})
			h := b.holder(100_00, card.Controls{})
			req := b.purchase(h, 30_00)
			b.wantCode(req, cardnet.IssuerUnavailable)
			waitLate(t, b.gw)
			b.wantBalance(h.account, 100_00, 0)
			adv := *req
			adv.MTI = cardnet.MTIAuthorizationAdvice
			adv.ResponseCode = cardnet.Approved
			adv.AuthID = "NET123"
			adv.CVC2 = ""
			if withDE90 {
				adv.Original = &cardnet.OriginalData{MTI: req.MTI, STAN: req.STAN, TransmissionTime: req.TransmissionTime, AcquirerID: req.AcquirerID}
			}
			b.wantCode(&adv, cardnet.Approved)
			b.wantBalance(h.account, 100_00, 30_00)
		})
	}
}

// The bank approved (answer lost on the way); the network, timing out,
// stood in and declined, and tells us with an 0120 (DE39 05) naming the
// original. Nobody will clear it: the hold must go.
func TestDeclinedAdviceReleasesTheHeldApproval(t *testing.T) {
	b := newBank(t, bankOptions{})
	h := b.holder(100_00, card.Controls{})
	req := b.purchase(h, 30_00)
	b.wantCode(req, cardnet.Approved)
	adv := b.follow(req, cardnet.MTIAuthorizationAdvice)
	adv.ResponseCode = cardnet.DoNotHonour
	b.wantCode(adv, cardnet.Approved)
	b.wantBalance(h.account, 100_00, 0)
	// Its retransmission releases nothing more; a network reversal of the
	// original after it finds nothing held either.
	b.wantCode(adv, cardnet.Approved)
	b.wantBalance(h.account, 100_00, 0)
	b.wantCode(b.follow(req, cardnet.MTIReversalAdvice), cardnet.Approved)
	b.wantBalance(h.account, 100_00, 0)
}

// The network stood in for an 0100 that reaches the gateway only after its
// advice (another connection, or read late behind backpressure): the
// network paid once, so one hold.
func TestOriginalAfterItsStandInHoldsNothingMore(t *testing.T) {
	b := newBank(t, bankOptions{})
	h := b.holder(100_00, card.Controls{})
	req := b.purchase(h, 30_00)
	adv := b.follow(req, cardnet.MTIAuthorizationAdvice)
	adv.ResponseCode = cardnet.Approved
	adv.AuthID = "NET123"
	b.wantCode(adv, cardnet.Approved)
	b.wantBalance(h.account, 100_00, 30_00)
	b.send(req)
	b.wantBalance(h.account, 100_00, 30_00)
}

// Review16 R3 (gateway): a pre-authorization approved and heard; the
// network stands in for an incremental (follow of the preauth, as the
// 0100 incremental is) and declines it, sending its 0120 (as 0100, plus
// DE39). The preauth's hold must stay: the hotel will clear it.
func TestDeclinedIncrementalAdviceKeepsThePreauth(t *testing.T) {
	b := newBank(t, bankOptions{})
	h := b.holder(100_00, card.Controls{})
	req := b.purchase(h, 30_00)
	req.POSCondition = "06" // pre-authorization
	b.wantCode(req, cardnet.Approved)
	adv := b.follow(req, cardnet.MTIAuthorizationAdvice)
	adv.Amount = 15_00
	adv.ResponseCode = cardnet.DoNotHonour
	b.wantCode(adv, cardnet.Approved)
	b.wantBalance(h.account, 100_00, 30_00)
}
