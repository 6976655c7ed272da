package ledger

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/idempotency"
	"github.com/corebank/corebank/money"
)

// Limits on what a request may carry.
const (
	MaxKeyLen         = idempotency.MaxKeyLen
	MaxLegs           = 16
	MaxMetadataPairs  = 16
	MaxMetadataKeyLen = 64
	MaxMetadataValLen = 256
	MaxOwnerLen       = 128
)

func badf(format string, args ...any) error { return errors.Errorf(errors.BadRequest, format, args...) }

func checkKey(key string) error { return idempotency.CheckKey(key) }

func checkID(what, id string) error {
	if id == "" {
		return badf("%s is required", what)
	}
	if len(id) > MaxKeyLen || !idempotency.Printable(id) {
		return badf("%s is malformed", what)
	}
	return nil
}

// Times the ledger stores are unix nanoseconds: int64 reaches 2262. Ours
// stop at 2200.
var (
	minTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

func checkTime(what string, t time.Time) error {
	if t.Before(minTime) || !t.Before(maxTime) {
		return badf("%s must be between 1970 and 2200", what)
	}
	return nil
}

func checkAmount(what string, a int64) error {
	if a <= 0 {
		return badf("%s must be positive", what)
	}
	if a > money.MaxAmount {
		return badf("%s exceeds the maximum of %d", what, money.MaxAmount)
	}
	return nil
}

func checkCurrency(c money.Currency) error {
	if !c.Valid() {
		return badf("unsupported currency %q", c)
	}
	return nil
}

func checkMetadata(m map[string]string) error {
	if len(m) > MaxMetadataPairs {
		return badf("metadata has more than %d pairs", MaxMetadataPairs)
	}
	for k, v := range m {
		if k == "" || len(k) > MaxMetadataKeyLen || !idempotency.Printable(k) {
			return badf("metadata key %.16q must be 1 to %d bytes of printable UTF-8", k, MaxMetadataKeyLen)
		}
		if len(v) > MaxMetadataValLen || !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
			return badf("metadata value for %.16q must be at most %d bytes of UTF-8 without NUL", k, MaxMetadataValLen)
		}
	}
	return nil
}

func (r *CreateAccountRequest) validate() error {
	if err := checkKey(r.Key); err != nil {
		return err
	}
	if err := checkCurrency(r.Currency); err != nil {
		return err
	}
	if len(r.Owner) > MaxOwnerLen || !idempotency.Printable(r.Owner) {
		return badf("owner must be at most %d bytes of printable UTF-8", MaxOwnerLen)
	}
	switch r.Rule {
	case RuleLimit:
		if r.OverdraftLimit < 0 || r.OverdraftLimit > money.MaxAmount {
			return badf("overdraft_limit must be between 0 and %d", money.MaxAmount)
		}
	case RuleNone:
		if r.OverdraftLimit != 0 {
			return badf("overdraft_limit applies only to rule %q", RuleLimit)
		}
	default:
		return badf("rule must be %q or %q", RuleLimit, RuleNone)
	}
	return nil
}

func (r *CloseAccountRequest) validate() error {
	if err := checkKey(r.Key); err != nil {
		return err
	}
	return checkID("account_id", r.AccountID)
}

func (r *TransferRequest) validate() error {
	if err := checkKey(r.Key); err != nil {
		return err
	}
	if len(r.Legs) < 2 {
		return badf("a transfer needs at least two legs")
	}
	if len(r.Legs) > MaxLegs {
		return badf("a transfer has at most %d legs", MaxLegs)
	}
	// Amounts are bounded by MaxAmount and legs by MaxLegs, so these sums
	// cannot overflow.
	sums := make(map[money.Currency]int64, 2)
	for i, l := range r.Legs {
		if err := checkID(fmt.Sprintf("legs[%d].account_id", i), l.AccountID); err != nil {
			return err
		}
		if err := checkCurrency(l.Currency); err != nil {
			return err
		}
		if l.Amount == 0 || l.Amount > money.MaxAmount || l.Amount < -money.MaxAmount {
			return badf("legs[%d].amount must be non-zero and at most %d in size", i, money.MaxAmount)
		}
		for _, o := range r.Legs[:i] {
			if o.AccountID == l.AccountID {
				return badf("account %s appears in more than one leg", l.AccountID)
			}
		}
		sums[l.Currency] += l.Amount
	}
	for c, s := range sums {
		if s != 0 {
			return badf("legs in %s sum to %d, not zero", c, s)
		}
	}
	return checkMetadata(r.Metadata)
}

func (r *PlaceHoldRequest) validate() error {
	if err := checkKey(r.Key); err != nil {
		return err
	}
	if err := checkID("account_id", r.AccountID); err != nil {
		return err
	}
	if err := checkID("destination", r.Destination); err != nil {
		return err
	}
	if r.AccountID == r.Destination {
		return badf("destination must differ from account_id")
	}
	if err := checkAmount("amount", r.Amount); err != nil {
		return err
	}
	if err := checkCurrency(r.Currency); err != nil {
		return err
	}
	if r.ExpiresAt.IsZero() {
		return badf("expires_at is required")
	}
	if err := checkTime("expires_at", r.ExpiresAt); err != nil {
		return err
	}
	return checkMetadata(r.Metadata)
}

func (r *IncrementHoldRequest) validate() error {
	if err := checkKey(r.Key); err != nil {
		return err
	}
	if err := checkID("hold_id", r.HoldID); err != nil {
		return err
	}
	if !r.ExpiresAt.IsZero() {
		if err := checkTime("expires_at", r.ExpiresAt); err != nil {
			return err
		}
	}
	return checkAmount("amount", r.Amount)
}

func (r *PostHoldRequest) validate() error {
	if err := checkKey(r.Key); err != nil {
		return err
	}
	if err := checkID("hold_id", r.HoldID); err != nil {
		return err
	}
	if err := checkAmount("amount", r.Amount); err != nil {
		return err
	}
	return checkMetadata(r.Metadata)
}

func (r *VoidHoldRequest) validate() error {
	if err := checkKey(r.Key); err != nil {
		return err
	}
	return checkID("hold_id", r.HoldID)
}

func checkAsOf(t time.Time) error {
	if t.IsZero() {
		return nil
	}
	return checkTime("as_of", t)
}
