package cardnet_test

import (
	"context"
	"testing"
	"time"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/cardnet"
)

func TestIncrementalRepeatAfterRestartFindsOwnReversal(t *testing.T) {
	const deadline = 100 * time.Millisecond
	b := newBank(t, bankOptions{deadline: deadline, wrap: func(s authorization.Service) authorization.Service {
		return slowIncrement{s, 3 * deadline}
	}})
	h := b.holder(100_00, card.Controls{})
	pre := b.purchase(h, 30_00)
	pre.POSCondition = "06"
	b.wantCode(pre, cardnet.Approved)
	inc := b.follow(pre, cardnet.MTIAuthorizationRequest)
	inc.Amount = 15_00
	b.wantCode(inc, cardnet.IssuerUnavailable)
	waitLate(t, b.gw)
	b.wantBalance(h.account, 100_00, 30_00)
	fresh := &cardnet.Gateway{Auth: b.auth, Deadline: time.Second}
	repeat := *inc
	repeat.MTI = "0101"
	if code := handled(t, fresh, MustMessage(t, &repeat)); code != "91" {
		t.Errorf("incremental repeat after restart: %s, want 91", code)
	}
	waitLate(t, fresh)
	_ = context.Background()
	b.wantBalance(h.account, 100_00, 30_00)
}
