package authorization_test

import (
	"bytes"
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/money"
	"github.com/corebank/corebank/rpc"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

// ref is the reference a clearing record would carry for d.
func ref(d *authorization.Decision) authorization.ReferenceQuery {
	return authorization.ReferenceQuery{CardID: d.CardID, RRN: d.Network.RRN, AuthCode: d.AuthCode}
}

func TestByReference(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)

		t.Run("finds the approved authorization of the card", func(t *testing.T) {
			h, other := e.holder(10_000, card.Controls{}), e.holder(10_000, card.Controls{})
			want := must(t)(e.a.Authorize(ctx, e.purchase(h, 400)))
			must(t)(e.a.Authorize(ctx, e.purchase(h, 500))) // another of the card's
			must(t)(e.a.Authorize(ctx, e.purchase(other, 600)))
			got, err := e.a.ByReference(ctx, ref(want))
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("ByReference = %+v, %v; want %+v", got, err, want)
			}
		})

		t.Run("each field must match", func(t *testing.T) {
			h, other := e.holder(10_000, card.Controls{}), e.holder(10_000, card.Controls{})
			d := must(t)(e.a.Authorize(ctx, e.purchase(h, 400)))
			wrongCode := "000000"
			if d.AuthCode == wrongCode {
				wrongCode = "000001"
			}
			for name, q := range map[string]authorization.ReferenceQuery{
				"another card": {CardID: other.Card.ID, RRN: d.Network.RRN, AuthCode: d.AuthCode},
				"another rrn":  {CardID: d.CardID, RRN: "RRN999999999", AuthCode: d.AuthCode},
				"another code": {CardID: d.CardID, RRN: d.Network.RRN, AuthCode: wrongCode},
			} {
				_, err := e.a.ByReference(ctx, q)
				if errors.CodeOf(err) != errors.NotFound {
					t.Errorf("%s: error %v, want not_found", name, err)
				}
			}
		})

		t.Run("a declined decision is not returned", func(t *testing.T) {
			h := e.holder(100, card.Controls{})
			req := e.purchase(h, 5000)
			d := must(t)(e.a.Authorize(ctx, req))
			if d.Approved {
				t.Fatalf("decision %+v, want declined", d)
			}
			// A declined decision has no auth code; whatever code a record
			// claims, the declined decision is not its authorization.
			_, err := e.a.ByReference(ctx, authorization.ReferenceQuery{CardID: h.Card.ID, RRN: req.Network.RRN, AuthCode: "A1B2C3"})
			wantCode(t, err, errors.NotFound)
		})

		t.Run("an advice confirming the authorization does not make it ambiguous", func(t *testing.T) {
			h := e.holder(1000, card.Controls{})
			req := e.purchase(h, 300)
			orig := must(t)(e.a.Authorize(ctx, req))
			adv := e.standInAdvice(h, req, "")
			adv.Network.RRN = req.Network.RRN // the same transaction
			if d := must(t)(e.a.Advise(ctx, adv)); d.AuthCode != orig.AuthCode || d.OriginalID != orig.ID {
				t.Fatalf("advice %+v, want it to confirm %s with its auth code", d, orig.ID)
			}
			must(t)(e.a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: req.Network, Amount: 100}))
			got, err := e.a.ByReference(ctx, ref(orig))
			if err != nil || got.ID != orig.ID || got.Outstanding != 100 {
				t.Fatalf("ByReference = %+v, %v; want %s with 100 outstanding", got, err, orig.ID)
			}
		})

		t.Run("the network's code on an advice confirming the authorization finds it", func(t *testing.T) {
			// The bank's approval came late; the network stood in with its
			// own code, which its clearing carries, and its advice
			// confirmed the bank's approval, which holds the money.
			h := e.holder(1000, card.Controls{})
			req := e.purchase(h, 300)
			orig := must(t)(e.a.Authorize(ctx, req))
			adv := e.standInAdvice(h, req, "NET123")
			adv.Network.RRN = req.Network.RRN // the same transaction
			if d := must(t)(e.a.Advise(ctx, adv)); d.Detail != "confirms_original" || d.AuthCode != "NET123" {
				t.Fatalf("advice %+v, want it to confirm %s under the network's code", d, orig.ID)
			}
			for _, code := range []string{orig.AuthCode, "NET123"} {
				got, err := e.a.ByReference(ctx, authorization.ReferenceQuery{CardID: h.Card.ID, RRN: req.Network.RRN, AuthCode: code})
				if err != nil || got.ID != orig.ID || got.HoldID != orig.HoldID {
					t.Fatalf("ByReference with code %s = %+v, %v; want %s", code, got, err, orig.ID)
				}
			}
			// Not another card's, nor another RRN's.
			other := e.holder(1000, card.Controls{})
			for _, q := range []authorization.ReferenceQuery{
				{CardID: other.Card.ID, RRN: req.Network.RRN, AuthCode: "NET123"},
				{CardID: h.Card.ID, RRN: "RRN999999999", AuthCode: "NET123"},
			} {
				_, err := e.a.ByReference(ctx, q)
				wantCode(t, err, errors.NotFound)
			}
		})

		t.Run("two authorizations with one reference are a conflict", func(t *testing.T) {
			// A second authorizer on the same records whose auth codes are
			// always "000000", so that the same RRN collides.
			fixed, err := authorization.Open(ctx, db, authorization.Config{
				Card: e.cards, Ledger: e.led, Now: e.clk.Now, Rand: bytes.NewReader(make([]byte, 1<<10)),
				Settlement: map[money.Currency]string{"GBP": e.settlement},
			})
			if err != nil {
				t.Fatal(err)
			}
			h := e.holder(10_000, card.Controls{})
			first, second := e.purchase(h, 100), e.purchase(h, 200)
			second.Network.RRN = first.Network.RRN
			d1 := must(t)(fixed.Authorize(ctx, first))
			d2 := must(t)(fixed.Authorize(ctx, second))
			if d1.AuthCode != "000000" || d2.AuthCode != d1.AuthCode || d1.ID == d2.ID {
				t.Fatalf("decisions %+v and %+v, want two with code 000000", d1, d2)
			}
			got, err := e.a.ByReference(ctx, ref(d1))
			wantCode(t, err, errors.Conflict)
			if got != nil {
				t.Errorf("ByReference returned %+v with its conflict", got)
			}
		})

		t.Run("bad input", func(t *testing.T) {
			good := authorization.ReferenceQuery{CardID: "card_01", RRN: "RRN000000001", AuthCode: "A1B2C3"}
			for name, edit := range map[string]func(q *authorization.ReferenceQuery){
				"no card":          func(q *authorization.ReferenceQuery) { q.CardID = "" },
				"control in card":  func(q *authorization.ReferenceQuery) { q.CardID = "card\n01" },
				"no rrn":           func(q *authorization.ReferenceQuery) { q.RRN = "" },
				"overlong rrn":     func(q *authorization.ReferenceQuery) { q.RRN = strings.Repeat("1", 25) },
				"colon in rrn":     func(q *authorization.ReferenceQuery) { q.RRN = "RRN:1" },
				"no auth code":     func(q *authorization.ReferenceQuery) { q.AuthCode = "" },
				"short auth code":  func(q *authorization.ReferenceQuery) { q.AuthCode = "A1B2C" },
				"lower auth code":  func(q *authorization.ReferenceQuery) { q.AuthCode = "a1b2c3" },
				"symbol auth code": func(q *authorization.ReferenceQuery) { q.AuthCode = "A1B2C-" },
			} {
				q := good
				edit(&q)
				_, err := e.a.ByReference(ctx, q)
				if errors.CodeOf(err) != errors.BadRequest {
					t.Errorf("%s: error %v, want bad_request", name, err)
				}
			}
			_, err := e.a.ByReference(ctx, good)
			wantCode(t, err, errors.NotFound)
		})
	})
}

func TestByReferenceOverRPC(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, storetest.SQLite(t, "authorization"))
	r := rpc.NewRouter()
	authorization.Register(r, e.a)
	c := &authorization.Client{RPC: r.Service()}
	h := e.holder(1000, card.Controls{})
	d := must(t)(e.a.Authorize(ctx, e.purchase(h, 100)))
	got, err := c.ByReference(ctx, ref(d))
	if err != nil || got.ID != d.ID || got.HoldID != d.HoldID {
		t.Fatalf("ByReference over RPC = %+v, %v", got, err)
	}
	q := ref(d)
	q.AuthCode = "lower!"
	_, err = c.ByReference(ctx, q)
	wantCode(t, err, errors.BadRequest)
	q.AuthCode = "ZZZZZZ"
	_, err = c.ByReference(ctx, q)
	wantCode(t, err, errors.NotFound)
}
