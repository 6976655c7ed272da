package clearing

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/corebank/corebank/authorization"
	cberrors "github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/internal/ascii"
	"github.com/corebank/corebank/money"
)

// The clearing file format, documented field by field in docs/clearing.md:
// CSV (RFC 4180, so merchant names may be quoted), lines starting with '#'
// ignored, one header line, detail lines, one trailer line.
//
//	H,file_id,network,date,record_count,control_total
//	D,record_id,pan,processing_code,amount,currency,billing_amount,billing_currency,arn,rrn,auth_code,acquirer,stan,transmission_time,merchant_name,merchant_city,merchant_country,mcc,presentment,final
//	T,file_id,record_count,control_total

// Field counts of each line type, the type letter included.
const (
	headerFields  = 6
	detailFields  = 20
	trailerFields = 4
)

// parsedFile is a clearing file that passed every check.
type parsedFile struct {
	id, network, date string
	count             int
	total             int64
	lines             []line
}

// line is one detail record as parsed. pan is the full card number: it
// lives only here, in memory, and is never stored, logged or put in an
// error.
type line struct {
	Record
	pan string
}

// showID is a record id as errors show it: as it is, unless it has 12 or
// more digits, however separated, which may be a card number (slid into
// the record_id column, or a network's odd choice): then ascii.Quote's
// description of it.
func showID(id string) string {
	if shown := ascii.Quote(id); strings.HasPrefix(shown, "(") {
		return shown
	}
	return id
}

// parseError is a BadRequest naming where in the file the problem is. Any
// run of 12 or more digits in the message is masked as a card number is,
// whichever field it came from: a PAN in the wrong column (a shifted line,
// a record id, an ARN) is never echoed.
func parseError(lineNo int, rec, format string, args ...any) error {
	where := fmt.Sprintf("line %d", lineNo)
	if rec != "" {
		where += fmt.Sprintf(" (record %s)", showID(rec))
	}
	msg := fmt.Sprintf("clearing file: %s: %s", where, fmt.Sprintf(format, args...))
	return cberrors.New(cberrors.BadRequest, ascii.MaskCardNumbers(msg))
}

// parse checks and parses a whole clearing file. Every error is a
// BadRequest naming the line, the record and the field.
func parse(content []byte) (*parsedFile, error) {
	r := csv.NewReader(bytes.NewReader(content))
	r.Comment = '#'
	r.FieldsPerRecord = -1
	r.ReuseRecord = false
	var f *parsedFile
	ids := map[string]int{}
	var total int64
	trailer := false
	for {
		fields, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, parseError(pe.StartLine, "", "malformed CSV: %v", pe.Err)
			}
			return nil, cberrors.Wrap(err, cberrors.BadRequest, "clearing file: unreadable")
		}
		// Only after a successful Read: FieldPos panics when the line
		// failed before its first field was read.
		lineNo, _ := r.FieldPos(0)
		if trailer {
			return nil, parseError(lineNo, "", "a line after the trailer")
		}
		switch fields[0] {
		case "H":
			if f != nil {
				return nil, parseError(lineNo, "", "a second header")
			}
			if f, err = parseHeader(lineNo, fields); err != nil {
				return nil, err
			}
		case "D":
			if f == nil {
				return nil, parseError(lineNo, "", "a detail record before the header")
			}
			l, err := parseDetail(lineNo, fields)
			if err != nil {
				return nil, err
			}
			if prev, ok := ids[l.ID]; ok {
				return nil, parseError(lineNo, l.ID, "record_id: already used on line %d", prev)
			}
			ids[l.ID] = lineNo
			if total, err = money.Add(total, l.BillingAmount); err != nil {
				return nil, parseError(lineNo, l.ID, "billing_amount: the control total overflows")
			}
			l.FileID, l.Seq = f.id, len(f.lines)+1
			f.lines = append(f.lines, l)
		case "T":
			if f == nil {
				return nil, parseError(lineNo, "", "a trailer before the header")
			}
			if err := checkTrailer(lineNo, fields, f, total); err != nil {
				return nil, err
			}
			trailer = true
		default:
			return nil, parseError(lineNo, "", "record type %s: want H, D or T", ascii.Quote(fields[0]))
		}
	}
	switch {
	case f == nil:
		return nil, cberrors.New(cberrors.BadRequest, "clearing file: no header line")
	case !trailer:
		return nil, cberrors.New(cberrors.BadRequest, "clearing file: no trailer line (the file is cut short)")
	}
	return f, nil
}

