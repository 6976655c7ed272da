package card_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/rpc"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/sqlite"
	"github.com/corebank/corebank/store/storetest"
)

func TestIssue(t *testing.T) {
	storetest.Each(t, "card", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		clk := newClock(epoch)
		s := openCards(t, db, testConfig(t, clk))

		c := issue(t, s, "issue-1", "cus_ada")
		t.Run("makes an active card expiring N years ahead", func(t *testing.T) {
			if !strings.HasPrefix(c.ID, "card_") || c.AccountID != acct(1) || c.CustomerID != "cus_ada" || c.Currency != "GBP" {
				t.Errorf("card = %+v", c)
			}
			if c.State != card.StateActive || c.ExpiryMonth != 1 || c.ExpiryYear != 2034 {
				t.Errorf("state %s, expiry %02d/%d; want active, 01/2034", c.State, c.ExpiryMonth, c.ExpiryYear)
			}
			if !c.CreatedAt.Equal(epoch) || !c.UpdatedAt.Equal(epoch) {
				t.Errorf("created %v updated %v, want the injected clock's %v", c.CreatedAt, c.UpdatedAt, epoch)
			}
		})
		t.Run("number is 16 digits from the BIN with a valid Luhn digit", func(t *testing.T) {
			d := reveal(t, s, c)
			if len(d.PAN) != 16 || !strings.HasPrefix(d.PAN, testBIN) || !luhnValid(d.PAN) {
				t.Errorf("PAN %s: want 16 digits, BIN %s, Luhn-valid", card.Mask(d.PAN), testBIN)
			}
			if c.PANFirst6 != d.PAN[:6] || c.PANLast4 != d.PAN[12:] || c.MaskedPAN() != card.Mask(d.PAN) {
				t.Errorf("display %s does not match the number %s", c.MaskedPAN(), card.Mask(d.PAN))
			}
		})
		t.Run("Get and List return it", func(t *testing.T) {
			got, err := s.Get(ctx, c.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c) {
				t.Errorf("Get = %+v\nwant  %+v", got, c)
			}
			clk.Set(epoch.Add(time.Second))
			defer clk.Set(epoch)
			c2 := issue(t, s, "issue-2", "cus_ada")
			issue(t, s, "issue-3", "cus_bo")
			list, err := s.List(ctx, "cus_ada")
			if err != nil {
				t.Fatal(err)
			}
			if len(list) != 2 || list[0].ID != c.ID || list[1].ID != c2.ID {
				t.Errorf("List = %v, want [%s %s]", ids(list), c.ID, c2.ID)
			}
			if list, err := s.List(ctx, "cus_nobody"); err != nil || list == nil || len(list) != 0 {
				t.Errorf("List(unknown) = %v, %v; want empty, no error", list, err)
			}
			_, err = s.Get(ctx, noSuchCard)
			wantCode(t, err, errors.NotFound)
			_, err = s.Get(ctx, "")
			wantCode(t, err, errors.BadRequest)
		})
		t.Run("publishes card.issued with the masked number only", func(t *testing.T) {
			evs := outbox(t, db)
			if len(evs) == 0 || evs[0].Topic != card.TopicIssued || evs[0].Key != c.ID {
				t.Fatalf("outbox = %+v, want card.issued first", evs)
			}
			var got card.Card
			if err := json.Unmarshal(evs[0].Payload, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(&got, c) {
				t.Errorf("payload = %+v, want %+v", got, c)
			}
			pan := reveal(t, s, c).PAN
			for _, e := range evs {
				if strings.Contains(string(e.Payload), pan) {
					t.Errorf("event %s holds the full number", e.Topic)
				}
			}
		})
		t.Run("a card shows expired after its month", func(t *testing.T) {
			clk.Set(time.Date(2034, 2, 1, 0, 0, 0, 0, time.UTC))
			defer clk.Set(epoch)
			got, err := s.Get(ctx, c.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != card.StateExpired {
				t.Errorf("state = %s, want expired", got.State)
			}
		})
	})
}

func ids(cs []card.Card) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

func TestIssueNeverReusesANumber(t *testing.T) {
	storetest.Each(t, "card", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		cfg := testConfig(t, newClock(epoch))
		r := &repeatReader{n: 2}
		cfg.Rand = r
		s := openCards(t, db, cfg)

		a := issue(t, s, "a", "cus_1")
		b := issue(t, s, "b", "cus_1")
		pa, pb := reveal(t, s, a).PAN, reveal(t, s, b).PAN
		if pa != testBIN+"7777777"+pa[15:] {
			t.Fatalf("first number %s was not drawn from the repeating source", card.Mask(pa))
		}
		if pa == pb {
			t.Fatal("two cards share a number")
		}
		if r.reads < 3 {
			t.Errorf("source read %d times; the colliding draw was not retried", r.reads)
		}

		t.Run("gives up without effect when every draw collides", func(t *testing.T) {
			r.mu.Lock()
			r.n = -1
			r.mu.Unlock()
			before, events := count(t, db, "cards"), len(outbox(t, db))
			_, err := s.Issue(ctx, issueReq("c", "cus_1"))
			wantCode(t, err, errors.Internal)
			if count(t, db, "cards") != before || len(outbox(t, db)) != events || count(t, db, "card_requests") != 2 {
				t.Error("a failed issue left rows behind")
			}
			if strings.Contains(err.Error(), pa) {
				t.Error("the error holds a card number")
			}
		})

		t.Run("many cards, all distinct and Luhn-valid", func(t *testing.T) {
			r.mu.Lock()
			r.n = 0
			r.mu.Unlock()
			seen := map[string]bool{pa: true, pb: true}
			for i := range 40 {
				c := issue(t, s, fmt.Sprintf("many-%d", i), "cus_2")
				p := reveal(t, s, c).PAN
				if seen[p] || !luhnValid(p) || !strings.HasPrefix(p, testBIN) {
					t.Fatalf("card %d: number %s repeated or invalid", i, card.Mask(p))
				}
				seen[p] = true
			}
		})
	})
}

func TestVaultStoresNoPlaintext(t *testing.T) {
	storetest.Each(t, "card", func(t *testing.T, db *store.DB) {
		s := openCards(t, db, testConfig(t, newClock(epoch)))
		var pans []string
		for i := range 5 {
			c := issue(t, s, fmt.Sprintf("k%d", i), "cus_1")
			d := reveal(t, s, c)
			pans = append(pans, d.PAN)
			if _, err := s.Freeze(context.Background(), card.StateRequest{Key: fmt.Sprintf("f%d", i), CardID: c.ID}); err != nil {
				t.Fatal(err)
			}
		}
		for _, p := range pans {
			assertAbsent(t, db, "full card number", p)
			assertAbsent(t, db, "card number's middle digits", p[6:12])
		}
		for _, col := range columns(t, db) {
			// The column's own name: card_cvc_failures counts wrong CVCs
			// and holds none.
			l := strings.ToLower(col[strings.LastIndex(col, ".")+1:])
			if strings.Contains(l, "cvc") || strings.Contains(l, "cvv") {
				t.Errorf("column %s looks like a stored CVC", col)
			}
		}
	})
}

