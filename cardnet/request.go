package cardnet

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/money"
)

// The ways a request can be invalid. A *FieldError wraps one of them; test
// with errors.Is. They carry code bad_request.
var (
	ErrUnknownMTI      = errors.New(errors.BadRequest, "unknown message type")
	ErrMissing         = errors.New(errors.BadRequest, "mandatory data element missing")
	ErrFormat          = errors.New(errors.BadRequest, "data element malformed")
	ErrUnknownCurrency = errors.New(errors.BadRequest, "unknown currency code")
	ErrMismatch        = errors.New(errors.BadRequest, "data elements disagree")
)

// FieldError says which data element of a request is wrong and how. Field 0
// is the MTI. Err wraps ErrUnknownMTI, ErrMissing, ErrFormat,
// ErrUnknownCurrency or ErrMismatch with detail.
type FieldError struct {
	MTI   string
	Field int
	Err   error
	name  string
}

// Error names the MTI, the data element and the problem.
func (e *FieldError) Error() string {
	if e.Field == 0 {
		return fmt.Sprintf("MTI %s: %v", e.MTI, e.Err)
	}
	return fmt.Sprintf("%s %s: %v", e.MTI, e.name, e.Err)
}

// Unwrap returns Err.
func (e *FieldError) Unwrap() error { return e.Err }

// Request is the typed, validated view of an inbound request or advice
// (0100, 0120, 0200, 0400, 0420, 0800 and their repeats). Absent optional
// elements are zero values. docs/iso8583.md says which elements each MTI
// must carry.
type Request struct {
	MTI               string
	PAN               PAN                // DE2, or the PAN in DE35 when DE2 is absent
	ProcessingCode    ProcessingCode     // DE3
	Amount            int64              // DE4, minor units of Currency
	Currency          money.Currency     // DE49
	BillingAmount     int64              // DE6, minor units of BillingCurrency
	BillingCurrency   money.Currency     // DE51; "" when DE6/DE51 are absent
	TransmissionTime  DateTime           // DE7, UTC
	STAN              string             // DE11
	LocalTime         DateTime           // DE13 and DE12, the terminal's zone
	Expiry            Expiry             // DE14, or the expiry in DE35
	MCC               string             // DE18
	POSEntryMode      string             // DE22
	POSCondition      string             // DE25
	AcquirerID        string             // DE32
	Track2            bool               // DE35 was present: the card was read (Message writes PAN=YYMM101)
	RRN               string             // DE37
	AuthID            string             // DE38: an advice's or reversal's approval code
	ResponseCode      ResponseCode       // DE39: an advice's outcome, decided by the network
	TerminalID        string             // DE41, trailing spaces removed
	MerchantID        string             // DE42, trailing spaces removed
	Merchant          Merchant           // DE43
	CVC2              CVC                // DE48 tag 92
	PartialApproval   bool               // DE48 tag 61: the terminal accepts a partial approval
	AdditionalAmounts []AdditionalAmount // DE54
	AdviceReason      string             // DE60
	NetworkCode       string             // DE70
	Original          *OriginalData      // DE90
	// ReplacementAmount is DE95's actual transaction amount: what remains
	// authorized after a partial reversal. nil when DE95 is absent.
	ReplacementAmount *int64
}

// DE48 tags (2-digit tag, 2-digit length, value), after Mastercard's DE48
// subelements.
const (
	tagPOSData = "61" // position 1: "1" when the terminal supports partial approval
	tagCVC2    = "92"
)

// mandatory returns the data elements a request with the (non-repeat) MTI
// must carry, besides the PAN (DE2 or DE35) for all but 0800. ok is false for
// an MTI corebank does not accept.
func mandatory(mti string) (fields []int, pan bool, ok bool) {
	switch mti {
	case MTIAuthorizationRequest, MTIFinancialRequest:
		return []int{3, 4, 7, 11, 18, 22, 32, 37, 41, 42, 43, 49}, true, true
	case MTIAuthorizationAdvice:
		return []int{3, 4, 7, 11, 18, 22, 32, 37, 39, 41, 42, 43, 49}, true, true
	case MTIReversalRequest, MTIReversalAdvice:
		return []int{3, 4, 7, 11, 32, 37, 49, 90}, true, true
	case MTINetworkRequest:
		return []int{7, 11, 70}, false, true
	}
	return nil, false, false
}

