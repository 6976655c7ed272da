package card_test

import (
	"testing"
	"time"

	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/money"
	"pgregory.net/rapid"
)

func TestCheck(t *testing.T) {
	now := time.Date(2031, 6, 10, 12, 0, 0, 0, time.UTC)
	base := card.Card{
		ID: "card_x", Currency: "GBP", State: card.StateActive, ExpiryMonth: 1, ExpiryYear: 2034,
		Controls: card.Controls{
			BlockedMCCs:         []string{"7995"},
			PerTransactionLimit: 50_000,
			DailyLimit:          100_000,
			MonthlyLimit:        500_000,
			VelocityCount:       5,
			VelocityWindow:      time.Hour,
			DisabledChannels:    []card.Channel{card.ChannelMagstripe},
			AllowedCountries:    []string{"FR", "GB"},
		},
	}
	ok := card.Attempt{Amount: 1_000, Currency: "GBP", MCC: "5812", Channel: card.ChannelContactless, Country: "GB"}
	type tc struct {
		name  string
		card  func(c *card.Card)
		try   func(a *card.Attempt)
		spent card.Spent
		at    time.Time
		want  card.Decline
	}
	cases := []tc{
		{name: "within every control", want: card.NoDecline},
		{name: "numeric country code", try: func(a *card.Attempt) { a.Country = "250" }, want: card.NoDecline},
		{name: "alpha-3 country code", try: func(a *card.Attempt) { a.Country = "GBR" }, want: card.NoDecline},
		{name: "exactly the transaction limit", try: func(a *card.Attempt) { a.Amount = 50_000 }, want: card.NoDecline},
		{name: "exactly reaching the daily limit", try: func(a *card.Attempt) { a.Amount = 40_000 }, spent: card.Spent{Today: 60_000}, want: card.NoDecline},
		{name: "one below velocity", spent: card.Spent{CountInWindow: 4}, want: card.NoDecline},
		{name: "last day of the expiry month", at: time.Date(2034, 1, 31, 23, 59, 59, 0, time.UTC), want: card.NoDecline},
		{name: "zero controls restrict nothing", card: func(c *card.Card) { c.Controls = card.Controls{} },
			try: func(a *card.Attempt) {
				a.Amount, a.MCC, a.Channel, a.Country = money.MaxAmount, "7995", card.ChannelMagstripe, ""
			},
			spent: card.Spent{Today: 1 << 40, ThisMonth: 1 << 41, CountInWindow: 1 << 20}, want: card.NoDecline},

		{name: "blocked lost", card: func(c *card.Card) { c.State, c.BlockReason = card.StateBlocked, card.BlockLost }, want: card.CardBlockedLost},
		{name: "blocked stolen", card: func(c *card.Card) { c.State, c.BlockReason = card.StateBlocked, card.BlockStolen }, want: card.CardBlockedStolen},
		{name: "blocked stolen and expired is still stolen", card: func(c *card.Card) { c.State, c.BlockReason = card.StateBlocked, card.BlockStolen },
			at: time.Date(2035, 1, 1, 0, 0, 0, 0, time.UTC), want: card.CardBlockedStolen},
		{name: "closed", card: func(c *card.Card) { c.State = card.StateClosed }, want: card.CardClosed},
		{name: "unknown state is refused", card: func(c *card.Card) { c.State = "mystery" }, want: card.CardClosed},
		{name: "expired by the clock", at: time.Date(2034, 2, 1, 0, 0, 0, 0, time.UTC), want: card.CardExpired},
		{name: "expired state", card: func(c *card.Card) { c.State = card.StateExpired }, want: card.CardExpired},
		{name: "frozen", card: func(c *card.Card) { c.State = card.StateFrozen }, want: card.CardFrozen},
		{name: "frozen and expired is expired", card: func(c *card.Card) { c.State = card.StateFrozen },
			at: time.Date(2034, 3, 1, 0, 0, 0, 0, time.UTC), want: card.CardExpired},
		{name: "zero amount", try: func(a *card.Attempt) { a.Amount = 0 }, want: card.InvalidAmount},
		{name: "negative amount", try: func(a *card.Attempt) { a.Amount = -5 }, want: card.InvalidAmount},
		{name: "amount beyond the maximum", card: func(c *card.Card) { c.Controls = card.Controls{} },
			try: func(a *card.Attempt) { a.Amount = money.MaxAmount + 1 }, want: card.InvalidAmount},
		{name: "other currency", try: func(a *card.Attempt) { a.Currency = "EUR" }, want: card.CurrencyMismatch},
		{name: "channel disabled", try: func(a *card.Attempt) { a.Channel = card.ChannelMagstripe }, want: card.ChannelDisabled},
		{name: "unknown channel", try: func(a *card.Attempt) { a.Channel = "telepathy" }, want: card.ChannelDisabled},
		{name: "empty channel", try: func(a *card.Attempt) { a.Channel = "" }, want: card.ChannelDisabled},
		{name: "country not allowed", try: func(a *card.Attempt) { a.Country = "US" }, want: card.CountryNotAllowed},
		{name: "numeric country not allowed", try: func(a *card.Attempt) { a.Country = "840" }, want: card.CountryNotAllowed},
		{name: "unreadable country", try: func(a *card.Attempt) { a.Country = "??" }, want: card.CountryNotAllowed},
		{name: "missing country", try: func(a *card.Attempt) { a.Country = "" }, want: card.CountryNotAllowed},
		{name: "MCC blocked", try: func(a *card.Attempt) { a.MCC = "7995" }, want: card.MCCBlocked},
		{name: "over the transaction limit", try: func(a *card.Attempt) { a.Amount = 50_001 }, want: card.OverTransactionLimit},
		{name: "over the daily limit", try: func(a *card.Attempt) { a.Amount = 40_001 }, spent: card.Spent{Today: 60_000}, want: card.OverDailyLimit},
		{name: "daily limit already used up", spent: card.Spent{Today: 100_000}, want: card.OverDailyLimit},
		{name: "over the monthly limit", spent: card.Spent{Today: 0, ThisMonth: 499_500}, want: card.OverMonthlyLimit},
		{name: "huge spent cannot overflow into approval", spent: card.Spent{ThisMonth: 1<<63 - 1}, want: card.OverMonthlyLimit},
		{name: "negative spent counts as zero", try: func(a *card.Attempt) { a.Amount = 50_000 },
			spent: card.Spent{Today: -1 << 62, ThisMonth: -1 << 62}, want: card.NoDecline},
		{name: "velocity reached", spent: card.Spent{CountInWindow: 5}, want: card.VelocityExceeded},

		// The order of reasons: state before controls, cheaper controls first.
		{name: "lost beats frozen-like controls", card: func(c *card.Card) { c.State, c.BlockReason = card.StateBlocked, card.BlockLost },
			try: func(a *card.Attempt) { a.MCC, a.Channel = "7995", card.ChannelMagstripe }, want: card.CardBlockedLost},
		{name: "channel before MCC", try: func(a *card.Attempt) { a.MCC, a.Channel = "7995", card.ChannelMagstripe }, want: card.ChannelDisabled},
		{name: "transaction limit before daily", try: func(a *card.Attempt) { a.Amount = 60_000 }, spent: card.Spent{Today: 90_000}, want: card.OverTransactionLimit},
	}
	seen := map[card.Decline]bool{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cd := base
			cd.Controls.BlockedMCCs = append([]string(nil), base.Controls.BlockedMCCs...)
			if c.card != nil {
				c.card(&cd)
			}
			a := ok
			if c.try != nil {
				c.try(&a)
			}
			at := now
			if !c.at.IsZero() {
				at = c.at
			}
			if got := cd.Check(a, c.spent, at); got != c.want {
				t.Errorf("Check = %q, want %q", got, c.want)
			}
		})
		seen[c.want] = true
	}
	for _, d := range []card.Decline{card.CardFrozen, card.CardBlockedLost, card.CardBlockedStolen, card.CardClosed,
		card.CardExpired, card.MCCBlocked, card.ChannelDisabled, card.CountryNotAllowed, card.OverTransactionLimit,
		card.OverDailyLimit, card.OverMonthlyLimit, card.VelocityExceeded, card.InvalidAmount, card.CurrencyMismatch} {
		if !seen[d] {
			t.Errorf("no case for decline %q", d)
		}
	}
}

