package cardnet

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/corebank/corebank/internal/ascii"
	"github.com/corebank/corebank/money"
)

// DateTime is a moment as ISO 8583 writes it: month, day and time of day,
// without a year or a zone. DE7 (transmission date and time) is in UTC;
// DE13 and DE12 (local date and time) are in the terminal's zone.
type DateTime struct {
	Month                     time.Month
	Day, Hour, Minute, Second int
}

// parseDateTime reads "MMDD" and "hhmmss".
func parseDateTime(mmdd, hhmmss string) (DateTime, error) {
	if !isDigits(mmdd, 4) || !isDigits(hhmmss, 6) {
		return DateTime{}, fmt.Errorf("not MMDDhhmmss digits")
	}
	d := DateTime{
		Month:  time.Month(atoi(mmdd[:2])),
		Day:    atoi(mmdd[2:]),
		Hour:   atoi(hhmmss[:2]),
		Minute: atoi(hhmmss[2:4]),
		Second: atoi(hhmmss[4:]),
	}
	// February 29 is valid: the year is not known.
	if d.Month < 1 || d.Month > 12 || d.Day < 1 || d.Day > daysIn(d.Month, 2000) ||
		d.Hour > 23 || d.Minute > 59 || d.Second > 59 {
		return DateTime{}, fmt.Errorf("%s is not a valid date and time", d)
	}
	return d, nil
}

// String returns the wire form, "MMDDhhmmss".
func (d DateTime) String() string {
	return fmt.Sprintf("%02d%02d%02d%02d%02d", int(d.Month), d.Day, d.Hour, d.Minute, d.Second)
}

// IsZero reports whether d is absent.
func (d DateTime) IsZero() bool { return d == DateTime{} }

// Time returns d in now's location, in the year that puts it nearest to now
// (so a message sent at 23:59:59 on 31 December and read after midnight
// belongs to the old year). It returns the zero time for the zero DateTime.
func (d DateTime) Time(now time.Time) time.Time {
	if d.IsZero() {
		return time.Time{}
	}
	var best time.Time
	for y := now.Year() - 1; y <= now.Year()+1; y++ {
		if d.Day > daysIn(d.Month, y) {
			continue // 29 February outside a leap year
		}
		t := time.Date(y, d.Month, d.Day, d.Hour, d.Minute, d.Second, 0, now.Location())
		if best.IsZero() || t.Sub(now).Abs() < best.Sub(now).Abs() {
			best = t
		}
	}
	return best
}