// TestCVCIsDerivedNotStored reopens the same database with another
// verification key: if the CVC were stored, Reveal would still show the
// old one.
func TestCVCIsDerivedNotStored(t *testing.T) {
	storetest.Each(t, "card", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		cfg := testConfig(t, newClock(epoch))
		s := openCards(t, db, cfg)
		c := issue(t, s, "k", "cus_1")
		d := reveal(t, s, c)
		want, err := cfg.CVK.CVV(d.PAN, c.ExpiryYYMM(), card.ServiceCodeCVV2)
		if err != nil {
			t.Fatal(err)
		}
		if d.CVC != want {
			t.Fatalf("revealed CVC is not the CVV2 of the number and expiry")
		}
		for _, try := range []struct {
			cvc  string
			want bool
		}{{want, true}, {wrongCVC(want), false}, {"", false}, {"12", false}, {"1234", false}, {"ab1", false}} {
			ok, err := s.VerifyCVC(ctx, c.ID, try.cvc)
			if err != nil || ok != try.want {
				t.Errorf("VerifyCVC(%q) = %v, %v; want %v", try.cvc, ok, err, try.want)
			}
		}
		_, err = s.VerifyCVC(ctx, noSuchCard, want)
		wantCode(t, err, errors.NotFound)

		other := cfg
		other.CVK = card.CVK{A: cfg.CVK.B, B: cfg.CVK.A}
		s2 := openCards(t, db, other)
		d2 := reveal(t, s2, c)
		want2, _ := other.CVK.CVV(d.PAN, c.ExpiryYYMM(), card.ServiceCodeCVV2)
		if d2.PAN != d.PAN || d2.CVC != want2 {
			t.Fatalf("with another CVK the CVC is not re-derived")
		}
		if ok, _ := s2.VerifyCVC(ctx, c.ID, want2); !ok {
			t.Error("the new key's CVC does not verify")
		}
	})
}

func wrongCVC(c string) string {
	return fmt.Sprintf("%03d", (int(c[0]-'0')*100+int(c[1]-'0')*10+int(c[2]-'0')+1)%1000)
}

func TestLookup(t *testing.T) {
	storetest.Each(t, "card", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s, c, pan := issueRevealed(t, db)

		got, err := s.Lookup(ctx, pan)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("Lookup = %+v, want %+v", got, c)
		}
		// Another valid number of the same BIN.
		other := pan[:14]
		if other[13] == '9' {
			other = other[:13] + "0"
		} else {
			other = other[:13] + string(other[13]+1)
		}
		other += string(card.LuhnDigit(other))
		for _, try := range []struct {
			name, pan string
			code      errors.Code
		}{
			{"unknown number", other, errors.NotFound},
			{"wrong Luhn digit", pan[:15] + string('0'+(pan[15]-'0'+1)%10), errors.NotFound},
			{"not digits", pan[:8] + "-" + pan[9:], errors.BadRequest},
			{"too short", pan[:11], errors.BadRequest},
			{"empty", "", errors.BadRequest},
		} {
			_, err := s.Lookup(ctx, try.pan)
			if errors.CodeOf(err) != try.code {
				t.Errorf("%s: error = %v, want %s", try.name, err, try.code)
			}
			if len(try.pan) > 11 && strings.Contains(err.Error(), try.pan) {
				t.Errorf("%s: error %q holds the number", try.name, err)
			}
		}
	})
}

func TestReveal(t *testing.T) {
	storetest.Each(t, "card", func(t *testing.T, db *store.DB) {
		ctx := rpc.WithCaller(context.Background(), "api")
		s := openCards(t, db, testConfig(t, newClock(epoch)))
		c := issue(t, s, "k", "cus_ada")
		baseEvents := len(outbox(t, db))

		d, err := s.Reveal(ctx, card.RevealRequest{CardID: c.ID, CustomerID: "cus_ada", Reason: "customer_app"})
		if err != nil {
			t.Fatal(err)
		}
		if d.CardID != c.ID || d.ExpiryMonth != 1 || d.ExpiryYear != 2034 || len(d.CVC) != 3 || len(d.PAN) != 16 {
			t.Errorf("details = %v", d)
		}
		t.Run("writes an audit row", func(t *testing.T) {
			var cardID, customer, reason, caller string
			var at int64
			err := db.Read.QueryRow(`SELECT card_id, customer_id, reason, caller, at FROM card_reveals`).Scan(&cardID, &customer, &reason, &caller, &at)
			if err != nil {
				t.Fatal(err)
			}
			if cardID != c.ID || customer != "cus_ada" || reason != "customer_app" || caller != "api" || at != epoch.UnixNano() {
				t.Errorf("audit row = %s %s %s %s %d", cardID, customer, reason, caller, at)
			}
		})
		t.Run("publishes card.details.revealed without the number or CVC", func(t *testing.T) {
			evs := outbox(t, db)
			if len(evs) != baseEvents+1 || evs[len(evs)-1].Topic != card.TopicRevealed {
				t.Fatalf("outbox = %d events, last %q; want one more, card.details.revealed", len(evs), evs[len(evs)-1].Topic)
			}
			p := evs[len(evs)-1].Payload
			var rv card.Revealed
			if err := json.Unmarshal(p, &rv); err != nil {
				t.Fatal(err)
			}
			if rv.CardID != c.ID || rv.CustomerID != "cus_ada" || rv.MaskedPAN != c.MaskedPAN() || rv.Reason != "customer_app" || rv.Caller != "api" || !rv.At.Equal(epoch) {
				t.Errorf("payload = %+v", rv)
			}
			if strings.Contains(string(p), d.PAN) || strings.Contains(strings.ToLower(string(p)), "cvc") {
				t.Errorf("payload %s holds the number or a CVC", p)
			}
		})
		t.Run("another customer's card is not found; the refusal is published, not audited as a reveal", func(t *testing.T) {
			audits, events := count(t, db, "card_reveals"), len(outbox(t, db))
			_, err := s.Reveal(ctx, card.RevealRequest{CardID: c.ID, CustomerID: "cus_mallory", Reason: "curious"})
			wantCode(t, err, errors.NotFound)
			_, err = s.Reveal(ctx, card.RevealRequest{CardID: noSuchCard, CustomerID: "cus_ada", Reason: "x"})
			wantCode(t, err, errors.NotFound)
			if count(t, db, "card_reveals") != audits {
				t.Error("a refused reveal was audited as a reveal")
			}
			evs := outbox(t, db)[events:]
			want := []card.RevealRefused{
				{CardID: c.ID, CustomerID: "cus_mallory", Why: card.RefusedNotTheirs, Reason: "curious", Caller: "api", At: epoch},
				{CardID: noSuchCard, CustomerID: "cus_ada", Why: card.RefusedNoSuchCard, Reason: "x", Caller: "api", At: epoch},
			}
			if len(evs) != len(want) {
				t.Fatalf("%d events after two refusals, want %d", len(evs), len(want))
			}
			for i, ev := range evs {
				var got card.RevealRefused
				if err := json.Unmarshal(ev.Payload, &got); err != nil {
					t.Fatal(err)
				}
				got.At = got.At.UTC()
				if ev.Topic != card.TopicRevealRefused || got != want[i] {
					t.Errorf("event %d: %s %+v, want %s %+v", i, ev.Topic, got, card.TopicRevealRefused, want[i])
				}
				if strings.Contains(string(ev.Payload), d.PAN) {
					t.Errorf("event %d holds the number: %s", i, ev.Payload)
				}
			}
		})
		t.Run("bad requests", func(t *testing.T) {
			for _, r := range []card.RevealRequest{
				{CardID: c.ID, Reason: "x"},
				{CardID: c.ID, CustomerID: "cus_ada"},
				{CardID: c.ID, CustomerID: "cus_ada", Reason: strings.Repeat("x", 129)},
				{CustomerID: "cus_ada", Reason: "x"},
			} {
				_, err := s.Reveal(ctx, r)
				wantCode(t, err, errors.BadRequest)
			}
		})
		t.Run("a blocked card's details are no longer shown", func(t *testing.T) {
			if _, err := s.Block(ctx, card.BlockRequest{Key: "b", CardID: c.ID, Reason: card.BlockStolen}); err != nil {
				t.Fatal(err)
			}
			events := len(outbox(t, db))
			_, err := s.Reveal(ctx, card.RevealRequest{CardID: c.ID, CustomerID: "cus_ada", Reason: "x"})
			wantCode(t, err, errors.Conflict)
			if evs := outbox(t, db)[events:]; len(evs) != 1 || evs[0].Topic != card.TopicRevealRefused || !strings.Contains(string(evs[0].Payload), `"why":"blocked"`) {
				t.Errorf("events after refusing a blocked card's details: %+v, want one reveal_refused, blocked", evs)
			}
		})
	})
}