// ParseRequest validates m as an inbound request and returns its typed view.
// A failure is a *FieldError naming the first data element at fault.
func ParseRequest(m *Message) (*Request, error) {
	p := parser{m: m}
	r := p.parse()
	if p.err != nil {
		return nil, p.err
	}
	return r, nil
}

type parser struct {
	m   *Message
	err *FieldError
}

func (p *parser) fail(n int, sentinel error, format string, args ...any) {
	if p.err != nil {
		return
	}
	err := sentinel
	if format != "" {
		err = fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...))
	}
	p.err = &FieldError{MTI: p.m.mti, Field: n, Err: err, name: p.m.spec.name(n)}
}

// digits returns data element n if it is between lo and hi digits.
func (p *parser) digits(n, lo, hi int) string {
	v, ok := p.m.Lookup(n)
	if !ok {
		return ""
	}
	if len(v) < lo || len(v) > hi || !isDigits(v, -1) {
		switch {
		case redacted(n): // card data (the expiry): never in an error, which is logged
			p.fail(n, ErrFormat, "want %d to %d digits, got %d characters (value not shown)", lo, hi, len(v))
		case lo == hi:
			p.fail(n, ErrFormat, "want %d digits, got %q", lo, v)
		default:
			p.fail(n, ErrFormat, "want %d to %d digits, got %d characters", lo, hi, len(v))
		}
		return ""
	}
	return v
}

// text returns data element n if it is exactly size printable characters
// (any length when size < 0).
func (p *parser) text(n, size int) string {
	v, ok := p.m.Lookup(n)
	if !ok {
		return ""
	}
	if size >= 0 && len(v) != size {
		p.fail(n, ErrFormat, "want %d characters, got %d", size, len(v))
		return ""
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			p.fail(n, ErrFormat, "non-printable character at position %d", i+1)
			return ""
		}
	}
	return v
}

// alnum returns data element n if it is exactly size letters, digits or
// spaces (format an, space-filled).
func (p *parser) alnum(n, size int) string {
	v := p.text(n, size)
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || c == ' ') {
			p.fail(n, ErrFormat, "character %q at position %d is not alphanumeric", c, i+1)
			return ""
		}
	}
	return v
}

func (p *parser) amount(n int) int64 {
	v := p.digits(n, 12, 12)
	if v == "" {
		return 0
	}
	a, _ := strconv.ParseInt(v, 10, 64) // 12 digits always fit
	return a
}

func (p *parser) currency(n int) money.Currency {
	v := p.digits(n, 3, 3)
	if v == "" {
		return ""
	}
	c, err := money.FromNumeric(v)
	if err != nil {
		p.fail(n, ErrUnknownCurrency, "%q", v)
		return ""
	}
	return c
}

