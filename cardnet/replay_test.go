package cardnet_test

import (
	"testing"
	"time"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/cardnet"
)

// A gateway answers an 0100 00 on time, in this life; the network sends the
// same 0100 again (a duplicate, not a repeat). The gateway answered it
// itself and remembers no timeout for it, so no answer of its could have
// been 91: with the authorization service's ByNetworkID briefly failing,
// the duplicate is still answered 00 with the money held. (A decision made
// in the gateway's first moments, closer to its start than a request's
// time in flight, is looked up: it cannot be told from one made before.)
func TestDuplicateOfAnApprovalThisGatewayAnsweredSurvivesAFailedLookup(t *testing.T) {
	b := newBank(t, bankOptions{wrap: func(s authorization.Service) authorization.Service { return failingLookups{s} }})
	h := b.holder(100_00, card.Controls{})
	b.wantCode(b.purchase(h, 1_00), cardnet.Approved) // the gateway starts
	time.Sleep(200 * time.Millisecond)
	req := b.purchase(h, 12_00)
	b.wantCode(req, cardnet.Approved)
	b.wantBalance(h.account, 100_00, 13_00)

	resp := b.send(req) // the same 0100 again
	waitLate(t, b.gw)
	if resp.Get(39) != string(cardnet.Approved) {
		t.Errorf("duplicate of an approval this gateway answered 00 answered %s", resp.Get(39))
	}
	b.wantBalance(h.account, 100_00, 13_00)
}