// Rekey runs in two processes at once: when either returns, no card is
// left on the old key, and between them they moved each card once.
func TestConcurrentRekeysLeaveNoOldKey(t *testing.T) {
	storetest.Each(t, "card", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		cfg := testConfig(t, newClock(epoch))
		s1 := openCards(t, db, cfg)
		const cards = 450 // more than two of Rekey's batches
		for i := range cards {
			issue(t, s1, fmt.Sprintf("old-%d", i), "cus_1")
		}
		rotated := cfg
		rotated.Keyring = card.Keyring{Current: "k2", Keys: map[string]card.Secret{"k1": key(0x11), "k2": key(0x33)}}
		a, b := openCards(t, db, rotated), openCards(t, db, rotated)
		var wg sync.WaitGroup
		moved := make([]int, 2)
		for i, s := range []*card.Cards{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n, err := s.Rekey(ctx)
				if err != nil {
					t.Errorf("Rekey: %v", err)
				}
				moved[i] = n
				var left int
				if err := db.Read.QueryRowContext(ctx, `SELECT COUNT(*) FROM cards WHERE pan_key_id = 'k1'`).Scan(&left); err != nil {
					t.Error(err)
				}
				if left != 0 {
					t.Errorf("a Rekey returned (%d moved) with %d cards still on the old key", n, left)
				}
			}()
		}
		wg.Wait()
		if moved[0]+moved[1] != cards {
			t.Errorf("the two Rekeys moved %d and %d cards, want %d in all", moved[0], moved[1], cards)
		}
	})
}

func TestKeyRotation(t *testing.T) {
	storetest.Each(t, "card", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		cfg := testConfig(t, newClock(epoch))
		s1 := openCards(t, db, cfg)
		var old []*card.Card
		pans := map[string]string{}
		for i := range 3 {
			c := issue(t, s1, fmt.Sprintf("old-%d", i), "cus_1")
			old = append(old, c)
			pans[c.ID] = reveal(t, s1, c).PAN
		}

		rotated := cfg
		rotated.Keyring = card.Keyring{Current: "k2", Keys: map[string]card.Secret{"k1": key(0x11), "k2": key(0x33)}}
		s2 := openCards(t, db, rotated)
		fresh := issue(t, s2, "new", "cus_1")
		pans[fresh.ID] = reveal(t, s2, fresh).PAN
		if got := keyIDs(t, db); !reflect.DeepEqual(got, map[string]string{old[0].ID: "k1", old[1].ID: "k1", old[2].ID: "k1", fresh.ID: "k2"}) {
			t.Fatalf("key ids = %v; want old cards on k1, the new one on k2", got)
		}
		for _, c := range old {
			if d := reveal(t, s2, c); d.PAN != pans[c.ID] {
				t.Errorf("old card %s does not decrypt after the new key became current", c.ID)
			}
		}

		n, err := s2.Rekey(ctx)
		if err != nil || n != 3 {
			t.Fatalf("Rekey = %d, %v; want 3", n, err)
		}
		for id, k := range keyIDs(t, db) {
			if k != "k2" {
				t.Errorf("card %s still on key %s after Rekey", id, k)
			}
		}
		if n, err := s2.Rekey(ctx); err != nil || n != 0 {
			t.Errorf("second Rekey = %d, %v; want 0", n, err)
		}

		onlyNew := cfg
		onlyNew.Keyring = card.Keyring{Current: "k2", Keys: map[string]card.Secret{"k2": key(0x33)}}
		s3 := openCards(t, db, onlyNew)
		for id, pan := range pans {
			c, err := s3.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if d := reveal(t, s3, c); d.PAN != pan {
				t.Errorf("card %s reveals another number after rekeying", id)
			}
			if got, err := s3.Lookup(ctx, pan); err != nil || got.ID != id {
				t.Errorf("Lookup after rekeying = %v, %v", got, err)
			}
		}

		_, err = card.Open(ctx, db, cfg) // only k1, which no card uses any more but which lacks k2
		wantCode(t, err, errors.BadRequest)
	})
}

func keyIDs(t *testing.T, db *store.DB) map[string]string {
	t.Helper()
	rows, err := db.Read.Query(`SELECT id, pan_key_id FROM cards`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, k string
		if err := rows.Scan(&id, &k); err != nil {
			t.Fatal(err)
		}
		out[id] = k
	}
	return out
}