func TestExpiry(t *testing.T) {
	c := card.Card{ExpiryMonth: 12, ExpiryYear: 2033}
	if c.ExpiryYYMM() != "3312" {
		t.Errorf("ExpiryYYMM = %s, want 3312", c.ExpiryYYMM())
	}
	last := time.Date(2033, 12, 31, 23, 59, 59, 999999999, time.UTC)
	if c.ExpiredAt(last) {
		t.Error("expired on the last nanosecond of its month")
	}
	if !c.ExpiredAt(last.Add(time.Nanosecond)) {
		t.Error("not expired on the first instant of the next year")
	}
}

// An attempt that grows a payment (an incremental authorization) is
// limited as the whole payment: Held, what the payment already holds, and
// Amount together must not exceed the per-transaction limit. Held counts
// for nothing else: the daily and monthly limits see Amount, and Spent
// already holds the rest.
func TestCheckPerTransactionLimitOnTheWholePayment(t *testing.T) {
	now := time.Date(2031, 6, 10, 12, 0, 0, 0, time.UTC)
	c := card.Card{
		ID: "card_x", Currency: "GBP", State: card.StateActive, ExpiryMonth: 1, ExpiryYear: 2034,
		Controls: card.Controls{PerTransactionLimit: 300, DailyLimit: 1_000},
	}
	try := func(held, amount int64) card.Attempt {
		return card.Attempt{Amount: amount, Held: held, Currency: "GBP", MCC: "7011", Channel: card.ChannelChip, Country: "GB"}
	}
	for _, tc := range []struct {
		name   string
		held   int64
		amount int64
		spent  card.Spent
		ctl    *card.Controls
		want   card.Decline
	}{
		{name: "a new payment at the limit", amount: 300, want: card.NoDecline},
		{name: "grown to exactly the limit", held: 200, amount: 100, want: card.NoDecline},
		{name: "grown past the limit", held: 201, amount: 100, want: card.OverTransactionLimit},
		{name: "already at the limit, grown by one", held: 300, amount: 1, want: card.OverTransactionLimit},
		{name: "held alone over the limit", held: 1 << 62, amount: 1, want: card.OverTransactionLimit},
		{name: "the largest held cannot overflow into approval", held: 1<<63 - 1, amount: money.MaxAmount, want: card.OverTransactionLimit},
		{name: "negative held counts as zero", held: -1 << 62, amount: 300, want: card.NoDecline},
		{name: "negative held does not lift the limit", held: -1 << 62, amount: 301, want: card.OverTransactionLimit},
		{name: "no per-transaction limit: held does not matter", held: 1 << 40, amount: 100,
			ctl: &card.Controls{DailyLimit: 1_000}, want: card.NoDecline},
		{name: "held is not counted towards the day", held: 250, amount: 50, spent: card.Spent{Today: 950}, want: card.NoDecline},
		{name: "per-transaction before daily, as for a new payment", held: 250, amount: 100, spent: card.Spent{Today: 950}, want: card.OverTransactionLimit},
		{name: "the amount is still validated", held: 100, amount: 0, want: card.InvalidAmount},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cd := c
			if tc.ctl != nil {
				cd.Controls = *tc.ctl
			}
			if got := cd.Check(try(tc.held, tc.amount), tc.spent, now); got != tc.want {
				t.Errorf("Check(held %d, amount %d) = %q, want %q", tc.held, tc.amount, got, tc.want)
			}
		})
	}
}

