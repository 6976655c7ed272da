package clearing_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/clearing"
	"github.com/corebank/corebank/ledger"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

// financial approves a 0200 of amount pence on h: the money moves at once.
func (e *env) financial(h *holder, amount int64) *authorization.Decision {
	e.t.Helper()
	req := e.purchase(h, amount)
	req.Kind, req.Channel, req.MCC = authorization.KindFinancial, card.ChannelATM, "6011"
	d, err := e.auth.Financial(context.Background(), req)
	if err != nil || !d.Approved {
		e.t.Fatalf("Financial: %v %+v", err, d)
	}
	return d
}

// The clearings of a single-message (0200) transaction are settled within
// what it debited; beyond that, the excess is force-posted, once.
func TestSingleMessageClearings(t *testing.T) {
	storetest.Each(t, "clearing", func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)

		t.Run("equal: settled, nothing moves", func(t *testing.T) {
			h := e.holder(10_000)
			d := e.financial(h, 1000)
			rep := e.ingest(t, "eq", file("FIN-EQ", forAuth("EQ", h, d, 1000)))
			if rep.Settled != 1 || rep.Forced != 0 {
				t.Errorf("report %+v, want one settled", rep)
			}
			e.wantBalance(t, h.Account, 9000, 0)
		})

		t.Run("higher: the excess is debited and reported", func(t *testing.T) {
			h := e.holder(10_000)
			d := e.financial(h, 1000)
			content := file("FIN-HI", forAuth("HI", h, d, 5000))
			rep := e.ingest(t, "hi", content)
			r := e.records(t, "FIN-HI")["HI"]
			if rep.Forced != 1 || r.Status != clearing.StatusForced || r.Reason != clearing.ReasonBeyondDebited || !slices.Contains(r.Suspicious, clearing.ReasonOverAuthorized) {
				t.Errorf("report %+v, record %+v; want forced beyond_debited, over_authorized", rep, r)
			}
			e.wantBalance(t, h.Account, 5000, 0)
			e.ingest(t, "hi", content) // again: nothing more
			e.wantBalance(t, h.Account, 5000, 0)
		})

		t.Run("two presentments: only what goes beyond is debited", func(t *testing.T) {
			h := e.holder(10_000)
			d := e.financial(h, 1000)
			first := forAuth("P1", h, d, 600)
			first.notFinal = true
			second := forAuth("P2", h, d, 600)
			second.arn = arnFor("P1") // the same transaction's second presentment
			second.presentment = 2
			if rep := e.ingest(t, "p1", file("FIN-P1", first)); rep.Settled != 1 {
				t.Errorf("first presentment %+v, want settled", rep)
			}
			rep := e.ingest(t, "p2", file("FIN-P2", second))
			if r := e.records(t, "FIN-P2")["P2"]; rep.Forced != 1 || r.Reason != clearing.ReasonBeyondDebited {
				t.Errorf("second presentment %+v, record %+v; want 200 forced", rep, r)
			}
			e.wantBalance(t, h.Account, 10_000-1200, 0)
		})

		t.Run("another card's record with its ids does not count", func(t *testing.T) {
			a, b := e.holder(10_000), e.holder(10_000)
			d := e.financial(a, 1000)
			e.ingest(t, "wrong", file("FIN-WRONG", forAuth("WRONG", b, d, 1000))) // b's card, a's 0200 ids
			e.wantBalance(t, b.Account, 9000, 0)                                  // forced on b, flagged card_mismatch
			e.ingest(t, "right", file("FIN-RIGHT", forAuth("RIGHT", a, d, 1000)))
			if r := e.records(t, "FIN-RIGHT")["RIGHT"]; r.Status != clearing.StatusSettled {
				t.Errorf("the 0200's own clearing = %s/%s, want settled", r.Status, r.Reason)
			}
			e.wantBalance(t, a.Account, 9000, 0) // debited once, at authorization
		})

		// The excess is stored with the record's plan: a run that dies
		// after the ledger took it, and the rerun, move it once.
		t.Run("the excess survives a crash and a rerun", func(t *testing.T) {
			h := e.holder(10_000)
			d := e.financial(h, 1000)
			content := file("FIN-CRASH", forAuth("CR", h, d, 1700))
			e.flaky.calls.Store(0)
			e.flaky.fail.Store(1)
			e.flaky.after.Store(true)
			_, err := e.c.Ingest(context.Background(), clearing.IngestRequest{FileName: "crash", Content: content})
			e.flaky.fail.Store(0)
			if err == nil {
				t.Fatal("the injected crash did not stop the run")
			}
			e.wantBalance(t, h.Account, 10_000-1700, 0) // the ledger took it
			rep := e.ingest(t, "crash", content)
			if r := e.records(t, "FIN-CRASH")["CR"]; rep.Forced != 1 || r.Reason != clearing.ReasonBeyondDebited {
				t.Errorf("rerun %+v, record %+v; want forced beyond_debited", rep, r)
			}
			e.wantBalance(t, h.Account, 10_000-1700, 0)
		})

		// The network cleared 800, then 300: 1100 in all. A reversal
		// between the two lowered what the 0200 debits to 500 (500
		// refunded, of which 300 was money already settled). The
		// cardholder pays what the network paid, as on a hold.
		t.Run("cleared, partly reversed, cleared again: the cardholder pays what was cleared", func(t *testing.T) {
			h := e.holder(10_000)
			d := e.financial(h, 1000)
			first := forAuth("CRC1", h, d, 800)
			first.notFinal = true
			if rep := e.ingest(t, "crc1", file("FIN-CRC1", first)); rep.Settled != 1 {
				t.Fatalf("first presentment %+v, want settled", rep)
			}
			e.reverse(d.Network, 500)
			e.wantBalance(t, h.Account, 9500, 0)
			second := forAuth("CRC2", h, d, 300)
			second.presentment, second.arn = 2, arnFor("CRC1")
			e.ingest(t, "crc2", file("FIN-CRC2", second))
			if r := e.records(t, "FIN-CRC2")["CRC2"]; r.Status != clearing.StatusForced || r.Reason != clearing.ReasonBeyondDebited {
				t.Errorf("second presentment %s/%s, want forced beyond_debited", r.Status, r.Reason)
			}
			e.wantBalance(t, h.Account, 10_000-1100, 0)
			// A third presentment debits only itself.
			third := forAuth("CRC3", h, d, 100)
			third.presentment, third.arn = 3, arnFor("CRC1")
			e.ingest(t, "crc3", file("FIN-CRC3", third))
			e.wantBalance(t, h.Account, 10_000-1200, 0)
		})

		// An acquirer that puts a partial reversal's ids in the original
		// data names the 0200 it reversed: the 400 it still debits is
		// settled, not debited again.
		t.Run("a record naming a partial reversal's ids settles against its 0200", func(t *testing.T) {
			h := e.holder(10_000)
			d := e.financial(h, 1000)
			rev := e.reverse(d.Network, 400)
			e.ingest(t, "nrev", file("FIN-NREV", forAuth("NREV", h, rev, 400)))
			r := e.records(t, "FIN-NREV")["NREV"]
			if r.Status != clearing.StatusSettled || r.AuthorizationID != d.ID {
				t.Errorf("record %s/%s against %s, want settled against the 0200 %s", r.Status, r.Reason, r.AuthorizationID, d.ID)
			}
			e.wantBalance(t, h.Account, 9600, 0)
		})

		t.Run("reversed, then cleared: force-posted", func(t *testing.T) {
			h := e.holder(10_000)
			d := e.financial(h, 1000)
			rev := e.purchase(h, 1)
			if _, err := e.auth.Reverse(context.Background(), authorization.ReversalRequest{Network: rev.Network, Original: d.Network}); err != nil {
				t.Fatal(err)
			}
			e.wantBalance(t, h.Account, 10_000, 0)
			rep := e.ingest(t, "rev", file("FIN-REV", forAuth("REV", h, d, 1000)))
			if r := e.records(t, "FIN-REV")["REV"]; rep.Forced != 1 || r.Reason != clearing.ReasonHoldNotPending {
				t.Errorf("report %+v, record %+v; want forced hold_not_pending", rep, r)
			}
			e.wantBalance(t, h.Account, 9000, 0)
		})
	})
}