func (p *parser) parse() *Request {
	m := p.m
	base := baseMTI(m.mti)
	want, needPAN, ok := mandatory(base)
	if !ok {
		p.fail(0, ErrUnknownMTI, "")
		return nil
	}
	for _, n := range want {
		if !m.Has(n) {
			p.fail(n, ErrMissing, "")
			return nil
		}
	}
	if needPAN && !m.Has(2) && !m.Has(35) {
		p.fail(2, ErrMissing, "and no track 2 (DE35) to take the PAN from")
		return nil
	}
	for _, pair := range [][2]int{{6, 51}, {51, 6}, {12, 13}, {13, 12}} {
		if m.Has(pair[0]) && !m.Has(pair[1]) {
			p.fail(pair[1], ErrMissing, "required with DE%d", pair[0])
			return nil
		}
	}

	r := &Request{MTI: m.mti}
	r.PAN = PAN(p.digits(2, 8, 19))
	r.ProcessingCode = ProcessingCode(p.digits(3, 6, 6))
	r.Amount = p.amount(4)
	r.BillingAmount = p.amount(6)
	if _, ok := m.Lookup(6); ok && r.BillingAmount == 0 && r.Amount > 0 {
		// A cardholder billing amount of nothing for something would be
		// read as none, and the transaction amount held in the billing
		// currency. (Both zero is a verification, or its reversal.)
		p.fail(6, ErrFormat, "cardholder billing amount is zero for a transaction amount that is not")
	}
	if v := p.digits(7, 10, 10); v != "" {
		t, err := parseDateTime(v[:4], v[4:])
		if err != nil {
			p.fail(7, ErrFormat, "%v", err)
		}
		r.TransmissionTime = t
	}
	r.STAN = p.digits(11, 6, 6)
	if hms, md := p.digits(12, 6, 6), p.digits(13, 4, 4); hms != "" && md != "" {
		t, err := parseDateTime(md, hms)
		if err != nil {
			p.fail(12, ErrFormat, "%v", err)
		}
		r.LocalTime = t
	}
	if v := p.digits(14, 4, 4); v != "" {
		e, err := parseExpiry(v)
		if err != nil {
			p.fail(14, ErrFormat, "%v", err)
		}
		r.Expiry = e
	}
	r.MCC = p.digits(18, 4, 4)
	r.POSEntryMode = p.digits(22, 3, 3)
	r.POSCondition = p.digits(25, 2, 2)
	r.AcquirerID = p.digits(32, 1, 11)
	// Not read, but echoed in the response: checked like what is read.
	p.digits(33, 1, 11)
	p.digits(5, 12, 12)
	p.digits(50, 3, 3)
	if v, ok := m.Lookup(35); ok {
		p.track2(r, v)
	}
	r.RRN = p.alnum(37, 12)
	r.AuthID = p.alnum(38, 6)
	r.ResponseCode = ResponseCode(p.alnum(39, 2))
	r.TerminalID = strings.TrimRight(p.text(41, 8), " ")
	r.MerchantID = strings.TrimRight(p.text(42, 15), " ")
	if v := p.text(43, merchantLen); v != "" {
		r.Merchant, _ = parseMerchant(v) // length checked by text
	}
	if v, ok := m.Lookup(48); ok {
		p.additionalData(r, v)
	}
	r.Currency = p.currency(49)
	r.BillingCurrency = p.currency(51)
	if _, ok := m.Lookup(6); ok && r.Amount == 0 && r.BillingAmount > 0 {
		// The other half of the zero rule above: something billed for a
		// transaction of nothing would be held.
		p.fail(6, ErrFormat, "cardholder billing amount for a transaction amount of zero")
	}
	if r.BillingCurrency != "" && r.BillingCurrency == r.Currency && r.BillingAmount != r.Amount {
		// Billed in the transaction's own currency, the rate is one: a
		// different amount is a message at odds with itself, and the
		// billing amount is what would be held and checked.
		p.fail(6, ErrMismatch, "cardholder billing amount %d differs from the transaction amount %d in the same currency", r.BillingAmount, r.Amount)
	}
	if v := p.text(54, -1); v != "" {
		as, err := parseAdditionalAmounts(v)
		if err != nil {
			if errors.IsErr(err, ErrUnknownCurrency) {
				p.fail(54, ErrUnknownCurrency, "%v", err)
			} else {
				p.fail(54, ErrFormat, "%v", err)
			}
		}
		r.AdditionalAmounts = as
	}
	r.AdviceReason = p.text(60, -1)
	r.NetworkCode = p.digits(70, 3, 3)
	if v, ok := m.Lookup(90); ok {
		o, err := parseOriginalData(v)
		if err != nil {
			p.fail(90, ErrFormat, "%v", err)
		}
		r.Original = o
	}
	if v, ok := m.Lookup(95); ok {
		if len(v) != 42 || !isDigits(v[:12], 12) {
			p.fail(95, ErrFormat, "want 42 characters starting with a 12-digit amount")
		} else {
			a, _ := strconv.ParseInt(v[:12], 10, 64)
			r.ReplacementAmount = &a
		}
	}
	if p.err != nil {
		return nil
	}
	if r.ReplacementAmount != nil && *r.ReplacementAmount > r.Amount {
		p.fail(95, ErrMismatch, "replacement amount %d exceeds the amount %d", *r.ReplacementAmount, r.Amount)
	}
	return r
}

