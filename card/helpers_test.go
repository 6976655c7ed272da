package card_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/money"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

// epoch is where the tests' clocks start: far from the real clock, so a
// time read ad hoc from time.Now stands out. Cards issued then expire at the
// end of January 2034.
var epoch = time.Date(2030, 1, 15, 9, 0, 0, 0, time.UTC)

// clock is an injected clock the test moves by hand.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := new(clock)
	c.ns.Store(t.UnixNano())
	return c
}

func (c *clock) Now() time.Time { return time.Unix(0, c.ns.Load()).UTC() }

func (c *clock) Set(t time.Time) { c.ns.Store(t.UnixNano()) }

const testBIN = "45717360"

// key returns a 32-byte test key filled with b.
func key(b byte) card.Secret { return card.Secret(bytes.Repeat([]byte{b}, 32)) }

// testCVK is the pair of the published CVV test vector.
func testCVK(t testing.TB) card.CVK {
	t.Helper()
	a, err := card.ParseSecret("0123456789ABCDEF")
	if err != nil {
		t.Fatal(err)
	}
	b, err := card.ParseSecret("FEDCBA9876543210")
	if err != nil {
		t.Fatal(err)
	}
	return card.CVK{A: a, B: b}
}

func testConfig(t testing.TB, clk *clock) card.Config {
	return card.Config{
		BIN:     testBIN,
		Keyring: card.Keyring{Current: "k1", Keys: map[string]card.Secret{"k1": key(0x11)}},
		HashKey: key(0x22),
		CVK:     testCVK(t),
		Now:     clk.Now,
	}
}

func openCards(t testing.TB, db *store.DB, cfg card.Config) *card.Cards {
	t.Helper()
	s, err := card.Open(context.Background(), db, cfg)
	if err != nil {
		t.Fatalf("card.Open: %v", err)
	}
	return s
}

// acct returns a well-formed ledger account id.
func acct(n int) string { return fmt.Sprintf("acc_%026d", n) }

func issueReq(key, customer string) card.IssueRequest {
	return card.IssueRequest{Key: key, AccountID: acct(1), CustomerID: customer, Currency: money.Currency("GBP")}
}

func issue(t testing.TB, s card.Service, key, customer string) *card.Card {
	t.Helper()
	c, err := s.Issue(context.Background(), issueReq(key, customer))
	if err != nil {
		t.Fatalf("Issue(%s): %v", key, err)
	}
	return c
}

func reveal(t testing.TB, s card.Service, c *card.Card) *card.Details {
	t.Helper()
	d, err := s.Reveal(context.Background(), card.RevealRequest{CardID: c.ID, CustomerID: c.CustomerID, Reason: "test"})
	if err != nil {
		t.Fatalf("Reveal(%s): %v", c.ID, err)
	}
	return d
}

// issueRevealed opens the card service on db with the test config, issues
// one card to cus_1, and returns the service, the card and its number.
func issueRevealed(t testing.TB, db *store.DB) (*card.Cards, *card.Card, string) {
	t.Helper()
	s := openCards(t, db, testConfig(t, newClock(epoch)))
	c := issue(t, s, "k", "cus_1")
	return s, c, reveal(t, s, c).PAN
}

// noSuchCard is a well-formed card id that names no card.
const noSuchCard = "card_00000000000000000000000000"

func wantCode(t testing.TB, err error, code errors.Code) {
	t.Helper()
	if errors.CodeOf(err) != code {
		t.Fatalf("error = %v, want code %s", err, code)
	}
}

type outboxEvent struct {
	Topic, Key string
	Payload    []byte
}

// cvcFailures is the count of failed checks of card id's data, 0 if none.
func cvcFailures(t testing.TB, db *store.DB, id string) int {
	t.Helper()
	var n int
	err := db.Read.QueryRow(db.Rebind(`SELECT failures FROM card_cvc_failures WHERE card_id = ?`), id).Scan(&n)
	if err != nil && !errors.IsErr(err, sql.ErrNoRows) {
		t.Fatal(err)
	}
	return n
}

// published counts the outbox's events of topic.
func published(t testing.TB, db *store.DB, topic string) int {
	t.Helper()
	n := 0
	for _, e := range outbox(t, db) {
		if e.Topic == topic {
			n++
		}
	}
	return n
}

func outbox(t testing.TB, db *store.DB) []outboxEvent {
	t.Helper()
	rows, err := db.Read.Query(`SELECT topic, key, payload FROM outbox ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []outboxEvent
	for rows.Next() {
		var e outboxEvent
		if err := rows.Scan(&e.Topic, &e.Key, &e.Payload); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func count(t testing.TB, db *store.DB, table string) int {
	t.Helper()
	var n int
	if err := db.Read.QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// columns lists every "table.column" of db.
func columns(t testing.TB, db *store.DB) []string {
	t.Helper()
	var out []string
	for _, tbl := range storetest.Tables(t, db) {
		rows, err := db.Read.Query(`SELECT * FROM ` + tbl + ` WHERE 1 = 0`)
		if err != nil {
			t.Fatal(err)
		}
		cols, err := rows.Columns()
		rows.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cols {
			out = append(out, tbl+"."+c)
		}
	}
	return out
}

// assertAbsent fails if any stored value contains secret.
func assertAbsent(t testing.TB, db *store.DB, what, secret string) {
	t.Helper()
	for col, vals := range storetest.Dump(t, db) {
		for _, v := range vals {
			if strings.Contains(v, secret) {
				t.Errorf("%s holds the %s", col, what)
			}
		}
	}
}

// repeatReader yields a constant byte for its first n reads, then random
// bytes: with n = 2 the first two card numbers drawn are the same.
type repeatReader struct {
	mu    sync.Mutex
	n     int // reads left that repeat; -1 forever
	reads int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reads++
	if r.n != 0 {
		if r.n > 0 {
			r.n--
		}
		for i := range p {
			p[i] = 7
		}
		return len(p), nil
	}
	return rand.Read(p)
}

// luhnValid checks the Luhn digit independently of the package.
func luhnValid(s string) bool {
	sum := 0
	for i := 0; i < len(s); i++ {
		d := int(s[len(s)-1-i] - '0')
		if i%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}
