package card

import (
	"slices"
	"time"

	"github.com/corebank/corebank/money"
)

// Check decides whether the card's state and controls allow a payment
// attempt at time now, given what the card has already spent. It returns
// NoDecline when they do, or else the first reason that refuses it, in this
// order: blocked (lost, stolen), closed, expired, frozen, amount and
// currency, channel, country, merchant category, per-transaction limit,
// daily limit, monthly limit, velocity.
//
// Check is a pure function of its arguments, for the authorization
// service's hot path. It knows nothing of funds: the ledger decides those.
// It is meant for debits; refunds and credits are not subject to controls.
// A channel Check does not know is refused (a control cannot allow what it
// cannot name), and so is a merchant country it cannot read when
// AllowedCountries is set. A negative Spent total, or Attempt.Held, counts
// as zero.
func (c *Card) Check(a Attempt, spent Spent, now time.Time) Decline {
	switch c.State {
	case StateBlocked:
		if c.BlockReason == BlockStolen {
			return CardBlockedStolen
		}
		return CardBlockedLost
	case StateActive, StateFrozen, StateExpired:
	default:
		return CardClosed
	}
	if c.State == StateExpired || c.ExpiredAt(now) {
		return CardExpired
	}
	if c.State == StateFrozen {
		return CardFrozen
	}
	if a.Amount <= 0 || a.Amount > money.MaxAmount {
		return InvalidAmount
	}
	if a.Currency != c.Currency {
		return CurrencyMismatch
	}
	ctl := &c.Controls
	if !knownChannel(a.Channel) || slices.Contains(ctl.DisabledChannels, a.Channel) {
		return ChannelDisabled
	}
	if len(ctl.AllowedCountries) > 0 {
		cc, ok := country(a.Country)
		if !ok || !slices.Contains(ctl.AllowedCountries, cc) {
			return CountryNotAllowed
		}
	}
	if slices.Contains(ctl.BlockedMCCs, a.MCC) {
		return MCCBlocked
	}
	// The limit is on the whole payment: what it already holds (Held, for
	// an attempt that grows one) and this. limit − held cannot overflow:
	// limit is in [0, MaxAmount], held ≥ 0; and neither can limit − spent.
	if ctl.PerTransactionLimit > 0 && a.Amount > ctl.PerTransactionLimit-max(a.Held, 0) {
		return OverTransactionLimit
	}
	if ctl.DailyLimit > 0 && a.Amount > ctl.DailyLimit-max(spent.Today, 0) {
		return OverDailyLimit
	}
	if ctl.MonthlyLimit > 0 && a.Amount > ctl.MonthlyLimit-max(spent.ThisMonth, 0) {
		return OverMonthlyLimit
	}
	if ctl.VelocityCount > 0 && spent.CountInWindow >= ctl.VelocityCount {
		return VelocityExceeded
	}
	return NoDecline
}

// ReadsSpent reports whether Check reads its Spent argument for a card with
// these controls: only a daily, monthly or velocity limit does, so a caller
// may pass a zero Spent, and skip totalling the card's spend, when it does
// not.
func (ctl Controls) ReadsSpent() bool {
	return ctl.DailyLimit > 0 || ctl.MonthlyLimit > 0 || ctl.VelocityCount > 0
}

// ExpiredAt reports whether the card is past its expiry month at t: a card
// expiring 01/2034 is valid through 2034-01-31T23:59:59.999999999Z.
func (c *Card) ExpiredAt(t time.Time) bool {
	return !t.Before(expiryEnd(c.ExpiryMonth, c.ExpiryYear))
}

// ExpiryYYMM returns the expiry as ISO 8583 carries it (DE14): "3401".
func (c *Card) ExpiryYYMM() string {
	y, m := c.ExpiryYear%100, c.ExpiryMonth
	return string([]byte{byte('0' + y/10), byte('0' + y%10), byte('0' + m/10), byte('0' + m%10)})
}

// expiryEnd is the first instant after a card's expiry month.
func expiryEnd(month, year int) time.Time {
	return time.Date(year, time.Month(month)+1, 1, 0, 0, 0, 0, time.UTC)
}

func knownChannel(ch Channel) bool {
	switch ch {
	case ChannelEcommerce, ChannelContactless, ChannelChip, ChannelMagstripe, ChannelATM:
		return true
	}
	return false
}
