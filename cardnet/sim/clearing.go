package sim

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/cardnet"
	"github.com/corebank/corebank/money"
)

// ClearingFile is the clearing file the network sends the issuer after a
// run: one first presentment per approved authorization still outstanding,
// and one record per approved refund.
type ClearingFile struct {
	ID      string    // unique per file, 1 to 32 of A-Z a-z 0-9 . _ -
	Network string    // the network's name, 1 to 16 letters or digits
	Date    time.Time // the processing date
	Records []ClearingRecord
}

// ClearingRecord is one presentment: what the acquirer claims for an
// authorization, identified by the authorization's network ids.
type ClearingRecord struct {
	ID             string // unique in its file
	PAN            cardnet.PAN
	ProcessingCode cardnet.ProcessingCode // "00" purchase, "01" cash, "20" refund
	// Amount and Currency are the transaction amount; BillingAmount and
	// BillingCurrency what the cardholder's account is charged.
	Amount          int64
	Currency        money.Currency
	BillingAmount   int64
	BillingCurrency money.Currency
	ARN             string    // acquirer reference number, 23 digits
	AuthCode        string    // DE38 of the approval
	Network         NetworkID // the authorization's DE32, DE11, DE37, DE7
	Merchant        cardnet.Merchant
	MCC             string
	Presentment     int  // 1 for the first
	Final           bool // no more presentments follow
}

// ControlTotal returns the sum of the records' billing amounts.
func (f *ClearingFile) ControlTotal() int64 {
	var t int64
	for _, r := range f.Records {
		t += r.BillingAmount
	}
	return t
}

// ClearingWriter lays a clearing file out in some format.
type ClearingWriter interface {
	WriteClearing(w io.Writer, f *ClearingFile) error
}

// CSVClearing writes the clearing file format corebank's clearing service
// reads (docs/clearing.md, clearing/format.go): RFC 4180 CSV, a header line,
// one detail line per record, a trailer line.
//
//	H,file_id,network,date,record_count,control_total
//	D,record_id,pan,processing_code,amount,currency,billing_amount,billing_currency,arn,rrn,auth_code,acquirer,stan,transmission_time,merchant_name,merchant_city,merchant_country,mcc,presentment,final
//	T,file_id,record_count,control_total
type CSVClearing struct{}

// WriteClearing writes f to w.
func (CSVClearing) WriteClearing(w io.Writer, f *ClearingFile) error {
	cw := csv.NewWriter(w)
	n := strconv.Itoa(len(f.Records))
	total := strconv.FormatInt(f.ControlTotal(), 10)
	cw.Write([]string{"H", f.ID, f.Network, f.Date.Format("2006-01-02"), n, total})
	for _, r := range f.Records {
		final := "N"
		if r.Final {
			final = "Y"
		}
		cw.Write([]string{
			"D", r.ID, string(r.PAN), string(r.ProcessingCode),
			strconv.FormatInt(r.Amount, 10), string(r.Currency),
			strconv.FormatInt(r.BillingAmount, 10), string(r.BillingCurrency),
			r.ARN, r.Network.RRN, r.AuthCode, r.Network.Acquirer, r.Network.STAN, r.Network.TransmissionTime,
			r.Merchant.Name, r.Merchant.City, r.Merchant.Country, r.MCC,
			strconv.Itoa(r.Presentment), final,
		})
	}
	cw.Write([]string{"T", f.ID, n, total})
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write clearing file %s: %w", f.ID, err)
	}
	return nil
}

// arn returns an acquirer reference number: format code, the acquirer's
// 6-digit BIN, the Julian processing date (YDDD), an 11-digit sequence and
// a Luhn check digit, 23 digits in all.
func arn(acquirer string, date time.Time, seq int) string {
	bin := acquirer
	if len(bin) > 6 {
		bin = bin[:6]
	}
	for len(bin) < 6 {
		bin = "0" + bin
	}
	s := fmt.Sprintf("2%s%d%03d%011d", bin, date.Year()%10, date.YearDay(), seq%100_000_000_000)
	return s + string(card.LuhnDigit(s))
}