func TestStateTransitions(t *testing.T) {
	storetest.Each(t, "card", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		clk := newClock(epoch)
		s := openCards(t, db, testConfig(t, clk))
		n := 0
		key := func() string { n++; return fmt.Sprintf("op-%d", n) }
		type step struct {
			op     string // freeze, unfreeze, lost, stolen, close
			want   card.State
			code   errors.Code // expected error code, or ""
			events int         // state.changed events published
		}
		do := func(c *card.Card, op string) (*card.Card, error) {
			r := card.StateRequest{Key: key(), CardID: c.ID}
			switch op {
			case "freeze":
				return s.Freeze(ctx, r)
			case "unfreeze":
				return s.Unfreeze(ctx, r)
			case "close":
				return s.Close(ctx, r)
			case "lost", "stolen":
				return s.Block(ctx, card.BlockRequest{Key: r.Key, CardID: c.ID, Reason: card.BlockReason(op)})
			}
			panic(op)
		}
		run := func(t *testing.T, c *card.Card, steps []step) {
			for i, st := range steps {
				before := len(outbox(t, db))
				got, err := do(c, st.op)
				if errors.CodeOf(err) != st.code {
					t.Fatalf("step %d %s: error = %v, want %q", i, st.op, err, st.code)
				}
				now, gerr := s.Get(ctx, c.ID)
				if gerr != nil {
					t.Fatal(gerr)
				}
				if now.State != st.want {
					t.Fatalf("step %d %s: state = %s, want %s", i, st.op, now.State, st.want)
				}
				if err == nil && got.State != st.want {
					t.Fatalf("step %d %s: answered state %s, want %s", i, st.op, got.State, st.want)
				}
				evs := outbox(t, db)[before:]
				if len(evs) != st.events {
					t.Fatalf("step %d %s: %d events, want %d", i, st.op, len(evs), st.events)
				}
				if st.events == 1 {
					var sc card.StateChange
					if evs[0].Topic != card.TopicStateChanged || json.Unmarshal(evs[0].Payload, &sc) != nil || sc.To != st.want || sc.Card.ID != c.ID {
						t.Fatalf("step %d %s: event %s %s", i, st.op, evs[0].Topic, evs[0].Payload)
					}
				}
			}
		}
		t.Run("freeze and unfreeze are reversible; repeats change nothing", func(t *testing.T) {
			run(t, issue(t, s, key(), "cus_1"), []step{
				{"freeze", card.StateFrozen, "", 1},
				{"freeze", card.StateFrozen, "", 0},
				{"unfreeze", card.StateActive, "", 1},
				{"unfreeze", card.StateActive, "", 0},
				{"freeze", card.StateFrozen, "", 1},
				{"close", card.StateClosed, "", 1},
			})
		})
		t.Run("block is terminal", func(t *testing.T) {
			c := issue(t, s, key(), "cus_1")
			run(t, c, []step{
				{"freeze", card.StateFrozen, "", 1},
				{"lost", card.StateBlocked, "", 1},
				{"lost", card.StateBlocked, "", 0},
				{"stolen", card.StateBlocked, errors.Conflict, 0},
				{"unfreeze", card.StateBlocked, errors.Conflict, 0},
				{"freeze", card.StateBlocked, errors.Conflict, 0},
				{"close", card.StateBlocked, errors.Conflict, 0},
			})
			got, _ := s.Get(ctx, c.ID)
			if got.BlockReason != card.BlockLost {
				t.Errorf("block reason = %q, want lost", got.BlockReason)
			}
		})
		t.Run("close is terminal", func(t *testing.T) {
			run(t, issue(t, s, key(), "cus_1"), []step{
				{"close", card.StateClosed, "", 1},
				{"close", card.StateClosed, "", 0},
				{"unfreeze", card.StateClosed, errors.Conflict, 0},
				{"freeze", card.StateClosed, errors.Conflict, 0},
				{"stolen", card.StateClosed, errors.Conflict, 0},
			})
		})
		t.Run("an expired card can be closed or blocked but not frozen", func(t *testing.T) {
			a, b := issue(t, s, key(), "cus_1"), issue(t, s, key(), "cus_1")
			clk.Set(time.Date(2034, 2, 1, 0, 0, 0, 0, time.UTC))
			defer clk.Set(epoch)
			run(t, a, []step{
				{"freeze", card.StateExpired, errors.Conflict, 0},
				{"unfreeze", card.StateExpired, errors.Conflict, 0},
				{"close", card.StateClosed, "", 1},
			})
			run(t, b, []step{{"stolen", card.StateBlocked, "", 1}})
		})
		t.Run("another customer's card is not found and unchanged", func(t *testing.T) {
			c := issue(t, s, key(), "cus_1")
			_, err := s.Freeze(ctx, card.StateRequest{Key: key(), CardID: c.ID, CustomerID: "cus_2"})
			wantCode(t, err, errors.NotFound)
			_, err = s.Block(ctx, card.BlockRequest{Key: key(), CardID: c.ID, CustomerID: "cus_2", Reason: card.BlockLost})
			wantCode(t, err, errors.NotFound)
			got, _ := s.Get(ctx, c.ID)
			if got.State != card.StateActive {
				t.Errorf("state = %s, want active", got.State)
			}
			if got, err := s.Freeze(ctx, card.StateRequest{Key: key(), CardID: c.ID, CustomerID: "cus_1"}); err != nil || got.State != card.StateFrozen {
				t.Errorf("owner's freeze = %v, %v", got, err)
			}
		})
		t.Run("bad requests", func(t *testing.T) {
			c := issue(t, s, key(), "cus_1")
			_, err := s.Block(ctx, card.BlockRequest{Key: key(), CardID: c.ID, Reason: "bored"})
			wantCode(t, err, errors.BadRequest)
			_, err = s.Freeze(ctx, card.StateRequest{CardID: c.ID})
			wantCode(t, err, errors.BadRequest)
			_, err = s.Freeze(ctx, card.StateRequest{Key: key(), CardID: "card nope"})
			wantCode(t, err, errors.BadRequest)
			_, err = s.Close(ctx, card.StateRequest{Key: key(), CardID: noSuchCard})
			wantCode(t, err, errors.NotFound)
		})
	})
}

func TestControls(t *testing.T) {
	storetest.Each(t, "card", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := openCards(t, db, testConfig(t, newClock(epoch)))
		c := issue(t, s, "issue", "cus_1")
		if !reflect.DeepEqual(c.Controls, card.Controls{}) {
			t.Fatalf("new card's controls = %+v, want none", c.Controls)
		}
		in := card.Controls{
			BlockedMCCs:         []string{"7995", "5933", "7995"},
			PerTransactionLimit: 25_000,
			DailyLimit:          50_000,
			MonthlyLimit:        200_000,
			VelocityCount:       10,
			VelocityWindow:      time.Hour,
			DisabledChannels:    []card.Channel{card.ChannelMagstripe, card.ChannelATM, card.ChannelATM},
			AllowedCountries:    []string{"gb", "FRA", "276", "GB"},
		}
		want := card.Controls{
			BlockedMCCs:         []string{"5933", "7995"},
			PerTransactionLimit: 25_000, DailyLimit: 50_000, MonthlyLimit: 200_000,
			VelocityCount: 10, VelocityWindow: time.Hour,
			DisabledChannels: []card.Channel{card.ChannelATM, card.ChannelMagstripe},
			AllowedCountries: []string{"DE", "FR", "GB"},
		}
		t.Run("round-trip, normalised", func(t *testing.T) {
			before := len(outbox(t, db))
			got, err := s.SetControls(ctx, card.SetControlsRequest{Key: "ctl-1", CardID: c.ID, CustomerID: "cus_1", Controls: in})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Controls, want) {
				t.Errorf("controls = %+v\nwant       %+v", got.Controls, want)
			}
			stored, _ := s.Get(ctx, c.ID)
			if !reflect.DeepEqual(stored.Controls, want) {
				t.Errorf("stored controls = %+v", stored.Controls)
			}
			evs := outbox(t, db)[before:]
			var cc card.ControlsChange
			if len(evs) != 1 || evs[0].Topic != card.TopicControlsChanged || json.Unmarshal(evs[0].Payload, &cc) != nil {
				t.Fatalf("events = %+v, want one card.controls.changed", evs)
			}
			if !reflect.DeepEqual(cc.Card.Controls, want) || !reflect.DeepEqual(cc.Previous, card.Controls{}) {
				t.Errorf("event = %+v", cc)
			}
			// The same controls again change nothing and publish nothing.
			if _, err := s.SetControls(ctx, card.SetControlsRequest{Key: "ctl-2", CardID: c.ID, Controls: want}); err != nil {
				t.Fatal(err)
			}
			if len(outbox(t, db)) != before+1 {
				t.Error("setting the same controls published an event")
			}
		})
		t.Run("bad controls are refused and change nothing", func(t *testing.T) {
			bad := map[string]func(*card.Controls){
				"negative per-transaction limit": func(c *card.Controls) { c.PerTransactionLimit = -1 },
				"negative daily limit":           func(c *card.Controls) { c.DailyLimit = -100 },
				"negative monthly limit":         func(c *card.Controls) { c.MonthlyLimit = -1 },
				"limit beyond the maximum":       func(c *card.Controls) { c.DailyLimit = 1 << 62 },
				"MCC with a letter":              func(c *card.Controls) { c.BlockedMCCs = []string{"59a3"} },
				"MCC of three digits":            func(c *card.Controls) { c.BlockedMCCs = []string{"599"} },
				"MCC of five digits":             func(c *card.Controls) { c.BlockedMCCs = []string{"59933"} },
				"too many MCCs":                  func(c *card.Controls) { c.BlockedMCCs = manyMCCs(card.MaxBlockedMCCs + 1) },
				"velocity without window":        func(c *card.Controls) { c.VelocityWindow = 0 },
				"window without velocity":        func(c *card.Controls) { c.VelocityCount = 0 },
				"window too short":               func(c *card.Controls) { c.VelocityWindow = time.Second },
				"window too long":                func(c *card.Controls) { c.VelocityWindow = 40 * 24 * time.Hour },
				"negative velocity":              func(c *card.Controls) { c.VelocityCount = -1 },
				"unknown channel":                func(c *card.Controls) { c.DisabledChannels = []card.Channel{"fax"} },
				"card number as a channel":       func(c *card.Controls) { c.DisabledChannels = []card.Channel{"4571736012345678"} },
				"unknown country":                func(c *card.Controls) { c.AllowedCountries = []string{"XX"} },
				"not a country":                  func(c *card.Controls) { c.AllowedCountries = []string{"EU"} },
				"garbage country":                func(c *card.Controls) { c.AllowedCountries = []string{"Great Britain"} },
			}
			before := len(outbox(t, db))
			for name, mutate := range bad {
				ctl := want
				mutate(&ctl)
				_, err := s.SetControls(ctx, card.SetControlsRequest{Key: "bad", CardID: c.ID, Controls: ctl})
				if errors.CodeOf(err) != errors.BadRequest {
					t.Errorf("%s: error = %v, want BadRequest", name, err)
				}
				if err != nil && strings.Contains(err.Error(), "4571736012345678") {
					t.Errorf("%s: error %q shows a card number", name, err)
				}
				stored, _ := s.Get(ctx, c.ID)
				if !reflect.DeepEqual(stored.Controls, want) {
					t.Errorf("%s: controls changed to %+v", name, stored.Controls)
				}
			}
			if len(outbox(t, db)) != before {
				t.Error("refused controls published events")
			}
			// A refused request is not remembered: its key is still free.
			if _, err := s.SetControls(ctx, card.SetControlsRequest{Key: "bad", CardID: c.ID, Controls: card.Controls{DailyLimit: 1}}); err != nil {
				t.Errorf("key of a refused request: %v", err)
			}
		})
		t.Run("a closed card's controls cannot change", func(t *testing.T) {
			if _, err := s.Close(ctx, card.StateRequest{Key: "close", CardID: c.ID}); err != nil {
				t.Fatal(err)
			}
			_, err := s.SetControls(ctx, card.SetControlsRequest{Key: "ctl-3", CardID: c.ID, Controls: card.Controls{}})
			wantCode(t, err, errors.Conflict)
		})
	})
}