// The gateway names an acquirer without its leading zeros; a file that
// pads DE32 still finds the authorization by its network ids.
func TestZeroPaddedAcquirerMatches(t *testing.T) {
	e := newEnv(t, storetest.SQLite(t, "clearing"))
	h := e.holder(10_000)
	d := e.authorize(h, 1000)
	padded := *d
	padded.Network.Acquirer = "00000" + d.Network.Acquirer
	r := forAuth("A", h, &padded, 1000)
	r.authCode = "-" // no auth code: only the network ids identify the authorization
	content := strings.Replace(string(file("ZPAD", r)), ",-,", ",,", 1)
	rep := e.ingest(t, "zpad", []byte(content))
	if rep.Posted != 1 || e.hold(t, d.HoldID).Status != ledger.HoldPosted {
		t.Errorf("report %+v, want the authorization's hold posted", rep)
	}
	e.wantBalance(t, h.Account, 9000, 0)
}

// DE37 is format an: a retrieval reference with spaces is the network's,
// and matches as it came.
func TestRRNWithSpacesMatches(t *testing.T) {
	e := newEnv(t, storetest.SQLite(t, "clearing"))
	h := e.holder(10_000)
	req := e.purchase(h, 1000)
	req.Network.RRN = "  0012 34567"
	d := e.approve(e.auth, req)
	r := forAuth("A", h, d, 1000)
	r.refOnly = true // by RRN and auth code
	rep := e.ingest(t, "spaces", file("SPACES", r))
	if rep.Posted != 1 {
		t.Errorf("report %+v, want posted against the authorization", rep)
	}
	e.wantBalance(t, h.Account, 9000, 0)
}

// A card number in the wrong column is never echoed in an error, cut
// short or written with spaces.
func TestErrorsDoNotEchoCardNumbers(t *testing.T) {
	const pan = "4571736012345678"
	good := string(file("LK", rec{id: "1", pan: pan, amount: 1000, authCode: "A1B2C3"}))
	for name, bad := range map[string]string{
		"cut short": strings.Replace(good, ",1000,GBP,1000,GBP,", ",1000,"+strings.Repeat("X", 29)+pan+",1000,GBP,", 1),
		"spaced":    strings.Replace(good, ",1000,GBP,1000,GBP,", ",1000,4571 7360 1234 5678,1000,GBP,", 1),
		"dashed":    strings.Replace(good, ",1000,GBP,1000,GBP,", ",1000,4571-7360-1234-5678,1000,GBP,", 1),
	} {
		_, err := clearing.Parse([]byte(bad))
		if err == nil {
			t.Fatalf("%s: accepted", name)
		}
		digits := strings.Map(func(r rune) rune {
			if '0' <= r && r <= '9' {
				return r
			}
			return -1
		}, err.Error())
		if strings.Contains(err.Error(), pan[6:12]) || strings.Contains(digits, pan[6:12]) {
			t.Errorf("%s: error shows the card number's middle digits: %v", name, err)
		}
	}
}
