package clearing_test

import (
	"bytes"
	"encoding/csv"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/corebank/corebank/clearing"
	"github.com/corebank/corebank/errors"
)

// longDigits finds what could be a card number: 12 or more digits in a row,
// bare or separated by single spaces, dashes or dots.
var longDigits = regexp.MustCompile(`[0-9](?:[ .-]?[0-9]){11,}`)

// write serialises a parsed file in the documented format, one canonical
// way: what parses must survive the round trip unchanged.
func write(p *clearing.Parsed) []byte {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write([]string{"H", p.ID, p.Network, p.Date, strconv.Itoa(p.Count), strconv.FormatInt(p.Total, 10)})
	for i, r := range p.Records {
		proc := map[clearing.Kind]string{clearing.KindPurchase: "000000", clearing.KindCash: "010000", clearing.KindRefund: "200000"}[r.Kind]
		final := "N"
		if r.Final {
			final = "Y"
		}
		w.Write([]string{"D", r.ID, p.PANs[i], proc, strconv.FormatInt(r.Amount, 10), string(r.Currency),
			strconv.FormatInt(r.BillingAmount, 10), string(r.BillingCurrency), r.ARN, r.RRN, r.AuthCode,
			r.Original.Acquirer, r.Original.STAN, r.Original.TransmissionTime,
			r.MerchantName, r.MerchantCity, r.MerchantCountry, r.MCC, strconv.Itoa(r.Presentment), final})
	}
	w.Write([]string{"T", p.ID, strconv.Itoa(p.Count), strconv.FormatInt(p.Total, 10)})
	w.Flush()
	return b.Bytes()
}

// docExample is the example file of docs/clearing.md.
func docExample(tb testing.TB) []byte {
	doc, err := os.ReadFile("../docs/clearing.md")
	if err != nil {
		tb.Fatal(err)
	}
	_, ex, _ := strings.Cut(string(doc), "## Example\n\n```\n")
	ex, _, _ = strings.Cut(ex, "```")
	return []byte(ex)
}

// FuzzParse checks the clearing file parser on any input: it never panics;
// every refusal is a BadRequest whose message shows no card number (no run
// of 12 or more digits); and every file it accepts has as many records and
// such a control total as its header and trailer say, and survives being
// written out and parsed again unchanged, its processing code aside
// (only the transaction type is kept).
func FuzzParse(f *testing.F) {
	const pan = "4571736012345678"
	good := file("FZ1",
		rec{id: "1", pan: pan, amount: 1000, authCode: "A1B2C3"},
		rec{id: "2", pan: pan, proc: "200000", amount: 1150},
		rec{id: "3", pan: "457173601234567890", proc: "010000", amount: 7, billing: 9, notFinal: true, presentment: 2},
	)
	f.Add(docExample(f))
	f.Add(good)
	f.Add([]byte(strings.ReplaceAll(string(good), "\n", "\r\n")))
	f.Add([]byte("H,X,MCI,2030-01-16,0,0\nT,X,0,0\n"))
	f.Add([]byte("\"a\"b\n"))
	f.Add([]byte(pan + ",1\n"))
	// The record id column missing: a dashed card number slides into it.
	f.Add([]byte("H,F1,MCI,2030-01-16,1,100\nD,4571-7360-1234-5678,000000,100,GBP,100,GBP,74567890123456789012345,RRN1,A1B2C3,123456,000001,0115090000,X,LONDON,GB,5814,1,Y\nT,F1,1,100\n"))
	f.Fuzz(func(t *testing.T, content []byte) {
		p, err := clearing.Parse(content)
		if err != nil {
			if errors.CodeOf(err) != errors.BadRequest {
				t.Fatalf("error %v, want bad_request", err)
			}
			if d := longDigits.FindString(err.Error()); d != "" {
				t.Fatalf("error %q shows %d digits in a row", err, len(d))
			}
			return
		}
		var total int64
		for _, r := range p.Records {
			total += r.BillingAmount
		}
		if len(p.Records) != p.Count || total != p.Total {
			t.Fatalf("parsed %d records totalling %d; the header says %d and %d", len(p.Records), total, p.Count, p.Total)
		}
		for i, r := range p.Records {
			pan := p.PANs[i]
			masked := pan[:6] + strings.Repeat("*", len(pan)-10) + pan[len(pan)-4:]
			if r.Seq != i+1 || r.FileID != p.ID || r.PANMasked != masked {
				t.Fatalf("record %d = %+v", i, r)
			}
		}
		again, err := clearing.Parse(write(p))
		if err != nil {
			t.Fatalf("written back, the file is refused: %v\n%s", err, write(p))
		}
		if !reflect.DeepEqual(p, again) {
			t.Fatalf("round trip changed the file:\n%+v\n%+v", p, again)
		}
	})
}
