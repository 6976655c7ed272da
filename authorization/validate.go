package authorization

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/internal/ascii"
	"github.com/corebank/corebank/money"
)

func badf(format string, args ...any) error { return errors.Errorf(errors.BadRequest, format, args...) }

// maxNetworkField bounds each NetworkID field, so that the ledger keys
// derived from it stay far below the ledger's 128 bytes.
const maxNetworkField = 24

// maxText bounds the merchant's name and city.
const maxText = 100

func (n NetworkID) validate(what string) error {
	for _, f := range []struct{ name, v string }{
		{"acquirer", n.Acquirer}, {"stan", n.STAN}, {"rrn", n.RRN}, {"transmission_time", n.TransmissionTime},
	} {
		if len(f.v) == 0 || len(f.v) > maxNetworkField {
			return badf("%s %s must be 1 to %d characters", what, f.name, maxNetworkField)
		}
		for i := 0; i < len(f.v); i++ {
			if c := f.v[i]; c < 0x20 || c > 0x7e || c == ':' {
				return badf("%s %s must be printable ASCII without ':'", what, f.name)
			}
		}
	}
	return nil
}

// maxCardID bounds a card id (card.MaxIDLen is the card service's own
// bound; this one only keeps queries small).
const maxCardID = 128

func (q *ReferenceQuery) validate() error {
	if len(q.CardID) == 0 || len(q.CardID) > maxCardID || !allPrintable(q.CardID) {
		return badf("card_id must be 1 to %d printable ASCII characters", maxCardID)
	}
	if len(q.RRN) == 0 || len(q.RRN) > maxNetworkField {
		return badf("rrn must be 1 to %d characters", maxNetworkField)
	}
	for i := 0; i < len(q.RRN); i++ {
		if c := q.RRN[i]; c < 0x20 || c > 0x7e || c == ':' {
			return badf("rrn must be printable ASCII without ':'")
		}
	}
	if !isAuthCode(q.AuthCode) {
		return badf("auth_code must be six characters 0-9 A-Z")
	}
	return nil
}

func allDigits(s string) bool { return ascii.Digits(s) }

func checkText(name, s string, max int) error {
	if len(s) > max || !utf8.ValidString(s) {
		return badf("%s must be valid UTF-8 of at most %d bytes", name, max)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return badf("%s must not hold control characters", name)
		}
	}
	return nil
}

// validate checks a request for the kinds a method accepts. Its errors
// never contain the card number or the CVC.
func (r *Request) validate(kinds ...Kind) error {
	ok := false
	for _, k := range kinds {
		ok = ok || r.Kind == k
	}
	if !ok {
		return badf("kind %q is not accepted here (want one of %v)", r.Kind, kinds)
	}
	if err := r.Network.validate("network"); err != nil {
		return err
	}
	if r.Original != nil {
		if err := r.Original.validate("original"); err != nil {
			return err
		}
		if *r.Original == r.Network {
			return badf("original must differ from network")
		}
	} else if r.Kind == KindIncremental {
		return badf("an incremental authorization needs its original")
	}
	if len(r.PAN) < 8 || len(r.PAN) > 19 || !allDigits(string(r.PAN)) {
		return badf("card number must be 8 to 19 digits")
	}
	if r.Expiry != "" {
		if len(r.Expiry) != 4 || !allDigits(r.Expiry) || r.Expiry[2:] < "01" || r.Expiry[2:] > "12" {
			return badf("expiry must be YYMM")
		}
	}
	if r.CVC != "" && (len(r.CVC) < 3 || len(r.CVC) > 4 || !allDigits(string(r.CVC))) {
		return badf("cvc must be 3 or 4 digits")
	}
	if r.Amount < 0 || r.Amount > money.MaxAmount {
		return badf("amount must be between 0 and %d", money.MaxAmount)
	}
	if !r.Currency.Valid() {
		return badf("unsupported currency %q", r.Currency)
	}
	if r.BillingAmount < 0 || r.BillingAmount > money.MaxAmount {
		return badf("billing amount must be between 0 and %d", money.MaxAmount)
	}
	if r.BillingAmount > 0 && !r.BillingCurrency.Valid() {
		return badf("unsupported billing currency %q", r.BillingCurrency)
	}
	if len(r.MCC) != 4 || !allDigits(r.MCC) {
		return badf("mcc must be four digits")
	}
	if r.Channel == "" {
		return badf("channel is required")
	}
	if err := checkText("channel", string(r.Channel), 16); err != nil {
		return err
	}
	if err := checkText("merchant name", r.MerchantName, maxText); err != nil {
		return err
	}
	if err := checkText("merchant city", r.MerchantCity, maxText); err != nil {
		return err
	}
	if len(r.MerchantCountry) > 3 || !allPrintable(r.MerchantCountry) {
		return badf("merchant country must be an ISO 3166 code")
	}
	return nil
}

func allPrintable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// minPAN is the shortest card number the card service issues or looks up;
// a shorter one (ISO/IEC 7812 allows 8 digits) is declined card_not_found.
const minPAN = 12

// Digest identifies the request beside its network ids, for telling a
// retransmission from another message under the same ids: its kind, its
// card number as displays show it (first six, last four and the length,
// so that the digest holds nothing a display may not), and its amounts
// and currencies. Two cards alike in their first six and last four digits
// under one message's ids are not told apart; everything else is.
func (r *Request) Digest() string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s|%s|%d|%s|%d|%s", r.Kind, r.PAN.String(), r.Amount, r.Currency, r.BillingAmount, r.BillingCurrency))
	return hex.EncodeToString(h[:16])
}

// billing returns what the card's account is held or debited for: DE6/DE51
// when present, else DE4/DE49.
func (r *Request) billing() (int64, money.Currency) {
	if r.BillingAmount > 0 {
		return r.BillingAmount, r.BillingCurrency
	}
	return r.Amount, r.Currency
}

func (r *ReversalRequest) validate() error {
	if err := r.Network.validate("network"); err != nil {
		return err
	}
	if err := r.Original.validate("original"); err != nil {
		return err
	}
	if r.Original == r.Network {
		return badf("original must differ from network")
	}
	if r.Advice && r.OwnDecision {
		return badf("own_decision is the gateway's own reversal, never a network's advice")
	}
	if r.OriginalDigest != "" && (!r.OwnDecision || !isDigest(r.OriginalDigest)) {
		return badf("original_digest is an own_decision's: 32 lower-case hexadecimal digits")
	}
	if r.Amount < 0 || r.Amount > money.MaxAmount {
		return badf("amount must be between 0 and %d", money.MaxAmount)
	}
	switch {
	case r.AmountCurrency == "" && r.OriginalAmount != 0:
		return badf("original_amount is the rate of an amount_currency; none given")
	case r.AmountCurrency == "":
	case !r.AmountCurrency.Valid():
		return badf("amount_currency %q is not an ISO 4217 currency", r.AmountCurrency)
	case r.Amount == 0:
		return badf("amount_currency is for a partial reversal's amount; a full reversal has none")
	case r.OriginalAmount <= 0 || r.OriginalAmount > money.MaxAmount:
		return badf("original_amount must be between 1 and %d with an amount_currency", money.MaxAmount)
	}
	return nil
}

// isDigest reports whether s is a Request.Digest: 32 lower-case hex digits.
func isDigest(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