func manyMCCs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%04d", i)
	}
	return out
}

func TestIdempotency(t *testing.T) {
	storetest.Each(t, "card", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		clk := newClock(epoch)
		s := openCards(t, db, testConfig(t, clk))

		first := issue(t, s, "same", "cus_1")
		clk.Set(epoch.Add(time.Hour))
		again := issue(t, s, "same", "cus_1")
		if !reflect.DeepEqual(first, again) {
			t.Errorf("retry = %+v, want the original %+v", again, first)
		}
		if count(t, db, "cards") != 1 || len(outbox(t, db)) != 1 {
			t.Errorf("retry had an effect: %d cards, %d events", count(t, db, "cards"), len(outbox(t, db)))
		}
		other := issueReq("same", "cus_2")
		_, err := s.Issue(ctx, other)
		wantCode(t, err, errors.Conflict)

		fr, err := s.Freeze(ctx, card.StateRequest{Key: "f", CardID: first.ID})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Unfreeze(ctx, card.StateRequest{Key: "u", CardID: first.ID}); err != nil {
			t.Fatal(err)
		}
		// A retried freeze answers as it did, and does not freeze again.
		fr2, err := s.Freeze(ctx, card.StateRequest{Key: "f", CardID: first.ID})
		if err != nil || !reflect.DeepEqual(fr, fr2) {
			t.Errorf("retried freeze = %+v, %v; want %+v", fr2, err, fr)
		}
		if got, _ := s.Get(ctx, first.ID); got.State != card.StateActive {
			t.Errorf("a retried freeze froze the card again")
		}
		// The same key for another method is another request.
		_, err = s.Unfreeze(ctx, card.StateRequest{Key: "f", CardID: first.ID})
		wantCode(t, err, errors.Conflict)
		_, err = s.Issue(ctx, issueReq("f", "cus_1"))
		wantCode(t, err, errors.Conflict)

		t.Run("concurrent retries have one effect", func(t *testing.T) {
			var wg sync.WaitGroup
			got := make([]*card.Card, 8)
			errs := make([]error, 8)
			for i := range got {
				wg.Add(1)
				go func() {
					defer wg.Done()
					got[i], errs[i] = s.Issue(ctx, issueReq("race", "cus_3"))
				}()
			}
			wg.Wait()
			for i := range got {
				if errs[i] != nil || got[i].ID != got[0].ID {
					t.Fatalf("call %d = %v, %v; want card %s", i, got[i], errs[i], got[0].ID)
				}
			}
			if list, _ := s.List(ctx, "cus_3"); len(list) != 1 {
				t.Errorf("%d cards for one key", len(list))
			}
		})
	})
}