// track2 reads DE35: PAN, separator ('=' or 'D'), expiry YYMM, service code
// and discretionary data. Its PAN must equal DE2's when both are present.
func (p *parser) track2(r *Request, v string) {
	i := strings.IndexAny(v, "=D")
	if i < 0 || len(v) < i+5 || !isDigits(v[:i], -1) || !isDigits(v[i+1:], -1) {
		p.fail(35, ErrFormat, "not PAN=YYMM...")
		return
	}
	pan := v[:i]
	if len(pan) < 8 || len(pan) > 19 {
		p.fail(35, ErrFormat, "PAN of %d digits", len(pan))
		return
	}
	e, err := parseExpiry(v[i+1 : i+5])
	if err != nil {
		p.fail(35, ErrFormat, "expiry: %v", err)
		return
	}
	if r.PAN != "" && string(r.PAN) != pan {
		p.fail(35, ErrMismatch, "PAN differs from DE2")
		return
	}
	if r.Expiry.IsZero() {
		r.Expiry = e
	} else if r.Expiry != e {
		p.fail(35, ErrMismatch, "expiry differs from DE14")
		return
	}
	r.PAN = PAN(pan)
	r.Track2 = true
}

// additionalData reads DE48 as tag (2 digits), length (2 digits), value.
func (p *parser) additionalData(r *Request, v string) {
	for rest := v; rest != ""; {
		if len(rest) < 4 || !isDigits(rest[:4], 4) {
			p.fail(48, ErrFormat, "bad tag or length at offset %d", len(v)-len(rest))
			return
		}
		tag, n := rest[:2], atoi(rest[2:4])
		if len(rest) < 4+n {
			p.fail(48, ErrFormat, "tag %s is longer than the element", tag)
			return
		}
		val := rest[4 : 4+n]
		rest = rest[4+n:]
		switch tag {
		case tagCVC2:
			if !isDigits(val, 3) && !isDigits(val, 4) {
				p.fail(48, ErrFormat, "tag %s (CVC2) is not 3 or 4 digits", tag)
				return
			}
			r.CVC2 = CVC(val)
		case tagPOSData:
			r.PartialApproval = len(val) > 0 && val[0] == '1'
		}
	}
}

// BaseMTI returns the request's MTI without its repeat flag: a retransmitted
// "0101" is a "0100".
func (r *Request) BaseMTI() string { return baseMTI(r.MTI) }

// IsRepeat reports whether the acquirer marked the request as a repeat of one
// it sent before (MTI ending in 1).
func (r *Request) IsRepeat() bool { return isRepeat(r.MTI) }

// PreAuth reports whether the request is a pre-authorization: DE25 is "06".
func (r *Request) PreAuth() bool { return r.POSCondition == "06" }

// Incremental reports whether the request is an incremental authorization:
// an 0100 whose DE90 names the authorization it adds to.
func (r *Request) Incremental() bool {
	return r.BaseMTI() == MTIAuthorizationRequest && r.Original != nil
}

// Channel returns how the card was presented.
func (r *Request) Channel() Channel { return channel(r.POSEntryMode, r.MCC) }

// Trace returns the request's identity across messages: a reversal's
// Original.Trace() equals the Trace of the request it reverses.
func (r *Request) Trace() Trace {
	return Trace{AcquirerID: trimZeros(r.AcquirerID), STAN: r.STAN, TransmissionTime: r.TransmissionTime}
}

// String describes the request for logs, without card secrets.
func (r *Request) String() string {
	return fmt.Sprintf("%s stan=%s rrn=%s pan=%s amount=%d %s mcc=%s merchant=%q",
		r.MTI, r.STAN, r.RRN, r.PAN.Masked(), r.Amount, r.Currency, r.MCC, r.Merchant.Name)
}