func parseHeader(lineNo int, fs []string) (*parsedFile, error) {
	if len(fs) != headerFields {
		return nil, parseError(lineNo, "", "header: %d fields, want %d", len(fs), headerFields)
	}
	f := &parsedFile{id: fs[1], network: fs[2], date: fs[3]}
	if !isToken(f.id, 32) {
		return nil, parseError(lineNo, "", "file_id: %s must be 1 to 32 of A-Z a-z 0-9 . _ -", ascii.Quote(f.id))
	}
	if !isAlnum(f.network, 1, 16) {
		return nil, parseError(lineNo, "", "network: %s must be 1 to 16 letters or digits", ascii.Quote(f.network))
	}
	if _, err := time.Parse("2006-01-02", f.date); err != nil {
		return nil, parseError(lineNo, "", "date: %s must be a date YYYY-MM-DD", ascii.Quote(f.date))
	}
	n, err := parseCount(fs[4])
	if err != nil {
		return nil, parseError(lineNo, "", "record_count: %s must be a whole number", ascii.Quote(fs[4]))
	}
	f.count = n
	if f.total, err = parseTotal(fs[5]); err != nil {
		return nil, parseError(lineNo, "", "control_total: %s must be a whole number of minor units", ascii.Quote(fs[5]))
	}
	return f, nil
}

func checkTrailer(lineNo int, fs []string, f *parsedFile, total int64) error {
	if len(fs) != trailerFields {
		return parseError(lineNo, "", "trailer: %d fields, want %d", len(fs), trailerFields)
	}
	if fs[1] != f.id {
		return parseError(lineNo, "", "trailer file_id %s differs from the header's %s", ascii.Quote(fs[1]), ascii.Quote(f.id))
	}
	n, err := parseCount(fs[2])
	if err != nil {
		return parseError(lineNo, "", "trailer record_count: %s must be a whole number", ascii.Quote(fs[2]))
	}
	t, err := parseTotal(fs[3])
	if err != nil {
		return parseError(lineNo, "", "trailer control_total: %s must be a whole number of minor units", ascii.Quote(fs[3]))
	}
	switch {
	case n != f.count || t != f.total:
		return parseError(lineNo, "", "trailer record_count %d and control_total %d differ from the header's %d and %d", n, t, f.count, f.total)
	case len(f.lines) != f.count:
		return parseError(lineNo, "", "record_count: the header says %d records, the file has %d", f.count, len(f.lines))
	case total != f.total:
		return parseError(lineNo, "", "control_total: the header says %d, the billing amounts sum to %d", f.total, total)
	}
	return nil
}

// Column positions of a detail line.
const (
	colRecordID = 1 + iota
	colPAN
	colProcessing
	colAmount
	colCurrency
	colBillingAmount
	colBillingCurrency
	colARN
	colRRN
	colAuthCode
	colAcquirer
	colSTAN
	colTransmission
	colMerchantName
	colMerchantCity
	colMerchantCountry
	colMCC
	colPresentment
	colFinal
)