func TestBadInput(t *testing.T) {
	storetest.Each(t, "card", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		cfg := testConfig(t, newClock(epoch))
		t.Run("bad config", func(t *testing.T) {
			bad := map[string]func(*card.Config){
				"BIN too short":       func(c *card.Config) { c.BIN = "45717" },
				"BIN too long":        func(c *card.Config) { c.BIN = "457173601" },
				"BIN not digits":      func(c *card.Config) { c.BIN = "4571a3" },
				"no BIN":              func(c *card.Config) { c.BIN = "" },
				"expiry years":        func(c *card.Config) { c.ExpiryYears = 11 },
				"no keys":             func(c *card.Config) { c.Keyring = card.Keyring{} },
				"current key missing": func(c *card.Config) { c.Keyring.Current = "k9" },
				"short AES key": func(c *card.Config) {
					c.Keyring = card.Keyring{Current: "k", Keys: map[string]card.Secret{"k": key(1)[:16]}}
				},
				"bad key id": func(c *card.Config) {
					c.Keyring = card.Keyring{Current: "k 1", Keys: map[string]card.Secret{"k 1": key(1)}}
				},
				"short hash key":         func(c *card.Config) { c.HashKey = key(2)[:31] },
				"hash key is an AES key": func(c *card.Config) { c.HashKey = key(0x11) },
				"no CVK":                 func(c *card.Config) { c.CVK = card.CVK{} },
				"CVK halves equal":       func(c *card.Config) { c.CVK.B = c.CVK.A },
			}
			for name, mutate := range bad {
				c := cfg
				c.Keyring.Keys = map[string]card.Secret{"k1": key(0x11)}
				mutate(&c)
				_, err := card.Open(ctx, db, c)
				if errors.CodeOf(err) != errors.BadRequest {
					t.Errorf("%s: Open error = %v, want BadRequest", name, err)
				}
			}
		})
		s := openCards(t, db, cfg)
		t.Run("bad issue requests change nothing", func(t *testing.T) {
			bad := map[string]func(*card.IssueRequest){
				"no key":                 func(r *card.IssueRequest) { r.Key = "" },
				"long key":               func(r *card.IssueRequest) { r.Key = strings.Repeat("k", 129) },
				"no account":             func(r *card.IssueRequest) { r.AccountID = "" },
				"account id format":      func(r *card.IssueRequest) { r.AccountID = "12345" },
				"account id too short":   func(r *card.IssueRequest) { r.AccountID = "acc_123" },
				"account id of a hold":   func(r *card.IssueRequest) { r.AccountID = "hld_" + acct(1)[4:] },
				"account id upper case":  func(r *card.IssueRequest) { r.AccountID = "acc_" + strings.Repeat("A", 26) },
				"account id bad letter":  func(r *card.IssueRequest) { r.AccountID = "acc_" + strings.Repeat("u", 26) },
				"no customer":            func(r *card.IssueRequest) { r.CustomerID = "" },
				"customer with a space":  func(r *card.IssueRequest) { r.CustomerID = "cus 1" },
				"unknown currency":       func(r *card.IssueRequest) { r.Currency = "XXX" },
				"negative limit":         func(r *card.IssueRequest) { r.Controls.MonthlyLimit = -1 },
				"bad MCC":                func(r *card.IssueRequest) { r.Controls.BlockedMCCs = []string{"MCC1"} },
				"bad channel":            func(r *card.IssueRequest) { r.Controls.DisabledChannels = []card.Channel{"ATM"} },
				"velocity window only":   func(r *card.IssueRequest) { r.Controls.VelocityWindow = time.Hour },
				"country code too long":  func(r *card.IssueRequest) { r.Controls.AllowedCountries = []string{"GBRR"} },
				"reserved country UK":    func(r *card.IssueRequest) { r.Controls.AllowedCountries = []string{"UK"} },
				"macro-region 419":       func(r *card.IssueRequest) { r.Controls.AllowedCountries = []string{"419"} },
				"too many countries":     func(r *card.IssueRequest) { r.Controls.AllowedCountries = make([]string, card.MaxAllowedCountries+1) },
				"window without a count": func(r *card.IssueRequest) { r.Controls.VelocityCount, r.Controls.VelocityWindow = 0, time.Minute },
			}
			for name, mutate := range bad {
				r := issueReq("bad-"+name, "cus_1")
				mutate(&r)
				_, err := s.Issue(ctx, r)
				if errors.CodeOf(err) != errors.BadRequest {
					t.Errorf("%s: error = %v, want BadRequest", name, err)
				}
			}
			if n := count(t, db, "cards") + count(t, db, "card_requests") + count(t, db, "outbox"); n != 0 {
				t.Errorf("refused requests left %d rows", n)
			}
		})
	})
}

// TestSQLiteFilesHoldNoPAN searches the database files themselves, WAL
// included, for the card numbers: the strongest form of "never stored in
// clear" on the embedded engine.
func TestSQLiteFilesHoldNoPAN(t *testing.T) {
	dir := t.TempDir()
	db, err := sqlite.Open(context.Background(), dir, "card")
	if err != nil {
		t.Fatal(err)
	}
	s := openCards(t, db, testConfig(t, newClock(epoch)))
	var pans []string
	for i := range 5 {
		c := issue(t, s, fmt.Sprintf("k%d", i), "cus_1")
		pans = append(pans, reveal(t, s, c).PAN)
		if _, err := s.Lookup(context.Background(), pans[i]); err != nil {
			t.Fatal(err)
		}
	}
	check := func(when string) {
		files, err := filepath.Glob(filepath.Join(dir, "*"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no database files: %v", err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range pans {
				if strings.Contains(string(b), p) {
					t.Errorf("%s: %s holds a full card number", when, filepath.Base(f))
				}
			}
		}
	}
	check("before close")
	if err := db.Close(); err != nil { // checkpoints the WAL into the main file
		t.Fatal(err)
	}
	check("after close")
}

func TestNothingPrintsThePAN(t *testing.T) {
	storetest.Each(t, "card", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := openCards(t, db, testConfig(t, newClock(epoch)))
		c := issue(t, s, "k", "cus_1")
		d := reveal(t, s, c)
		if _, err := s.Block(ctx, card.BlockRequest{Key: "b", CardID: c.ID, Reason: card.BlockLost}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Lookup(ctx, d.PAN)
		if err != nil {
			t.Fatal(err)
		}
		j, _ := json.Marshal(got)
		outs := []string{fmt.Sprint(got), fmt.Sprintf("%+v", got), fmt.Sprintf("%#v", got), string(j), fmt.Sprint(d), fmt.Sprintf("%+v", *d)}
		outs = append(outs, logged(func(l *slog.Logger) { l.Info("card", "card", got, "details", d, "pan", card.PAN(d.PAN)) })...)
		for _, e := range outbox(t, db) {
			outs = append(outs, string(e.Payload))
		}
		_, err = s.Reveal(ctx, card.RevealRequest{CardID: c.ID, CustomerID: "cus_1", Reason: "x"})
		outs = append(outs, err.Error())
		for _, out := range outs {
			if strings.Contains(out, d.PAN) {
				t.Errorf("output holds the full number: %s", out)
			}
		}
	})
}

// Wrong CVCs are counted; ten within a day of one another lock the check
// for a day, the right CVC included, so the 1,000 CVCs cannot be tried.
func TestCVCFailuresLockTheCheck(t *testing.T) {
	storetest.Each(t, "card", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		clk := newClock(epoch)
		cfg := testConfig(t, clk)
		s := openCards(t, db, cfg)
		c := issue(t, s, "k", "cus_1")
		right := reveal(t, s, c).CVC
		verify := func(cvc string, want bool) {
			t.Helper()
			if ok, err := s.VerifyCVC(ctx, c.ID, cvc); err != nil || ok != want {
				t.Fatalf("VerifyCVC(%s) = %v, %v; want %v", map[bool]string{true: "right", false: "wrong"}[cvc == right], ok, err, want)
			}
		}
		wrong := wrongCVC(right)

		// Nine typos, then the right one: accepted, and the count cleared.
		for range card.DefaultMaxCVCFailures - 1 {
			verify(wrong, false)
		}
		verify(right, true)
		for range card.DefaultMaxCVCFailures - 1 {
			verify(wrong, false)
		}
		verify(right, true)
		if published(t, db, card.TopicCVCLocked) != 0 {
			t.Fatalf("locked after typos that never reached ten")
		}

		// Wrong ones a day and more apart do not add up.
		for range card.DefaultMaxCVCFailures {
			verify(wrong, false)
			clk.Set(clk.Now().Add(card.DefaultCVCFailureWindow + time.Second))
		}
		verify(right, true)

		// Ten within a day: locked, the right CVC refused too, one event.
		for range card.DefaultMaxCVCFailures {
			verify(wrong, false)
		}
		verify(right, false)
		clk.Set(clk.Now().Add(card.DefaultCVCFailureWindow - time.Minute))
		verify(right, false)
		if n := published(t, db, card.TopicCVCLocked); n != 1 {
			t.Errorf("%d card.cvc.locked events, want 1", n)
		}
		// A day after the last wrong one: open again.
		clk.Set(clk.Now().Add(2 * time.Minute))
		verify(right, true)
		verify(wrong, false)
		verify(right, true)

		// Locked again, then a wrong guess exactly a day after the last:
		// the lock has ended, so it counts afresh (one, not eleven, which
		// would lock the card for another day without an event).
		for range card.DefaultMaxCVCFailures {
			verify(wrong, false)
		}
		clk.Set(clk.Now().Add(card.DefaultCVCFailureWindow))
		verify(wrong, false)
		verify(right, true)
		if n := published(t, db, card.TopicCVCLocked); n != 2 {
			t.Errorf("%d card.cvc.locked events, want 2", n)
		}
	})
}