// LogValue logs the request's identifiers and amounts; the PAN masked, no
// expiry, no CVC2.
func (r *Request) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("mti", r.MTI),
		slog.String("stan", r.STAN),
		slog.String("rrn", r.RRN),
		slog.String("acquirer", r.AcquirerID),
		slog.String("pan", r.PAN.Masked()),
		slog.String("processing_code", string(r.ProcessingCode)),
		slog.Int64("amount", r.Amount),
		slog.String("currency", string(r.Currency)),
		slog.String("mcc", r.MCC),
		slog.String("merchant", r.Merchant.Name),
	)
}

// Message lays the request out as a message of spec s, the inverse of
// ParseRequest: a network simulator builds its traffic this way. It fails if
// the result would not pass ParseRequest.
func (r *Request) Message(s *Spec) (*Message, error) {
	m := s.NewMessage(r.MTI)
	set := func(n int, v string) {
		if v != "" {
			m.Set(n, v)
		}
	}
	amount := func(n int, a int64) error {
		if a < 0 || a > maxAmount {
			return fmt.Errorf("build DE%d: amount %d does not fit 12 digits", n, a)
		}
		m.Set(n, fmt.Sprintf("%012d", a))
		return nil
	}
	set(2, string(r.PAN))
	set(3, string(r.ProcessingCode))
	for _, a := range []struct {
		n, cn  int
		amount int64
		cur    money.Currency
	}{{4, 49, r.Amount, r.Currency}, {6, 51, r.BillingAmount, r.BillingCurrency}} {
		if a.amount == 0 && a.cur == "" {
			continue
		}
		if err := amount(a.n, a.amount); err != nil {
			return nil, err
		}
		if a.cur.Numeric() == "" {
			return nil, fmt.Errorf("build DE%d: currency %q has no ISO 4217 numeric code", a.cn, a.cur)
		}
		m.Set(a.cn, a.cur.Numeric())
	}
	if !r.TransmissionTime.IsZero() {
		set(7, r.TransmissionTime.String())
	}
	set(11, r.STAN)
	if !r.LocalTime.IsZero() {
		lt := r.LocalTime.String()
		set(12, lt[4:])
		set(13, lt[:4])
	}
	if !r.Expiry.IsZero() {
		set(14, r.Expiry.String())
	}
	set(18, r.MCC)
	set(22, r.POSEntryMode)
	set(25, r.POSCondition)
	set(32, r.AcquirerID)
	if r.Track2 {
		set(35, string(r.PAN)+"="+r.Expiry.String()+"101") // service code 101: no restrictions
	}
	set(37, r.RRN)
	set(38, r.AuthID)
	set(39, string(r.ResponseCode))
	if r.TerminalID != "" {
		set(41, pad(r.TerminalID, 8))
	}
	if r.MerchantID != "" {
		set(42, pad(r.MerchantID, 15))
	}
	if r.Merchant != (Merchant{}) {
		set(43, r.Merchant.String())
	}
	var de48 strings.Builder
	if r.PartialApproval {
		de48.WriteString(tagPOSData + "011")
	}
	if r.CVC2 != "" {
		fmt.Fprintf(&de48, "%s%02d%s", tagCVC2, len(r.CVC2), string(r.CVC2))
	}
	set(48, de48.String())
	if len(r.AdditionalAmounts) > 0 {
		v, err := formatAdditionalAmounts(r.AdditionalAmounts)
		if err != nil {
			return nil, fmt.Errorf("build DE54: %w", err)
		}
		set(54, v)
	}
	set(60, r.AdviceReason)
	set(70, r.NetworkCode)
	if r.Original != nil {
		set(90, r.Original.String())
	}
	if r.ReplacementAmount != nil {
		a := *r.ReplacementAmount
		if a < 0 || a > maxAmount {
			return nil, fmt.Errorf("build DE95: amount %d does not fit 12 digits", a)
		}
		set(95, fmt.Sprintf("%012d%012dC%08dC%08d", a, 0, 0, 0))
	}
	if _, err := ParseRequest(m); err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	return m, nil
}