// ReadsSpent is exactly when Check's answer depends on Spent: without a
// daily, monthly or velocity limit any two totals give the same answer;
// with one, an attempt Check would approve on nothing spent is declined on
// everything spent.
func TestReadsSpentIsWhatCheckReads(t *testing.T) {
	now := time.Date(2031, 6, 10, 12, 0, 0, 0, time.UTC)
	rapid.Check(t, func(t *rapid.T) {
		limit := func(name string) int64 {
			return rapid.OneOf(rapid.Just(int64(0)), rapid.Int64Range(1, money.MaxAmount)).Draw(t, name)
		}
		c := card.Card{ID: "card_x", Currency: "GBP", State: card.StateActive, ExpiryMonth: 1, ExpiryYear: 2034,
			Controls: card.Controls{
				PerTransactionLimit: limit("per_transaction"),
				DailyLimit:          limit("daily"),
				MonthlyLimit:        limit("monthly"),
				VelocityCount:       int(rapid.OneOf(rapid.Just(int64(0)), rapid.Int64Range(1, card.MaxVelocityCount)).Draw(t, "velocity")),
				VelocityWindow:      time.Hour,
			}}
		a := card.Attempt{Amount: rapid.Int64Range(1, money.MaxAmount).Draw(t, "amount"), Currency: "GBP", MCC: "5812", Channel: card.ChannelContactless, Country: "GB"}
		spent := func(name string) card.Spent {
			return card.Spent{Today: rapid.Int64Range(0, money.MaxAmount).Draw(t, name+"_today"),
				ThisMonth: rapid.Int64Range(0, money.MaxAmount).Draw(t, name+"_month"), CountInWindow: rapid.IntRange(0, 20000).Draw(t, name+"_count")}
		}
		if !c.Controls.ReadsSpent() {
			if x, y := c.Check(a, spent("x"), now), c.Check(a, spent("y"), now); x != y {
				t.Fatalf("no spend limit, yet Check answered %s and %s for two totals", x, y)
			}
			return
		}
		if c.Check(a, card.Spent{}, now) != card.NoDecline {
			return
		}
		all := card.Spent{Today: money.MaxAmount, ThisMonth: money.MaxAmount, CountInWindow: card.MaxVelocityCount}
		if d := c.Check(a, all, now); d == card.NoDecline {
			t.Fatalf("ReadsSpent, yet everything spent is approved as nothing spent is")
		}
	})
}
