package card

import (
	"slices"
	"strings"
	"time"

	"golang.org/x/text/language"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/idempotency"
	"github.com/corebank/corebank/internal/ascii"
	"github.com/corebank/corebank/money"
)

// Limits on what a request may carry.
const (
	MaxKeyLen           = idempotency.MaxKeyLen // idempotency keys, bytes
	MaxIDLen            = 128                   // customer and card ids, bytes
	MaxReasonLen        = 128                   // Reveal reasons, bytes
	MaxBlockedMCCs      = 100
	MaxAllowedCountries = 250
	MaxVelocityCount    = 10000
	MinVelocityWindow   = time.Minute
	MaxVelocityWindow   = 31 * 24 * time.Hour
)

func badf(format string, args ...any) error { return errors.Errorf(errors.BadRequest, format, args...) }

func checkKey(key string) error { return idempotency.CheckKey(key) }

// checkID accepts the ids other services mint: 1 to MaxIDLen characters of
// [A-Za-z0-9_.:-].
func checkID(what, id string) error {
	if id == "" {
		return badf("%s is required", what)
	}
	if len(id) > MaxIDLen {
		return badf("%s is longer than %d bytes", what, MaxIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == ':' || c == '-') {
			return badf("%s is malformed", what)
		}
	}
	return nil
}

// checkCardID accepts the ids this service mints. Nothing else can name a
// card, so a card number put where its id goes is refused as malformed,
// before it can be echoed in an answer or written into a refusal's event.
func checkCardID(id string) error { return checkMinted("card_id", "card_", "a card id", id) }

// checkAccountID accepts ledger account ids.
func checkAccountID(id string) error {
	return checkMinted("account_id", "acc_", "a ledger account id", id)
}

// checkMinted accepts an id minted by the id package: prefix and 26
// characters of its alphabet. field names it in the refusal, which never
// echoes it.
func checkMinted(field, prefix, kind, id string) error {
	if id == "" {
		return badf("%s is required", field)
	}
	rest, ok := strings.CutPrefix(id, prefix)
	if !ok || len(rest) != 26 || strings.Trim(rest, crockford) != "" {
		return badf("%s is not %s", field, kind)
	}
	return nil
}

// country returns the ISO 3166 alpha-2 code of an alpha-2, alpha-3 or
// numeric country code, in any case, and whether s names an assigned
// country ("GB", "gbr" and "826" are GB; "UK", "EU" and "ZZ" are none).
func country(s string) (string, bool) {
	if s == "" {
		return "", false
	}
	r, err := language.ParseRegion(s)
	if err != nil || !r.IsCountry() || r.ISO3() == "ZZZ" {
		return "", false
	}
	return r.String(), true
}

// normalize validates c and returns it in its stored form: lists sorted
// and unique, countries as alpha-2, empty lists nil.
func (c Controls) normalize() (Controls, error) {
	out := c
	if len(c.BlockedMCCs) > MaxBlockedMCCs {
		return Controls{}, badf("at most %d blocked MCCs", MaxBlockedMCCs)
	}
	out.BlockedMCCs = nil
	for _, m := range c.BlockedMCCs {
		if len(m) != 4 || !digits(m) {
			return Controls{}, badf("blocked MCC %.8q is not four digits", m)
		}
		out.BlockedMCCs = append(out.BlockedMCCs, m)
	}
	for _, l := range []struct {
		name string
		v    int64
	}{{"per_transaction_limit", c.PerTransactionLimit}, {"daily_limit", c.DailyLimit}, {"monthly_limit", c.MonthlyLimit}} {
		if l.v < 0 || l.v > money.MaxAmount {
			return Controls{}, badf("%s must be between 0 (none) and %d", l.name, money.MaxAmount)
		}
	}
	switch {
	case c.VelocityCount < 0 || c.VelocityCount > MaxVelocityCount:
		return Controls{}, badf("velocity_count must be between 0 (none) and %d", MaxVelocityCount)
	case c.VelocityCount == 0 && c.VelocityWindow != 0:
		return Controls{}, badf("velocity_window needs a velocity_count")
	case c.VelocityCount > 0 && (c.VelocityWindow < MinVelocityWindow || c.VelocityWindow > MaxVelocityWindow):
		return Controls{}, badf("velocity_window must be between %v and %v", MinVelocityWindow, MaxVelocityWindow)
	}
	out.DisabledChannels = nil
	for _, ch := range c.DisabledChannels {
		if !knownChannel(ch) {
			return Controls{}, badf("unknown channel %s", ascii.Quote(string(ch)))
		}
		out.DisabledChannels = append(out.DisabledChannels, ch)
	}
	if len(c.AllowedCountries) > MaxAllowedCountries {
		return Controls{}, badf("at most %d allowed countries", MaxAllowedCountries)
	}
	out.AllowedCountries = nil
	for _, s := range c.AllowedCountries {
		cc, ok := country(s)
		if !ok {
			return Controls{}, badf("allowed country %.8q is not an ISO 3166 country code", s)
		}
		out.AllowedCountries = append(out.AllowedCountries, cc)
	}
	out.BlockedMCCs = sortedUnique(out.BlockedMCCs)
	out.DisabledChannels = sortedUnique(out.DisabledChannels)
	out.AllowedCountries = sortedUnique(out.AllowedCountries)
	return out, nil
}

func sortedUnique[T ~string](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	slices.Sort(s)
	return slices.Compact(s)
}

func (r *IssueRequest) validate() (Controls, error) {
	if err := checkKey(r.Key); err != nil {
		return Controls{}, err
	}
	if err := checkAccountID(r.AccountID); err != nil {
		return Controls{}, err
	}
	if err := checkID("customer_id", r.CustomerID); err != nil {
		return Controls{}, err
	}
	if !r.Currency.Valid() {
		return Controls{}, badf("unsupported currency %.8q", r.Currency)
	}
	return r.Controls.normalize()
}

func (r *RevealRequest) validate() error {
	if err := checkCardID(r.CardID); err != nil {
		return err
	}
	if err := checkID("customer_id", r.CustomerID); err != nil {
		return err
	}
	if r.Reason == "" || len(r.Reason) > MaxReasonLen || !idempotency.Printable(r.Reason) {
		return badf("reason must be 1 to %d bytes of UTF-8", MaxReasonLen)
	}
	return nil
}

// checkTarget validates the key and card of a write on a card.
func checkTarget(key, cardID, customerID string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := checkCardID(cardID); err != nil {
		return err
	}
	if customerID != "" {
		return checkID("customer_id", customerID)
	}
	return nil
}