func parseDetail(lineNo int, fs []string) (line, error) {
	var l line
	id := ""
	if len(fs) > colRecordID && isToken(fs[colRecordID], 32) {
		id = fs[colRecordID]
	}
	bad := func(format string, args ...any) (line, error) {
		return line{}, parseError(lineNo, id, format, args...)
	}
	if len(fs) != detailFields {
		return bad("detail: %d fields, want %d", len(fs), detailFields)
	}
	if id == "" {
		return bad("record_id: %s must be 1 to 32 of A-Z a-z 0-9 . _ -", ascii.Quote(fs[colRecordID]))
	}
	l.ID = id
	// The PAN is never echoed: not in an error, not anywhere.
	if !isDigits(fs[colPAN], 12, 19) {
		return bad("pan: must be 12 to 19 digits")
	}
	l.pan = fs[colPAN]
	l.PANMasked = maskPAN(l.pan)
	pc := fs[colProcessing]
	if !isDigits(pc, 6, 6) {
		return bad("processing_code: %s must be 6 digits", ascii.Quote(pc))
	}
	// The transaction types the gateway approves (cardnet's
	// TransactionType): a file presents what was authorized.
	switch pc[:2] {
	case "00", "09": // purchase; purchase with cash back, one debit
		l.Kind = KindPurchase
	case "01":
		l.Kind = KindCash
	case "20", "26": // refund; original credit, a payment to the card
		l.Kind = KindRefund
	default:
		return bad("processing_code: %s: transaction type %s is not 00 (purchase), 09 (purchase with cash back), 01 (cash), 20 (refund) or 26 (original credit)", ascii.Quote(pc), ascii.Quote(pc[:2]))
	}
	var err error
	if l.Amount, err = parseAmount(fs[colAmount]); err != nil {
		return bad("amount: %s must be a whole number of minor units, 1 to %s", ascii.Quote(fs[colAmount]), maxAmount)
	}
	if l.Currency, err = money.ParseCurrency(fs[colCurrency]); err != nil {
		return bad("currency: %s is not an ISO 4217 alphabetic code we support", ascii.Quote(fs[colCurrency]))
	}
	if l.BillingAmount, err = parseAmount(fs[colBillingAmount]); err != nil {
		return bad("billing_amount: %s must be a whole number of minor units, 1 to %s", ascii.Quote(fs[colBillingAmount]), maxAmount)
	}
	if l.BillingCurrency, err = money.ParseCurrency(fs[colBillingCurrency]); err != nil {
		return bad("billing_currency: %s is not an ISO 4217 alphabetic code we support", ascii.Quote(fs[colBillingCurrency]))
	}
	if l.ARN = fs[colARN]; !isDigits(l.ARN, 23, 23) {
		return bad("arn: %s must be 23 digits", ascii.Quote(l.ARN))
	}
	if l.RRN = fs[colRRN]; l.RRN != "" && !isAN(l.RRN, 1, 12) {
		return bad("rrn: %s must be 1 to 12 letters, digits or spaces (DE37 as received, not all spaces), or empty", ascii.Quote(l.RRN))
	}
	if l.AuthCode = fs[colAuthCode]; l.AuthCode != "" && !isAuthCode(l.AuthCode) {
		return bad("auth_code: %s must be 6 of 0-9 A-Z, or empty", ascii.Quote(l.AuthCode))
	}
	o := authorization.NetworkID{Acquirer: fs[colAcquirer], STAN: fs[colSTAN], RRN: l.RRN, TransmissionTime: fs[colTransmission]}
	if o.Acquirer != "" || o.STAN != "" || o.TransmissionTime != "" {
		switch {
		case !isDigits(o.Acquirer, 1, 11):
			return bad("acquirer: %s must be 1 to 11 digits (with stan and transmission_time, or all three empty)", ascii.Quote(o.Acquirer))
		case !isDigits(o.STAN, 6, 6):
			return bad("stan: %s must be 6 digits (with acquirer and transmission_time, or all three empty)", ascii.Quote(o.STAN))
		case !isTransmission(o.TransmissionTime):
			return bad("transmission_time: %s must be MMDDhhmmss (with acquirer and stan, or all three empty)", ascii.Quote(o.TransmissionTime))
		case o.RRN == "":
			return bad("rrn: required with the original network ids")
		}
		o.Acquirer = authorization.Acquirer(o.Acquirer) // as the gateway names it
		l.Original = o
	}
	if l.MerchantName = fs[colMerchantName]; !isText(l.MerchantName, 1, 40) {
		return bad("merchant_name: must be 1 to 40 printable characters")
	}
	if l.MerchantCity = fs[colMerchantCity]; !isText(l.MerchantCity, 0, 40) {
		return bad("merchant_city: must be at most 40 printable characters")
	}
	// A card number in the merchant's name or city (an acquirer's
	// mistake) is masked before the record is stored or published.
	l.MerchantName, l.MerchantCity = ascii.MaskCardNumbers(l.MerchantName), ascii.MaskCardNumbers(l.MerchantCity)
	// The shape only: an acquirer's UK or EU is the merchant's address as
	// the network sent it, and no reason to refuse a file of payments.
	if l.MerchantCountry = fs[colMerchantCountry]; !isUpper(l.MerchantCountry, 2) {
		return bad("merchant_country: %s must be two upper-case letters (ISO 3166 alpha-2)", ascii.Quote(l.MerchantCountry))
	}
	if l.MCC = fs[colMCC]; !isDigits(l.MCC, 4, 4) {
		return bad("mcc: %s must be 4 digits", ascii.Quote(l.MCC))
	}
	if n, err := strconv.Atoi(fs[colPresentment]); err != nil || n < 1 || n > 99 || !isDigits(fs[colPresentment], 1, 2) {
		return bad("presentment: %s must be 1 to 99", ascii.Quote(fs[colPresentment]))
	} else {
		l.Presentment = n
	}
	switch fs[colFinal] {
	case "Y":
		l.Final = true
	case "N":
		if l.Kind == KindRefund {
			return bad("final: a refund is always final (Y)")
		}
	default:
		return bad("final: %s must be Y or N", ascii.Quote(fs[colFinal]))
	}
	return l, nil
}

