package cardnet_test

import (
	"context"
	"testing"
	"time"

	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/cardnet"
)

// The decline reasons TestGatewayDeclines does not reach, over real TCP
// with the real services: each answered with its code, nothing held.
func TestGatewayDeclinesTheOtherControls(t *testing.T) {
	b := newBank(t, bankOptions{})
	ctx := context.Background()

	t.Run("velocity is 65", func(t *testing.T) {
		h := b.holder(100_00, card.Controls{VelocityCount: 2, VelocityWindow: time.Hour})
		b.wantCode(b.purchase(h, 1_00), cardnet.Approved)
		b.wantCode(b.purchase(h, 1_00), cardnet.Approved)
		b.wantCode(b.purchase(h, 1_00), cardnet.ExceedsFrequencyLimit)
		b.wantBalance(h.account, 100_00, 2_00)
	})
	t.Run("daily limit is 61", func(t *testing.T) {
		h := b.holder(100_00, card.Controls{DailyLimit: 10_00})
		b.wantCode(b.purchase(h, 6_00), cardnet.Approved)
		b.wantCode(b.purchase(h, 5_00), cardnet.ExceedsAmountLimit)
		b.wantBalance(h.account, 100_00, 6_00)
	})
	t.Run("monthly limit is 61", func(t *testing.T) {
		h := b.holder(100_00, card.Controls{MonthlyLimit: 10_00})
		b.wantCode(b.purchase(h, 6_00), cardnet.Approved)
		b.wantCode(b.purchase(h, 5_00), cardnet.ExceedsAmountLimit)
		b.wantBalance(h.account, 100_00, 6_00)
	})
	t.Run("merchant country not allowed is 57", func(t *testing.T) {
		h := b.holder(100_00, card.Controls{AllowedCountries: []string{"FR"}})
		b.wantCode(b.purchase(h, 1_00), cardnet.NotPermittedToCardholder)
		b.wantBalance(h.account, 100_00, 0)
	})
	t.Run("closed card is 05", func(t *testing.T) {
		h := b.holder(100_00, card.Controls{})
		if _, err := b.cards.Close(ctx, card.StateRequest{Key: "close-" + h.card.ID, CardID: h.card.ID}); err != nil {
			t.Fatal(err)
		}
		b.wantCode(b.purchase(h, 1_00), cardnet.DoNotHonour)
		b.wantBalance(h.account, 100_00, 0)
	})
	t.Run("zero amount is 13", func(t *testing.T) {
		h := b.holder(100_00, card.Controls{})
		b.wantCode(b.purchase(h, 0), cardnet.InvalidAmount)
		b.wantBalance(h.account, 100_00, 0)
	})
}