// Guesses sent at once are judged one after another against the count: no
// more than the limit are ever compared, and the card ends locked.
func TestCVCGuessesAtOnceMeetTheLock(t *testing.T) {
	storetest.Each(t, "card", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := openCards(t, db, testConfig(t, newClock(epoch)))
		c := issue(t, s, "k", "cus_1")
		right := reveal(t, s, c).CVC
		var wg sync.WaitGroup
		start := make(chan struct{})
		cvc := right
		for range 100 {
			cvc = wrongCVC(cvc) // distinct wrong CVCs
			wg.Go(func() {
				<-start
				if ok, err := s.VerifyCVC(ctx, c.ID, cvc); err != nil || ok {
					t.Errorf("VerifyCVC(wrong) = %v, %v", ok, err)
				}
			})
		}
		close(start)
		wg.Wait()
		failures := cvcFailures(t, db, c.ID)
		// A guess refused by the lock is not counted: more than the limit
		// counted means guesses were compared past it.
		if failures != card.DefaultMaxCVCFailures {
			t.Fatalf("%d wrong CVCs counted, want exactly %d: the lock let guesses past it", failures, card.DefaultMaxCVCFailures)
		}
		if ok, err := s.VerifyCVC(ctx, c.ID, right); err != nil || ok {
			t.Fatalf("right CVC after the burst = %v, %v; want refused (locked)", ok, err)
		}
	})
}

// A HashKey other than the one the stored lookup hashes were made with
// would make every card unfindable: Open refuses it.
func TestOpenRefusesAnotherHashKey(t *testing.T) {
	storetest.Each(t, "card", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		cfg := testConfig(t, newClock(epoch))
		s := openCards(t, db, cfg)
		c := issue(t, s, "k", "cus_1")
		pan := reveal(t, s, c).PAN

		other := cfg
		other.HashKey = key(0x44)
		if _, err := card.Open(ctx, db, other); !errors.Is(err, errors.BadRequest) {
			t.Fatalf("Open with another HashKey = %v, want bad_request", err)
		}
		// The right one still opens, and finds the card.
		again, err := card.Open(ctx, db, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := again.Lookup(ctx, pan); err != nil || got.ID != c.ID {
			t.Fatalf("Lookup after reopening = %v, %v", got, err)
		}
	})
}

// Open refuses to start rather than fail every payment of a card whose key
// it cannot use: a keyring whose k2 is another key under the same id (a
// key generated twice during a rotation, one per host) is refused, though
// the first card by id is sealed with k1, which is right.
func TestOpenRefusesAWrongKeyUnderAKnownID(t *testing.T) {
	storetest.Each(t, "card", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		clk := newClock(epoch)
		cfg := testConfig(t, clk)
		s1 := openCards(t, db, cfg)
		issue(t, s1, "old", "cus_1") // sealed with k1, the first card by id

		clk.Set(epoch.Add(time.Hour))
		rotated := cfg
		rotated.Keyring = card.Keyring{Current: "k2", Keys: map[string]card.Secret{"k1": key(0x11), "k2": key(0x33)}}
		s2 := openCards(t, db, rotated)
		c := issue(t, s2, "new", "cus_1") // sealed with k2
		d := reveal(t, s2, c)

		wrong := cfg
		wrong.Keyring = card.Keyring{Current: "k2", Keys: map[string]card.Secret{"k1": key(0x11), "k2": key(0x44)}}
		s3, err := card.Open(ctx, db, wrong)
		if errors.Is(err, errors.BadRequest) {
			return // refused to start, as documented
		}
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		_, cvcErr := s3.VerifyCVC(ctx, c.ID, d.CVC)
		_, revErr := s3.Reveal(ctx, card.RevealRequest{CardID: c.ID, CustomerID: "cus_1", Reason: "test"})
		t.Errorf("Open with a wrong k2 started; then VerifyCVC(right CVC) = %v, Reveal = %v", cvcErr, revErr)
	})
}

// Open checks the keys stored cards are sealed with in one query, however
// many key ids there are: the first card (by id) of each key id is opened,
// and the first of all checks the hash key.
func TestOpenChecksKeysInOneQuery(t *testing.T) {
	storetest.Each(t, "card", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		clk := newClock(epoch)
		cfg := testConfig(t, clk)
		ring := map[string]card.Secret{}
		var cards []*card.Card
		for i, k := range []string{"k1", "k2", "k3"} {
			ring[k] = key(byte(0x11 + 0x22*i)) // 0x11, 0x33, 0x55: never the hash key's 0x22
			cfg.Keyring = card.Keyring{Current: k, Keys: maps.Clone(ring)}
			clk.Set(epoch.Add(time.Duration(i) * time.Hour))
			s := openCards(t, db, cfg)
			cards = append(cards, issue(t, s, "a-"+k, "cus_1"), issue(t, s, "b-"+k, "cus_1"))
		}
		if got := slices.Sorted(maps.Values(keyIDs(t, db))); !slices.Equal(got, []string{"k1", "k1", "k2", "k2", "k3", "k3"}) {
			t.Fatalf("key ids %v, want two cards on each of k1, k2, k3", got)
		}

		ldb, log := recorded(t, db)
		s := openCards(t, ldb, cfg)
		if q := log.matching("FROM cards"); len(q) != 1 {
			t.Errorf("Open read the cards table %d times, want once: %q", len(q), q)
		}
		for _, c := range cards {
			if d := reveal(t, s, c); len(d.PAN) != 16 {
				t.Errorf("card %s: details %v", c.ID, d)
			}
		}

		// The one query still finds a wrong key under a key id that is not
		// the first card's (the other refusals: TestKeyRotation,
		// TestOpenRefusesAnotherHashKey).
		bad := cfg
		bad.Keyring = card.Keyring{Current: "k3", Keys: map[string]card.Secret{"k1": key(0x11), "k2": key(0x33), "k3": key(0x66)}}
		_, err := card.Open(ctx, db, bad)
		wantCode(t, err, errors.BadRequest)
	})
}

// A card number put where a card id goes (an app or a back-office tool
// with the number at hand) is refused as malformed by every method that
// takes a card id: it is never echoed in the answer, and a refused reveal
// writes no event holding it.
func TestCardNumberAsCardIDIsRefused(t *testing.T) {
	storetest.Each(t, "card", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s, _, pan := issueRevealed(t, db)
		events := len(outbox(t, db))
		_, errReveal := s.Reveal(ctx, card.RevealRequest{CardID: pan, CustomerID: "cus_1", Reason: "show card"})
		_, errGet := s.Get(ctx, pan)
		_, errCVC := s.VerifyCVC(ctx, pan, "123")
		_, errFreeze := s.Freeze(ctx, card.StateRequest{Key: "k2", CardID: pan})
		for name, err := range map[string]error{"Reveal": errReveal, "Get": errGet, "VerifyCVC": errCVC,
			"CountFailedCheck": s.CountFailedCheck(ctx, pan), "Freeze": errFreeze} {
			wantCode(t, err, errors.BadRequest)
			if strings.Contains(err.Error(), pan[6:12]) {
				t.Errorf("%s: the refusal echoes the card number: %v", name, err)
			}
		}
		all := outbox(t, db)
		if len(all) != events {
			t.Errorf("%d events written by the refusals, want none", len(all)-events)
		}
		for _, e := range all {
			if strings.Contains(e.Key, pan) || strings.Contains(string(e.Payload), pan) {
				t.Errorf("outbox event %s holds the full card number", e.Topic)
			}
		}
	})
}

