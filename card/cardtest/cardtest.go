// Package cardtest builds what the tests of the services on top of cards
// need (authorization, clearing, the gateway): a card service with fixed
// test keys, and cardholders with funded accounts and revealed details.
package cardtest

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/ledger"
)

// Config returns a card service configuration for tests: the given BIN
// and clock, and fixed keys that must never be used outside tests (the
// CVKs are the published CVV test pair).
func Config(bin string, now func() time.Time) card.Config {
	cvkA, _ := card.ParseSecret("0123456789ABCDEF")
	cvkB, _ := card.ParseSecret("FEDCBA9876543210")
	return card.Config{
		BIN:     bin,
		Keyring: card.Keyring{Current: "k1", Keys: map[string]card.Secret{"k1": secret(0x11)}},
		HashKey: secret(0x22),
		CVK:     card.CVK{A: cvkA, B: cvkB},
		Now:     now,
	}
}

func secret(b byte) card.Secret { return card.Secret(bytes.Repeat([]byte{b}, 32)) }

// Holder is an issued card on its own account, with its details.
type Holder struct {
	Card    *card.Card
	Account string // the card's ledger account
	PAN     string
	CVC     string
}

// Account opens a GBP ledger account with idempotency key key and rule,
// and returns its id.
func Account(t testing.TB, l ledger.Service, key string, rule ledger.Rule) string {
	t.Helper()
	a, err := l.CreateAccount(context.Background(), ledger.CreateAccountRequest{Key: key, Currency: "GBP", Rule: rule})
	if err != nil {
		t.Fatalf("CreateAccount(%s): %v", key, err)
	}
	return a.ID
}

// Issue opens GBP account "cust-n" on l, moves balance to it from fund,
// issues it a card with controls, and reveals the card's details.
func Issue(t testing.TB, l ledger.Service, cards card.Service, fund string, n int64, balance int64, ctl card.Controls) *Holder {
	t.Helper()
	ctx := context.Background()
	acct := Account(t, l, fmt.Sprintf("cust-%d", n), ledger.RuleLimit)
	if balance > 0 {
		if _, err := l.Transfer(ctx, ledger.TransferRequest{Key: fmt.Sprintf("fund-%d", n), Legs: []ledger.Leg{
			{AccountID: fund, Amount: -balance, Currency: "GBP"}, {AccountID: acct, Amount: balance, Currency: "GBP"},
		}}); err != nil {
			t.Fatalf("fund: %v", err)
		}
	}
	c, err := cards.Issue(ctx, card.IssueRequest{Key: fmt.Sprintf("issue-%d", n), AccountID: acct, CustomerID: fmt.Sprintf("cus_%d", n), Currency: "GBP", Controls: ctl})
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	d, err := cards.Reveal(ctx, card.RevealRequest{CardID: c.ID, CustomerID: c.CustomerID, Reason: "test"})
	if err != nil {
		t.Fatalf("Reveal: %v", err)
	}
	return &Holder{Card: c, Account: acct, PAN: d.PAN, CVC: d.CVC}
}
