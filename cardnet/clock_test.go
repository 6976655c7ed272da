package cardnet_test

import (
	"context"
	"testing"
	"time"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/cardnet"
	cbErrors "github.com/corebank/corebank/errors"
)

// skewed is the authorization service run on a host whose clock is ahead
// of the gateway's by skew: every Decision.At it returns is its own clock's.
type skewed struct {
	authorization.Service
	skew time.Duration
}

func (s skewed) Authorize(ctx context.Context, req authorization.Request) (*authorization.Decision, error) {
	d, err := s.Service.Authorize(ctx, req)
	if d != nil {
		c := *d
		c.At = c.At.Add(s.skew)
		d = &c
	}
	return d, err
}

// A gateway restarted after answering 91 (and reversing the late approval)
// must answer a duplicate 0100 91 again, not 00 for money it released,
// whatever the authorization service's clock says: here it is a few
// seconds ahead of the gateway's (another host), so the old decision's
// time is after the gateway's start. The service says it was replayed.
func TestDuplicateAfterRestartWithServiceClockAhead(t *testing.T) {
	const deadline = 100 * time.Millisecond
	ctx := context.Background()
	b := newBank(t, bankOptions{deadline: deadline, wrap: func(s authorization.Service) authorization.Service {
		return stall{s, 3 * deadline}
	}})
	h := b.holder(100_00, card.Controls{})
	req := b.purchase(h, 12_00)
	b.wantCode(req, cardnet.IssuerUnavailable)
	waitLate(t, b.gw)
	b.wantBalance(h.account, 100_00, 0) // the late approval was reversed

	// The gateway restarts; the authorization service's host clock is 5 s
	// ahead of the gateway's (a restart takes less than that).
	fresh := &cardnet.Gateway{Auth: skewed{b.auth, 5 * time.Second}, Deadline: time.Second}
	resp := fresh.Handle(ctx, MustMessage(t, req))
	waitLate(t, fresh)
	if resp == nil || resp.Get(39) != string(cardnet.IssuerUnavailable) {
		code := "none"
		if resp != nil {
			code = resp.Get(39)
		}
		t.Errorf("duplicate after a restart answered %s, want 91 as before", code)
	}
	b.wantBalance(h.account, 100_00, 0) // nothing held for the 00
}

// failingLookups is an authorization service whose ByNetworkID fails.
type failingLookups struct{ authorization.Service }

func (failingLookups) ByNetworkID(context.Context, authorization.NetworkID) (*authorization.Decision, error) {
	return nil, cbErrors.New(cbErrors.Unavailable, "briefly away")
}

// The other direction: with the authorization service's clock behind the
// gateway's, a fresh request decided just after the gateway started is
// still fresh: it needs no lookup, so one that would fail cannot turn a
// good approval into a 91 and a reversal.
func TestFreshRequestWithServiceClockBehind(t *testing.T) {
	const deadline = 100 * time.Millisecond
	b := newBank(t, bankOptions{deadline: deadline})
	h := b.holder(100_00, card.Controls{})
	fresh := &cardnet.Gateway{Auth: skewed{failingLookups{b.auth}, -5 * time.Second}, Deadline: time.Second}
	code := handled(t, fresh, MustMessage(t, b.purchase(h, 12_00)))
	waitLate(t, fresh)
	if code != "00" {
		t.Errorf("a fresh request approved on time answered %s, want 00", code)
	}
	b.wantBalance(h.account, 100_00, 12_00)
}