// A reveal refused for what it asked writes its
// card.details.reveal_refused event in the transaction that refused it,
// through the outbox, and wakes the relay: one transaction per refusal, as
// per reveal. The why of a blocked or closed card is the state's word.
func TestRefusedRevealIsOneTransaction(t *testing.T) {
	storetest.Each(t, "card", func(t *testing.T, db *store.DB) {
		ctx := rpc.WithCaller(context.Background(), "api")
		ldb, log := recorded(t, db)
		var notified atomic.Int64 // Notify calls
		cfg := testConfig(t, newClock(epoch))
		cfg.Notify = func() { notified.Add(1) }
		s := openCards(t, ldb, cfg)
		ada := issue(t, s, "ada", "cus_ada")
		blocked := issue(t, s, "blocked", "cus_ada")
		closed := issue(t, s, "closed", "cus_ada")
		if _, err := s.Block(ctx, card.BlockRequest{Key: "b", CardID: blocked.ID, Reason: card.BlockLost}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Close(ctx, card.StateRequest{Key: "c", CardID: closed.ID}); err != nil {
			t.Fatal(err)
		}
		for _, try := range []struct {
			name string
			req  card.RevealRequest
			code errors.Code
			why  string
		}{
			{"another customer's card", card.RevealRequest{CardID: ada.ID, CustomerID: "cus_mallory", Reason: "curious"}, errors.NotFound, "another_customers_card"},
			{"no such card", card.RevealRequest{CardID: noSuchCard, CustomerID: "cus_ada", Reason: "x"}, errors.NotFound, "no_such_card"},
			{"blocked", card.RevealRequest{CardID: blocked.ID, CustomerID: "cus_ada", Reason: "app"}, errors.Conflict, "blocked"},
			{"closed", card.RevealRequest{CardID: closed.ID, CustomerID: "cus_ada", Reason: "app"}, errors.Conflict, "closed"},
		} {
			t.Run(try.name, func(t *testing.T) {
				before := len(outbox(t, db))
				n := notified.Load()
				log.reset()
				_, err := s.Reveal(ctx, try.req)
				if errors.CodeOf(err) != try.code {
					t.Fatalf("Reveal: %v, want %s", err, try.code)
				}
				if got := log.transactions(); got != 1 {
					t.Errorf("%d transactions for a refused reveal, want 1: the refusal and its event", got)
				}
				evs := outbox(t, db)[before:]
				if len(evs) != 1 || evs[0].Topic != card.TopicRevealRefused || evs[0].Key != try.req.CardID {
					t.Fatalf("events %+v, want one %s keyed %s", evs, card.TopicRevealRefused, try.req.CardID)
				}
				var got card.RevealRefused
				if err := json.Unmarshal(evs[0].Payload, &got); err != nil {
					t.Fatal(err)
				}
				want := card.RevealRefused{CardID: try.req.CardID, CustomerID: try.req.CustomerID, Why: try.why, Reason: try.req.Reason, Caller: "api", At: epoch}
				got.At = got.At.UTC()
				if got != want {
					t.Errorf("payload %+v, want %+v", got, want)
				}
				if got := notified.Load() - n; got != 1 {
					t.Errorf("Notify called %d times, want once", got)
				}
			})
		}
		if n := count(t, db, "card_reveals"); n != 0 {
			t.Errorf("%d reveals audited, want none: every one was refused", n)
		}
		log.reset()
		reveal(t, s, ada)
		if got := log.transactions(); got != 1 {
			t.Errorf("%d transactions for a reveal, want 1", got)
		}
	})
}

// A failed check of a card's other data (authorization's wrong expiry)
// counts towards the CVC lock as a wrong CVC does: mixed, they lock the
// check at the same threshold; a right CVC before then clears them; while
// locked, nothing more is counted. It needs no card number: it counts on a
// card whose sealed number no longer opens.
func TestCountFailedCheck(t *testing.T) {
	storetest.Each(t, "card", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		clk := newClock(epoch)
		s := openCards(t, db, testConfig(t, clk))
		c := issue(t, s, "k", "cus_1")
		right := reveal(t, s, c).CVC
		wrong := wrongCVC(right)
		verify := func(cvc string, want bool) {
			t.Helper()
			if ok, err := s.VerifyCVC(ctx, c.ID, cvc); err != nil || ok != want {
				t.Fatalf("VerifyCVC(%s) = %v, %v; want %v", map[bool]string{true: "right", false: "wrong"}[cvc == right], ok, err, want)
			}
		}
		fail := func(id string) {
			t.Helper()
			if err := s.CountFailedCheck(ctx, id); err != nil {
				t.Fatalf("CountFailedCheck: %v", err)
			}
		}

		// One short of the limit, mixed: not locked; the right CVC clears.
		for i := range card.DefaultMaxCVCFailures - 1 {
			if i%2 == 0 {
				fail(c.ID)
			} else {
				verify(wrong, false)
			}
		}
		if n := cvcFailures(t, db, c.ID); n != card.DefaultMaxCVCFailures-1 {
			t.Fatalf("%d failures counted, want %d", n, card.DefaultMaxCVCFailures-1)
		}
		verify(right, true)
		if n := cvcFailures(t, db, c.ID); n != 0 {
			t.Fatalf("%d failures after the right CVC, want 0", n)
		}

		// The limit, mixed, ending with a failed check: locked.
		for i := range card.DefaultMaxCVCFailures {
			if i%2 == 1 {
				fail(c.ID)
			} else {
				verify(wrong, false)
			}
		}
		if n := published(t, db, card.TopicCVCLocked); n != 1 {
			t.Fatalf("%d card.cvc.locked events, want 1", n)
		}
		verify(right, false)
		fail(c.ID) // refused by the lock: not counted
		if n := cvcFailures(t, db, c.ID); n != card.DefaultMaxCVCFailures {
			t.Errorf("%d failures counted, want %d: none while locked", n, card.DefaultMaxCVCFailures)
		}
		clk.Set(clk.Now().Add(card.DefaultCVCFailureWindow + time.Second))
		verify(right, true)

		// Failed checks alone lock it too.
		for range card.DefaultMaxCVCFailures {
			fail(c.ID)
		}
		verify(right, false)
		if n := published(t, db, card.TopicCVCLocked); n != 2 {
			t.Errorf("%d card.cvc.locked events, want 2", n)
		}

		// No card number is read: a card whose sealed number does not
		// open is counted all the same.
		broken := issue(t, s, "broken", "cus_1")
		if _, err := db.Write.ExecContext(ctx, db.Rebind(`UPDATE cards SET pan_ct = ? WHERE id = ?`), []byte("not a ciphertext at all, far too long to be truncated"), broken.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.VerifyCVC(ctx, broken.ID, right); errors.CodeOf(err) != errors.Internal {
			t.Fatalf("VerifyCVC of a card whose number does not open: %v, want internal", err)
		}
		fail(broken.ID)
		if n := cvcFailures(t, db, broken.ID); n != 1 {
			t.Errorf("%d failures counted for the broken card, want 1", n)
		}

		wantCode(t, s.CountFailedCheck(ctx, noSuchCard), errors.NotFound)
		if n := cvcFailures(t, db, noSuchCard); n != 0 {
			t.Errorf("%d failures counted for a card that does not exist", n)
		}
		wantCode(t, s.CountFailedCheck(ctx, ""), errors.BadRequest)
		wantCode(t, s.CountFailedCheck(ctx, "card nope"), errors.BadRequest)
	})
}