func parseCount(s string) (int, error) {
	if !isDigits(s, 1, 9) {
		return 0, errors.New("bad count")
	}
	return strconv.Atoi(s)
}

func parseTotal(s string) (int64, error) {
	if !isDigits(s, 1, 18) {
		return 0, errors.New("bad total")
	}
	return strconv.ParseInt(s, 10, 64)
}

func parseAmount(s string) (int64, error) {
	if !isDigits(s, 1, 16) {
		return 0, errors.New("bad amount")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 || n > money.MaxAmount {
		return 0, errors.New("bad amount")
	}
	return n, nil
}

// maskPAN keeps the first six and last four digits.
func maskPAN(pan string) string {
	b := []byte(pan)
	for i := 6; i < len(b)-4; i++ {
		b[i] = '*'
	}
	return string(b)
}

func isDigits(s string, lo, hi int) bool { return ascii.DigitsLen(s, lo, hi) }

// isAN reports whether s is lo to hi letters, digits and spaces, not all
// spaces (ISO 8583 format an, as DE37 arrives).
func isAN(s string, lo, hi int) bool {
	return isAlnum(strings.ReplaceAll(s, " ", ""), 1, hi) && len(s) >= lo && len(s) <= hi
}

func isAlnum(s string, lo, hi int) bool {
	if len(s) < lo || len(s) > hi {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return false
		}
	}
	return true
}

func isToken(s string, hi int) bool {
	if len(s) < 1 || len(s) > hi {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// maxAmount is money.MaxAmount as an error message shows it, in groups of
// three digits: a run of twelve or more would be masked there as a card
// number.
var maxAmount = func() string {
	s := strconv.FormatInt(money.MaxAmount, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}()

func isUpper(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

func isAuthCode(s string) bool {
	if len(s) != 6 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// isText: printable ASCII, lo to hi bytes (DE43 is ASCII/EBCDIC text).
func isText(s string, lo, hi int) bool {
	if len(s) < lo || len(s) > hi {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func isTransmission(s string) bool {
	if !isDigits(s, 10, 10) {
		return false
	}
	_, err := time.Parse("0102150405", s)
	return err == nil
}