func daysIn(m time.Month, year int) int {
	return time.Date(year, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// Expiry is a card's expiry month, as DE14 and track 2 carry it (YYMM). A
// card is valid until the end of that month.
type Expiry struct {
	Year  int // four digits
	Month time.Month
}

func parseExpiry(yymm string) (Expiry, error) {
	if !isDigits(yymm, 4) {
		return Expiry{}, fmt.Errorf("not YYMM digits")
	}
	e := Expiry{Year: 2000 + atoi(yymm[:2]), Month: time.Month(atoi(yymm[2:]))}
	if e.Month < 1 || e.Month > 12 {
		// The month is not shown: an expiry is card data, and errors are logged.
		return Expiry{}, fmt.Errorf("month out of range")
	}
	return e, nil
}

// String returns the wire form, "YYMM".
func (e Expiry) String() string { return fmt.Sprintf("%02d%02d", e.Year%100, int(e.Month)) }

// IsZero reports whether e is absent.
func (e Expiry) IsZero() bool { return e == Expiry{} }

// End returns the first instant after the expiry month, in UTC.
func (e Expiry) End() time.Time { return time.Date(e.Year, e.Month+1, 1, 0, 0, 0, 0, time.UTC) }

// Merchant is the card acceptor's name and location, DE43 in the 1987
// layout: name (25 characters), city (13), country (2, ISO 3166 alpha-2).
type Merchant struct {
	Name, City, Country string
}

// The DE43 layout.
const (
	merchantNameLen    = 25
	merchantCityLen    = 13
	merchantCountryLen = 2
	merchantLen        = merchantNameLen + merchantCityLen + merchantCountryLen
)

func parseMerchant(v string) (Merchant, error) {
	if len(v) != merchantLen {
		return Merchant{}, fmt.Errorf("%d characters, want %d", len(v), merchantLen)
	}
	// A card number in the name or city (an acquirer's mistake) is masked
	// here, before the merchant is recorded and published: in the whole
	// element, so that one laid across the name and the city is masked
	// too (the length is kept, and with it the layout).
	v = ascii.MaskCardNumbers(v)
	return Merchant{
		Name:    strings.TrimRight(v[:merchantNameLen], " "),
		City:    strings.TrimRight(v[merchantNameLen:merchantNameLen+merchantCityLen], " "),
		Country: strings.TrimRight(v[merchantNameLen+merchantCityLen:], " "),
	}, nil
}

// String returns the 40-character wire form; longer parts are cut.
func (m Merchant) String() string {
	return pad(m.Name, merchantNameLen) + pad(m.City, merchantCityLen) + pad(m.Country, merchantCountryLen)
}

// pad returns s cut or space-filled on the right to n characters.
func pad(s string, n int) string {
	if len(s) >= n {
		return s[:n]
	}
	return s + strings.Repeat(" ", n-len(s))
}

// ProcessingCode is DE3: the transaction type (2 digits), then the account
// types debited and credited (2 digits each).
type ProcessingCode string

// Type returns the transaction type, the code's first two digits.
func (p ProcessingCode) Type() TransactionType {
	if len(p) < 2 {
		return ""
	}
	return TransactionType(p[:2])
}

// From returns the account type debited ("00" default, "10" savings, "20"
// current, "30" credit).
func (p ProcessingCode) From() string {
	if len(p) < 4 {
		return ""
	}
	return string(p[2:4])
}

// To returns the account type credited.
func (p ProcessingCode) To() string {
	if len(p) < 6 {
		return ""
	}
	return string(p[4:6])
}

// TransactionType is the first two digits of the processing code.
type TransactionType string

// The transaction types corebank handles.
const (
	Purchase             TransactionType = "00" // goods and services
	CashWithdrawal       TransactionType = "01" // ATM or cash advance
	PurchaseWithCashback TransactionType = "09" // goods with cash back (DE54 amount type 40)
	Refund               TransactionType = "20" // returns: a credit to the card
	OriginalCredit       TransactionType = "26" // a payment to the card
	BalanceInquiry       TransactionType = "31"
)

// Credit reports whether t pays money to the card (a refund, an original
// credit) rather than taking it.
func (t TransactionType) Credit() bool { return t == Refund || t == OriginalCredit }

// AdditionalAmount is one 20-character entry of DE54: balances in responses,
// cash back in requests.
type AdditionalAmount struct {
	AccountType string // 2 digits, as in the processing code
	AmountType  string // 2 digits: AmountLedgerBalance, AmountAvailableBalance, AmountCashback ...
	Currency    money.Currency
	Amount      int64 // minor units; negative for a debit balance ("D")
}

// Amount types of DE54.
const (
	AmountLedgerBalance    = "01"
	AmountAvailableBalance = "02"
	AmountCashback         = "40"
)

const additionalAmountLen = 20

func parseAdditionalAmounts(v string) ([]AdditionalAmount, error) {
	if len(v)%additionalAmountLen != 0 {
		return nil, fmt.Errorf("%d characters, not a multiple of %d", len(v), additionalAmountLen)
	}
	var out []AdditionalAmount
	for i := 1; len(v) > 0; v, i = v[additionalAmountLen:], i+1 {
		e := v[:additionalAmountLen]
		if !isDigits(e[:4], 4) || !isDigits(e[8:], 12) || (e[7] != 'C' && e[7] != 'D') {
			// Its position, not its value: a card number in the wrong
			// element must not reach a log.
			return nil, fmt.Errorf("entry %d is not n2 n2 n3 C/D n12", i)
		}
		cur, err := money.FromNumeric(e[4:7])
		if err != nil {
			return nil, fmt.Errorf("%w %q", ErrUnknownCurrency, e[4:7])
		}
		amt, _ := strconv.ParseInt(e[8:], 10, 64) // 12 digits always fit
		if e[7] == 'D' {
			amt = -amt
		}
		out = append(out, AdditionalAmount{AccountType: e[:2], AmountType: e[2:4], Currency: cur, Amount: amt})
	}
	return out, nil
}

func formatAdditionalAmounts(as []AdditionalAmount) (string, error) {
	var b strings.Builder
	for _, a := range as {
		num := a.Currency.Numeric()
		if num == "" {
			return "", fmt.Errorf("additional amount: unknown currency %q", a.Currency)
		}
		sign, amt := 'C', a.Amount
		if amt < 0 {
			sign, amt = 'D', -amt
		}
		if !isDigits(a.AccountType, 2) || !isDigits(a.AmountType, 2) || amt > maxAmount {
			return "", fmt.Errorf("additional amount %+v does not fit n2 n2 n3 C/D n12", a)
		}
		fmt.Fprintf(&b, "%s%s%s%c%012d", a.AccountType, a.AmountType, num, sign, amt)
	}
	return b.String(), nil
}

// maxAmount is the largest amount twelve digits hold.
const maxAmount = 999_999_999_999

// OriginalData is DE90, the identity of the message a reversal or an
// incremental authorization refers to: n42 made of the original MTI (4),
// STAN (6), transmission date and time (10), acquiring institution (11) and
// forwarding institution (11), the last two zero-filled on the left.
type OriginalData struct {
	MTI              string
	STAN             string
	TransmissionTime DateTime
	AcquirerID       string // leading zeros removed
	ForwardingID     string // leading zeros removed
}

const originalDataLen = 42

func parseOriginalData(v string) (*OriginalData, error) {
	if !isDigits(v, originalDataLen) {
		return nil, fmt.Errorf("not %d digits", originalDataLen)
	}
	t, err := parseDateTime(v[10:14], v[14:20])
	if err != nil {
		return nil, fmt.Errorf("original transmission time: %w", err)
	}
	return &OriginalData{
		MTI:              v[:4],
		STAN:             v[4:10],
		TransmissionTime: t,
		AcquirerID:       trimZeros(v[20:31]),
		ForwardingID:     trimZeros(v[31:42]),
	}, nil
}

// String returns the 42-digit wire form.
func (o *OriginalData) String() string {
	return o.MTI + o.STAN + o.TransmissionTime.String() + zeroPad(trimZeros(o.AcquirerID), 11) + zeroPad(trimZeros(o.ForwardingID), 11)
}

// zeroPad fills s with zeros on the left to n characters.
func zeroPad(s string, n int) string {
	if len(s) >= n {
		return s
	}
	return strings.Repeat("0", n-len(s)) + s
}

// Trace returns the identity of the original message, comparable with the
// original's own Request.Trace.
func (o *OriginalData) Trace() Trace {
	return Trace{AcquirerID: trimZeros(o.AcquirerID), STAN: o.STAN, TransmissionTime: o.TransmissionTime}
}

// Trace identifies a message the way the network does across messages: the
// acquirer that sent it, its STAN and its transmission date and time. A
// reversal's Original.Trace() equals its original's Request.Trace(). It is
// comparable, so it can key a map.
type Trace struct {
	AcquirerID       string // leading zeros removed
	STAN             string
	TransmissionTime DateTime
}

// trimZeros removes leading zeros: "00000012345" and "12345" name the same
// institution. All zeros (an absent forwarding institution) becomes "".
func trimZeros(s string) string { return strings.TrimLeft(s, "0") }

// Channel is how a card was presented, from DE22 and the MCC: what a
// card's channel controls switch on and off. The values are card.Channel's:
// convert with card.Channel(c).
type Channel string

// The channels.
const (
	ChannelUnknown     Channel = ""
	ChannelChip        Channel = "chip"        // chip read, contact
	ChannelContactless Channel = "contactless" // chip or stripe read without contact
	ChannelMagstripe   Channel = "magstripe"   // stripe read, including chip fallback
	ChannelECommerce   Channel = "ecommerce"   // card not present: online, stored credential, mail or telephone order
	ChannelATM         Channel = "atm"         // cash machine (MCC 6011)
)

// mccATM is the merchant category of automated cash disbursements.
const mccATM = "6011"

func channel(posEntry, mcc string) Channel {
	if mcc == mccATM {
		return ChannelATM
	}
	if len(posEntry) < 2 {
		return ChannelUnknown
	}
	switch posEntry[:2] {
	case "05":
		return ChannelChip
	case "07", "91":
		return ChannelContactless
	case "02", "80", "90":
		return ChannelMagstripe
	case "81", "10", "01": // e-commerce, credential on file, keyed
		return ChannelECommerce
	}
	return ChannelUnknown
}

// atoi converts a string of digits checked by isDigits.
func atoi(s string) int { return ascii.Value(s) }
