package sim

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/corebank/corebank/cardnet"
	"github.com/corebank/corebank/internal/ascii"
	"github.com/corebank/corebank/money"
)

// Card is a test card the simulated cardholders pay with: what is printed
// on it and the currency of its account (the billing currency). Cards files
// are JSON lists of them:
//
//	[{"pan": "4000001234567899", "expiry": "2812", "cvc": "123", "currency": "GBP"}]
//
// The full number and the CVC are test data the simulator needs to send;
// they are never logged.
type Card struct {
	PAN      cardnet.PAN    `json:"pan"`
	Expiry   string         `json:"expiry"` // YYMM
	CVC      cardnet.CVC    `json:"cvc"`
	Currency money.Currency `json:"currency"`
}

// cardJSON is Card as a file holds it: cardnet.PAN and cardnet.CVC encode
// masked on purpose, so the file form is plain strings.
type cardJSON struct {
	PAN      string `json:"pan"`
	Expiry   string `json:"expiry"`
	CVC      string `json:"cvc"`
	Currency string `json:"currency"`
}

// ReadCards reads a JSON list of cards and checks each.
func ReadCards(r io.Reader) ([]Card, error) {
	var raw []cardJSON
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("cards: %w", err)
	}
	cards := make([]Card, len(raw))
	for i, c := range raw {
		cards[i] = Card{PAN: cardnet.PAN(c.PAN), Expiry: c.Expiry, CVC: cardnet.CVC(c.CVC), Currency: money.Currency(c.Currency)}
		if err := cards[i].check(); err != nil {
			return nil, fmt.Errorf("cards: card %d: %w", i+1, err)
		}
	}
	if len(cards) == 0 {
		return nil, fmt.Errorf("cards: the list is empty")
	}
	return cards, nil
}

// check reports what is wrong with c, without showing its secrets.
func (c Card) check() error {
	switch {
	case !digits(string(c.PAN), 12, 19):
		return fmt.Errorf("pan %s: want 12 to 19 digits", c.PAN.Masked())
	case !digits(c.Expiry, 4, 4) || c.Expiry[2:] < "01" || c.Expiry[2:] > "12":
		return fmt.Errorf("expiry %q: want YYMM", c.Expiry)
	case !digits(string(c.CVC), 3, 4):
		return fmt.Errorf("cvc: want 3 or 4 digits")
	case c.Currency.Numeric() == "":
		return fmt.Errorf("currency %q: not an ISO 4217 code corebank knows", c.Currency)
	case perEUR[c.Currency] == 0:
		return fmt.Errorf("currency %s: the simulator has no exchange rate for it", c.Currency)
	}
	return nil
}

// expiry returns the card's expiry as cardnet carries it.
func (c Card) expiry() cardnet.Expiry {
	return cardnet.Expiry{Year: 2000 + atoi(c.Expiry[:2]), Month: time.Month(atoi(c.Expiry[2:]))}
}

func digits(s string, lo, hi int) bool { return ascii.DigitsLen(s, lo, hi) }

func atoi(s string) int { return ascii.Value(s) }
