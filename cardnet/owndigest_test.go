package cardnet_test

import (
	"context"
	"testing"
	"time"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/cardnet"
)

// The gateway's own reversal as every gateway before a7ee965 named it:
// "GW" and the RRN, DE7 as it is, no digest.
func legacyOwnReversal(r *cardnet.Request) authorization.ReversalRequest {
	ids := authorization.NetworkID{Acquirer: "123456", STAN: r.STAN, RRN: r.RRN, TransmissionTime: r.TransmissionTime.String()}
	n := ids
	n.RRN = "GW" + n.RRN
	return authorization.ReversalRequest{Network: n, Original: ids, OwnDecision: true}
}

// The upgrade to digest-bound own reversals is itself a restart: a request
// that the previous gateway answered 91 (its late approval reversed, or the
// reversal queued, under the old id) must still be answered 91 when the
// network's repeat reaches the upgraded gateway, not 00 for a hold that was
// released.
func TestRepeatAfterUpgradeFindsALegacyOwnReversal(t *testing.T) {
	ctx := context.Background()
	for _, carriedOut := range []bool{true, false} {
		name := "queued"
		if carriedOut {
			name = "carried out"
		}
		t.Run(name, func(t *testing.T) {
			b := newBank(t, bankOptions{})
			h := b.holder(100_00, card.Controls{})
			req := b.purchase(h, 12_00)
			// The old gateway's decision: approved (recorded), heard as 91
			// because it came late; its own reversal under the old id.
			b.wantCode(req, cardnet.Approved)
			b.wantBalance(h.account, 100_00, 12_00)
			if err := b.auth.QueueReversal(ctx, legacyOwnReversal(req)); err != nil {
				t.Fatal(err)
			}
			if carriedOut {
				b.wantRecoveredQueued(1)
				b.wantBalance(h.account, 100_00, 0)
			}
			// The upgraded gateway, without memory, hears the repeat.
			fresh := &cardnet.Gateway{Auth: b.auth, Deadline: time.Second}
			repeat := *req
			repeat.MTI = "0101"
			code := handled(t, fresh, MustMessage(t, &repeat))
			waitLate(t, fresh)
			if code != string(cardnet.IssuerUnavailable) {
				d, _ := b.recorded(req)
				t.Errorf("repeat after the upgrade answered %s, want 91 (the previous gateway answered 91 and reversed it; record now %+v)", code, d)
			}
		})
	}
}

// An incremental approved and heard; another request under its ids is
// answered 91 (its decision outlived the deadline) and the gateway's own
// reversal of it releases nothing. The network's 0400 of the incremental
// must then bring the hold back down to the pre-authorization's.
func TestNetworkReversalOfAnIncrementAfterAnotherRequestTimedOutUnderItsIDs(t *testing.T) {
	b := newBankSlowOnOthers(t)
	h := b.holder(100_00, card.Controls{})
	pre := b.purchase(h, 30_00)
	pre.POSCondition = "06"
	b.wantCode(pre, cardnet.Approved)
	inc := b.follow(pre, cardnet.MTIAuthorizationRequest)
	inc.Amount = 15_00
	b.wantCode(inc, cardnet.Approved)
	b.wantBalance(h.account, 100_00, 45_00)

	other := *inc
	other.Original = nil
	b.sendOtherPastDeadline(t, &other)
	b.wantBalance(h.account, 100_00, 45_00)

	rev := b.follow(inc, cardnet.MTIReversalRequest)
	b.wantCode(rev, cardnet.Approved)
	b.wantBalance(h.account, 100_00, 30_00)
}
