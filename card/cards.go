package card

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"sync"
	"time"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/event"
	"github.com/corebank/corebank/id"
	"github.com/corebank/corebank/rpc"
	"github.com/corebank/corebank/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// PANLength is the length of the card numbers Issue makes.
const PANLength = 16

// Config configures Cards. BIN, Keyring, HashKey and CVK are required and
// secret but for BIN; Open checks them all.
type Config struct {
	// BIN is the bank identification number new card numbers start with:
	// 6 to 8 digits.
	BIN string
	// ExpiryYears is how many years after issue a card expires, 1 to 10.
	// Default 4.
	ExpiryYears int
	// Keyring holds the AES-256 keys that encrypt card numbers at rest.
	Keyring Keyring
	// HashKey keys the HMAC-SHA256 by which a card number finds its card:
	// at least 32 bytes, and none of the Keyring's keys.
	HashKey Secret
	// CVK is the card verification key pair the CVC is derived with.
	CVK CVK
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Notify is called after each commit that wrote events, to wake the
	// outbox relay. It must not block.
	Notify func()
	// MaxCVCFailures is how many wrong CVCs in a row (each within
	// CVCFailureWindow of the last) lock a card's CVC check. Default
	// DefaultMaxCVCFailures.
	MaxCVCFailures int
	// CVCFailureWindow is how long a lock lasts after the last wrong CVC,
	// and how far apart wrong CVCs may be to count together. Default
	// DefaultCVCFailureWindow.
	CVCFailureWindow time.Duration
	// Rand is where the random digits of new card numbers come from.
	// Default crypto/rand.Reader; tests inject a predictable one. Nonces
	// always come from crypto/rand.
	Rand io.Reader
}

// The CVC check's lock, by default: ten wrong CVCs, each within a day of
// the last, refuse every CVC for a day. Guessing one of 1,000 at ten a day
// takes months; a customer's typos rarely reach ten.
const (
	DefaultMaxCVCFailures   = 10
	DefaultCVCFailureWindow = 24 * time.Hour
)

func (c *Config) validate() error {
	if len(c.BIN) < 6 || len(c.BIN) > 8 || !digits(c.BIN) {
		return configErr("BIN must be 6 to 8 digits")
	}
	if c.ExpiryYears < 1 || c.ExpiryYears > 10 {
		return configErr("ExpiryYears must be between 1 and 10")
	}
	if err := c.Keyring.validate(); err != nil {
		return err
	}
	if len(c.HashKey) < 32 {
		return configErr("HashKey must be at least 32 bytes")
	}
	for id, k := range c.Keyring.Keys {
		if bytes.Equal(k, c.HashKey) {
			return configErr("HashKey must differ from keyring key %q", id)
		}
	}
	return c.CVK.validate()
}

// Cards implements Service on a store.DB. Every write is one transaction
// that changes the card, records its idempotency key and appends its events
// to the outbox, and answers only once that transaction is durable.
type Cards struct {
	db    *store.DB
	cfg   Config
	vault *vault

	randMu sync.Mutex // serialises reads of cfg.Rand
}

var _ Service = (*Cards)(nil)

// Open checks cfg (a bad one is BadRequest), migrates db (the card tables
// and the event outbox) and returns the service. It fails if a stored card
// number is sealed with a key the keyring lacks.
func Open(ctx context.Context, db *store.DB, cfg Config) (*Cards, error) {
	if cfg.ExpiryYears == 0 {
		cfg.ExpiryYears = 4
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.MaxCVCFailures == 0 {
		cfg.MaxCVCFailures = DefaultMaxCVCFailures
	}
	if cfg.CVCFailureWindow == 0 {
		cfg.CVCFailureWindow = DefaultCVCFailureWindow
	}
	if cfg.MaxCVCFailures < 0 || cfg.CVCFailureWindow < 0 {
		return nil, configErr("MaxCVCFailures and CVCFailureWindow must not be negative")
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	v, err := newVault(cfg.Keyring, cfg.HashKey)
	if err != nil {
		return nil, err
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("card: %w", err)
	}
	if err := store.Migrate(ctx, db, "card", sub); err != nil {
		return nil, fmt.Errorf("card: %w", err)
	}
	if err := event.Migrate(ctx, db); err != nil {
		return nil, fmt.Errorf("card: %w", err)
	}
	s := &Cards{db: db, cfg: cfg, vault: v}
	if err := s.checkKeyIDs(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// checkKeyIDs fails if a stored card is sealed with a key not in the
// keyring, or with another key under the same id (one card of each key id
// is opened: a key generated twice during a rotation, one per host):
// better to refuse to start than to fail every payment of it. It also
// checks the hash key on the first card by id. One query reads the first
// card (by id) of each key id.
func (s *Cards) checkKeyIDs(ctx context.Context) error {
	type sealed struct {
		id, keyID string
		ct, hash  []byte
	}
	rows, err := s.db.Read.QueryContext(ctx, `SELECT c.id, c.pan_key_id, c.pan_ct, c.pan_hash
		FROM cards c JOIN (SELECT pan_key_id, MIN(id) AS id FROM cards GROUP BY pan_key_id) k ON c.id = k.id
		ORDER BY c.id`)
	if err != nil {
		return fmt.Errorf("card: key check: %w", err)
	}
	var firsts []sealed
	for rows.Next() {
		var r sealed
		if err := rows.Scan(&r.id, &r.keyID, &r.ct, &r.hash); err != nil {
			rows.Close()
			return fmt.Errorf("card: key check: %w", err)
		}
		firsts = append(firsts, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("card: key check: %w", err)
	}
	if len(firsts) == 0 {
		return nil
	}
	var first PAN // the number of the first card by id
	for i, r := range firsts {
		if _, ok := s.vault.aeads[r.keyID]; !ok {
			return configErr("keyring lacks key %q, which stored cards are sealed with", r.keyID)
		}
		pan, err := s.vault.open(r.id, r.keyID, r.ct)
		if err != nil {
			return configErr("key %q of the keyring does not open the cards sealed under that id (%v)", r.keyID, err)
		}
		if i == 0 {
			first = pan
		}
	}
	// The hash key must be the one the stored lookup hashes were made
	// with, or no card would ever be found: check it on one card.
	if !hmac.Equal(s.vault.hash(first), firsts[0].hash) {
		return configErr("HashKey is not the key the stored cards' lookup hashes were made with")
	}
	return nil
}

func (s *Cards) now() time.Time { return s.cfg.Now().UTC() }

// Issue implements Service.
func (s *Cards) Issue(ctx context.Context, req IssueRequest) (*Card, error) {
	ctl, err := req.validate()
	if err != nil {
		return nil, err
	}
	key := req.Key
	req.Key, req.Controls = "", ctl
	return s.write(ctx, MethodIssue, key, req, func(ctx context.Context, tx *sql.Tx, now time.Time) (*Card, []event.Event, error) {
		exp := time.Date(now.Year()+s.cfg.ExpiryYears, now.Month(), 1, 0, 0, 0, 0, time.UTC)
		c := &Card{
			ID: id.New("card_", now), AccountID: req.AccountID, CustomerID: req.CustomerID, Currency: req.Currency,
			ExpiryMonth: int(exp.Month()), ExpiryYear: exp.Year(),
			State: StateActive, Controls: ctl, CreatedAt: now, UpdatedAt: now,
		}
		if err := s.insertCard(ctx, tx, c); err != nil {
			return nil, nil, err
		}
		ev, err := newEvent(TopicIssued, c.ID, now, c)
		return c, []event.Event{ev}, err
	})
}

// maxPANDraws bounds the search for an unused card number. With a 6-digit
// BIN there are 10^9 numbers; a second draw is already rare.
const maxPANDraws = 16

// insertCard gives c a new, unused card number and inserts it. A number
// already taken (its hash is unique) is skipped for another draw; on
// PostgreSQL a concurrent insert of the same number waits for the other
// transaction, and loses only if it commits.
func (s *Cards) insertCard(ctx context.Context, tx *sql.Tx, c *Card) error {
	ctl, err := json.Marshal(c.Controls)
	if err != nil {
		return err
	}
	for range maxPANDraws {
		pan, err := s.newPAN()
		if err != nil {
			return err
		}
		keyID, ct, err := s.vault.seal(c.ID, pan)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO cards (id, account_id, customer_id, currency,
			pan_hash, pan_key_id, pan_ct, pan_first6, pan_last4, expiry_month, expiry_year,
			state, block_reason, controls, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`),
			c.ID, c.AccountID, c.CustomerID, string(c.Currency),
			s.vault.hash(pan), keyID, ct, pan.First6(), pan.Last4(), c.ExpiryMonth, c.ExpiryYear,
			string(c.State), string(c.BlockReason), string(ctl), c.CreatedAt.UnixNano(), c.UpdatedAt.UnixNano())
		if err != nil {
			return fmt.Errorf("insert card: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("insert card: %w", err)
		} else if n == 1 {
			c.PANFirst6, c.PANLast4 = pan.First6(), pan.Last4()
			return nil
		}
	}
	return errors.Errorf(errors.Internal, "card: no unused card number in %d draws from BIN %s", maxPANDraws, s.cfg.BIN)
}

// newPAN draws a card number: the BIN, uniformly random digits, and the
// Luhn check digit.
func (s *Cards) newPAN() (PAN, error) {
	b := make([]byte, 0, PANLength)
	b = append(b, s.cfg.BIN...)
	var r [16]byte
	s.randMu.Lock()
	defer s.randMu.Unlock()
	for len(b) < PANLength-1 {
		if _, err := io.ReadFull(s.cfg.Rand, r[:]); err != nil {
			return "", fmt.Errorf("card: random digits: %w", err)
		}
		for _, x := range r {
			// 250 is the largest multiple of 10 in a byte: rejecting
			// 250..255 keeps the digits uniform.
			if x < 250 && len(b) < PANLength-1 {
				b = append(b, '0'+x%10)
			}
		}
	}
	b = append(b, LuhnDigit(string(b)))
	return PAN(b), nil
}

// Get implements Service.
func (s *Cards) Get(ctx context.Context, id string) (*Card, error) {
	if err := checkCardID(id); err != nil {
		return nil, err
	}
	row := s.db.QueryRow(ctx, `SELECT `+cardCols+` FROM cards WHERE id = ?`, id)
	c, err := scanCard(row, s.now())
	if err != nil {
		return nil, readErr(err, "card "+id+" not found")
	}
	return c, nil
}

// List implements Service.
func (s *Cards) List(ctx context.Context, customerID string) ([]Card, error) {
	if err := checkID("customer_id", customerID); err != nil {
		return nil, err
	}
	rows, err := s.db.Read.QueryContext(ctx, s.db.Rebind(`SELECT `+cardCols+` FROM cards WHERE customer_id = ? ORDER BY created_at, id`), customerID)
	if err != nil {
		return nil, readErr(err, "")
	}
	defer rows.Close()
	now := s.now()
	out := []Card{}
	for rows.Next() {
		c, err := scanCard(rows, now)
		if err != nil {
			return nil, readErr(err, "")
		}
		out = append(out, *c)
	}
	if err := rows.Err(); err != nil {
		return nil, readErr(err, "")
	}
	return out, nil
}

// Lookup implements Service.
func (s *Cards) Lookup(ctx context.Context, pan string) (*Card, error) {
	if err := checkPANDigits(pan); err != nil {
		return nil, err
	}
	const unknown = "no card with that number"
	if !LuhnValid(pan) {
		return nil, errors.New(errors.NotFound, unknown)
	}
	row := s.db.QueryRow(ctx, `SELECT `+cardCols+` FROM cards WHERE pan_hash = ?`, s.vault.hash(PAN(pan)))
	c, err := scanCard(row, s.now())
	if err != nil {
		return nil, readErr(err, unknown)
	}
	return c, nil
}

// VerifyCVC implements Service.
func (s *Cards) VerifyCVC(ctx context.Context, cardID, cvc string) (bool, error) {
	if err := checkCardID(cardID); err != nil {
		return false, err
	}
	var keyID string
	var ct []byte
	var month, year int
	row := s.db.QueryRow(ctx, `SELECT pan_key_id, pan_ct, expiry_month, expiry_year FROM cards WHERE id = ?`, cardID)
	if err := row.Scan(&keyID, &ct, &month, &year); err != nil {
		return false, readErr(err, "card "+cardID+" not found")
	}
	pan, err := s.vault.open(cardID, keyID, ct)
	if err != nil {
		return false, err
	}
	want, err := s.cfg.CVK.cvc2(pan, month, year)
	if err != nil {
		return false, errors.Wrap(err, errors.Internal, "card: cvc")
	}
	right := len(cvc) == len(want) && digits(cvc) && cvcEqual(cvc, want)
	ok, err := s.countCheck(ctx, cardID, right)
	if err != nil {
		return false, storeErr("count cvc failures", err)
	}
	return ok, nil
}

// CountFailedCheck implements Service.
func (s *Cards) CountFailedCheck(ctx context.Context, cardID string) error {
	if err := checkCardID(cardID); err != nil {
		return err
	}
	var one int
	if err := s.db.QueryRow(ctx, `SELECT 1 FROM cards WHERE id = ?`, cardID).Scan(&one); err != nil {
		return readErr(err, "card "+cardID+" not found")
	}
	if _, err := s.countCheck(ctx, cardID, false); err != nil {
		return storeErr("count a failed check", err)
	}
	return nil
}

// countCheck decides a check of a card's data (right: whether the data
// matched) against the card's lock, and reports whether it passes: never
// while the lock is engaged, else when right. A right check clears the
// count; a wrong one is counted, and the one that reaches
// Config.MaxCVCFailures engages the lock and publishes card.cvc.locked.
func (s *Cards) countCheck(ctx context.Context, cardID string, right bool) (bool, error) {
	now := s.now().UnixNano()
	window := s.cfg.CVCFailureWindow.Nanoseconds()
	// The lock is read, and the failure counted, in one transaction that
	// holds the card's row (PostgreSQL) or the write lock (SQLite), so
	// concurrent guesses are decided one after another against the count.
	var ok bool
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		if s.db.Dialect == store.Postgres {
			if _, err := tx.ExecContext(ctx, s.db.Rebind(`SELECT id FROM cards WHERE id = ? FOR UPDATE`), cardID); err != nil {
				return err
			}
		}
		var failures, lastAt int64
		switch err := tx.QueryRowContext(ctx, s.db.Rebind(`SELECT failures, last_at FROM card_cvc_failures WHERE card_id = ?`), cardID).Scan(&failures, &lastAt); {
		case errors.IsErr(err, sql.ErrNoRows):
		case err != nil:
			return err
		}
		if failures >= int64(s.cfg.MaxCVCFailures) && now-lastAt < window {
			return nil // locked: not even the right one
		}
		if right {
			ok = true
			if failures > 0 {
				_, err := tx.ExecContext(ctx, s.db.Rebind(`DELETE FROM card_cvc_failures WHERE card_id = ?`), cardID)
				return err
			}
			return nil
		}
		var count int64
		err := tx.QueryRowContext(ctx, s.db.Rebind(`INSERT INTO card_cvc_failures (card_id, failures, last_at) VALUES (?, 1, ?)
			ON CONFLICT (card_id) DO UPDATE SET
				failures = CASE WHEN card_cvc_failures.last_at <= ? THEN 1 ELSE card_cvc_failures.failures + 1 END,
				last_at = excluded.last_at
			RETURNING failures`), cardID, now, now-window).Scan(&count)
		if err != nil || count != int64(s.cfg.MaxCVCFailures) {
			return err
		}
		ev, err := newEvent(TopicCVCLocked, cardID, time.Unix(0, now).UTC(), CVCLocked{CardID: cardID, Failures: int(count), Until: time.Unix(0, now+window).UTC()})
		if err != nil {
			return err
		}
		return event.Append(ctx, tx, s.db, ev)
	})
	return ok, err
}

// Reveal implements Service.
func (s *Cards) Reveal(ctx context.Context, req RevealRequest) (*Details, error) {
	if err := req.validate(); err != nil {
		return nil, err
	}
	var d *Details
	// refusal is the answer to a reveal refused for what it asked. Its
	// card.details.reveal_refused event is written, and committed, in the
	// transaction that refused it; the refusal stands if it cannot be.
	var refusal error
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		refusal = nil
		now := s.now()
		refuse := func(why string, answer error) error {
			refusal = answer
			ev, err := newEvent(TopicRevealRefused, req.CardID, now, RevealRefused{
				CardID: req.CardID, CustomerID: req.CustomerID, Why: why, Reason: req.Reason, Caller: rpc.CallerFrom(ctx), At: now,
			})
			if err != nil {
				return err
			}
			return event.Append(ctx, tx, s.db, ev)
		}
		var keyID string
		var ct []byte
		row := tx.QueryRowContext(ctx, s.db.Rebind(`SELECT `+cardCols+`, pan_key_id, pan_ct FROM cards WHERE id = ?`), req.CardID)
		c, err := scanCard(row, now, &keyID, &ct)
		if err != nil {
			if errors.IsErr(err, sql.ErrNoRows) {
				return refuse(RefusedNoSuchCard, readErr(err, "card "+req.CardID+" not found"))
			}
			return readErr(err, "card "+req.CardID+" not found")
		}
		if c.CustomerID != req.CustomerID {
			return refuse(RefusedNotTheirs, errors.Errorf(errors.NotFound, "card %s not found", req.CardID))
		}
		if c.State == StateBlocked || c.State == StateClosed {
			// RefusedBlocked and RefusedClosed are the states' own words.
			return refuse(string(c.State), errors.Errorf(errors.Conflict, "card %s is %s: its details are no longer shown", c.ID, c.State))
		}
		pan, err := s.vault.open(c.ID, keyID, ct)
		if err != nil {
			return err
		}
		cvc, err := s.cfg.CVK.cvc2(pan, c.ExpiryMonth, c.ExpiryYear)
		if err != nil {
			return errors.Wrap(err, errors.Internal, "card: cvc")
		}
		rev := Revealed{
			ID: id.New("rvl_", now), CardID: c.ID, CustomerID: c.CustomerID, MaskedPAN: c.MaskedPAN(),
			Reason: req.Reason, Caller: rpc.CallerFrom(ctx), At: now,
		}
		if _, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO card_reveals (id, card_id, customer_id, reason, caller, at) VALUES (?, ?, ?, ?, ?, ?)`),
			rev.ID, rev.CardID, rev.CustomerID, rev.Reason, rev.Caller, now.UnixNano()); err != nil {
			return fmt.Errorf("insert reveal: %w", err)
		}
		ev, err := newEvent(TopicRevealed, c.ID, now, rev)
		if err != nil {
			return err
		}
		if err := event.Append(ctx, tx, s.db, ev); err != nil {
			return err
		}
		d = &Details{CardID: c.ID, PAN: string(pan), ExpiryMonth: c.ExpiryMonth, ExpiryYear: c.ExpiryYear, CVC: cvc}
		return nil
	})
	if refusal != nil {
		if err == nil {
			s.notify() // the refusal's event committed
		}
		return nil, refusal
	}
	if err != nil {
		return nil, storeErr(MethodReveal, err)
	}
	s.notify()
	return d, nil
}

// Freeze implements Service.
func (s *Cards) Freeze(ctx context.Context, req StateRequest) (*Card, error) {
	return s.stateChange(ctx, MethodFreeze, req, func(c *Card) (bool, error) {
		switch c.State {
		case StateFrozen:
			return false, nil
		case StateActive:
			c.State = StateFrozen
			return true, nil
		}
		return false, stateConflict(c, "frozen")
	})
}

// Unfreeze implements Service.
func (s *Cards) Unfreeze(ctx context.Context, req StateRequest) (*Card, error) {
	return s.stateChange(ctx, MethodUnfreeze, req, func(c *Card) (bool, error) {
		switch c.State {
		case StateActive:
			return false, nil
		case StateFrozen:
			c.State = StateActive
			return true, nil
		}
		return false, stateConflict(c, "unfrozen")
	})
}

// Close implements Service.
func (s *Cards) Close(ctx context.Context, req StateRequest) (*Card, error) {
	return s.stateChange(ctx, MethodClose, req, func(c *Card) (bool, error) {
		switch c.State {
		case StateClosed:
			return false, nil
		case StateActive, StateFrozen, StateExpired:
			c.State = StateClosed
			return true, nil
		}
		return false, stateConflict(c, "closed")
	})
}

// Block implements Service.
func (s *Cards) Block(ctx context.Context, req BlockRequest) (*Card, error) {
	if req.Reason != BlockLost && req.Reason != BlockStolen {
		return nil, badf("reason must be %q or %q", BlockLost, BlockStolen)
	}
	h := req
	h.Key = ""
	return s.change(ctx, MethodBlock, req.Key, req.CardID, req.CustomerID, h, func(c *Card) (bool, error) {
		switch c.State {
		case StateBlocked:
			if c.BlockReason == req.Reason {
				return false, nil
			}
			return false, errors.Errorf(errors.Conflict, "card %s is already blocked as %s", c.ID, c.BlockReason)
		case StateActive, StateFrozen, StateExpired:
			c.State, c.BlockReason = StateBlocked, req.Reason
			return true, nil
		}
		return false, stateConflict(c, "blocked")
	})
}

// SetControls implements Service.
func (s *Cards) SetControls(ctx context.Context, req SetControlsRequest) (*Card, error) {
	ctl, err := req.Controls.normalize()
	if err != nil {
		return nil, err
	}
	h := req
	h.Key, h.Controls = "", ctl
	return s.change(ctx, MethodSetControls, req.Key, req.CardID, req.CustomerID, h, func(c *Card) (bool, error) {
		if c.State == StateBlocked || c.State == StateClosed {
			return false, errors.Errorf(errors.Conflict, "card %s is %s: its controls can no longer change", c.ID, c.State)
		}
		changed := !controlsEqual(c.Controls, ctl)
		c.Controls = ctl
		return changed, nil
	})
}

func controlsEqual(a, b Controls) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

func stateConflict(c *Card, want string) error {
	return errors.Errorf(errors.Conflict, "card %s is %s and cannot be %s", c.ID, c.State, want)
}

func (s *Cards) stateChange(ctx context.Context, method string, req StateRequest, next func(*Card) (bool, error)) (*Card, error) {
	h := req
	h.Key = ""
	return s.change(ctx, method, req.Key, req.CardID, req.CustomerID, h, next)
}

// change applies next to a card under a row lock and, if it changed the
// card, stores it and publishes the matching event. hashed is the request
// without its key.
func (s *Cards) change(ctx context.Context, method, key, cardID, customerID string, hashed any, next func(*Card) (bool, error)) (*Card, error) {
	if err := checkTarget(key, cardID, customerID); err != nil {
		return nil, err
	}
	return s.write(ctx, method, key, hashed, func(ctx context.Context, tx *sql.Tx, now time.Time) (*Card, []event.Event, error) {
		q := `SELECT ` + cardCols + ` FROM cards WHERE id = ?`
		if s.db.Dialect == store.Postgres {
			q += ` FOR UPDATE`
		}
		c, err := scanCard(tx.QueryRowContext(ctx, s.db.Rebind(q), cardID), now)
		if err != nil {
			return nil, nil, readErr(err, "card "+cardID+" not found")
		}
		if customerID != "" && c.CustomerID != customerID {
			return nil, nil, errors.Errorf(errors.NotFound, "card %s not found", cardID)
		}
		before := *c
		changed, err := next(c)
		if err != nil || !changed {
			return c, nil, err
		}
		c.UpdatedAt = now
		// A change is either of state (never to expired, which is derived)
		// or of controls.
		if c.State != before.State {
			_, err = tx.ExecContext(ctx, s.db.Rebind(`UPDATE cards SET state = ?, block_reason = ?, updated_at = ? WHERE id = ?`),
				string(c.State), string(c.BlockReason), now.UnixNano(), c.ID)
		} else {
			var ctl []byte
			if ctl, err = json.Marshal(c.Controls); err == nil {
				_, err = tx.ExecContext(ctx, s.db.Rebind(`UPDATE cards SET controls = ?, updated_at = ? WHERE id = ?`),
					string(ctl), now.UnixNano(), c.ID)
			}
		}
		if err != nil {
			return nil, nil, fmt.Errorf("update card: %w", err)
		}
		var ev event.Event
		if c.State != before.State {
			ev, err = newEvent(TopicStateChanged, c.ID, now, StateChange{Card: *c, From: before.State, To: c.State})
		} else {
			ev, err = newEvent(TopicControlsChanged, c.ID, now, ControlsChange{Card: *c, Previous: before.Controls})
		}
		return c, []event.Event{ev}, err
	})
}

// apply is one write's change, inside its transaction at time now: the card
// it answers with and the events it publishes.
type apply func(ctx context.Context, tx *sql.Tx, now time.Time) (*Card, []event.Event, error)

// errKeyRace: another transaction recorded the same idempotency key first.
var errKeyRace = errors.New(errors.Conflict, "idempotency key raced")

// write runs one idempotent write: it answers a remembered key from the
// record, or else applies fn, records the key with the answer, appends the
// events and commits, all in one transaction.
func (s *Cards) write(ctx context.Context, method, key string, hashed any, fn apply) (*Card, error) {
	hash, err := requestHash(method, hashed)
	if err != nil {
		return nil, err
	}
	var out *Card
	var wrote bool
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		prev, err := s.remembered(ctx, tx, key)
		if err != nil {
			return err
		}
		if prev != nil {
			out, err = prev.answer(key, method, hash)
			return err
		}
		now := s.now()
		c, evs, err := fn(ctx, tx, now)
		if err != nil {
			return err
		}
		if err := s.remember(ctx, tx, key, method, hash, c, now); err != nil {
			return err
		}
		if err := event.Append(ctx, tx, s.db, evs...); err != nil {
			return err
		}
		out, wrote = c, len(evs) > 0
		return nil
	})
	if errors.IsErr(err, errKeyRace) {
		// The other transaction has committed: answer from its record.
		var prev *request
		if prev, err = s.remembered(ctx, s.db.Read, key); err == nil {
			if prev == nil {
				err = errors.Errorf(errors.Unavailable, "idempotency key %q raced with a write that did not commit; retry", key)
			} else {
				out, err = prev.answer(key, method, hash)
			}
		}
	}
	if err != nil {
		return nil, storeErr(method, err)
	}
	if wrote {
		s.notify()
	}
	return out, nil
}

func (s *Cards) notify() {
	if s.cfg.Notify != nil {
		s.cfg.Notify()
	}
}

// request is a remembered write.
type request struct {
	method string
	hash   []byte
	result []byte
}

func (r *request) answer(key, method string, hash []byte) (*Card, error) {
	if r.method != method || !bytes.Equal(r.hash, hash) {
		return nil, errors.Errorf(errors.Conflict, "idempotency key %q was used for a different request", key)
	}
	c := new(Card)
	if err := json.Unmarshal(r.result, c); err != nil {
		return nil, errors.Wrap(err, errors.Internal, "card: remembered result is malformed")
	}
	return c, nil
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *Cards) remembered(ctx context.Context, q querier, key string) (*request, error) {
	r := new(request)
	err := q.QueryRowContext(ctx, s.db.Rebind(`SELECT method, req_hash, result FROM card_requests WHERE key = ?`), key).Scan(&r.method, &r.hash, &r.result)
	if err == sql.ErrNoRows {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read request: %w", err)
	}
	return r, nil
}

func (s *Cards) remember(ctx context.Context, tx *sql.Tx, key, method string, hash []byte, c *Card, now time.Time) error {
	result, err := json.Marshal(c)
	if err != nil {
		return err
	}
	res, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO card_requests (key, method, req_hash, card_id, result, at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`),
		key, method, hash, c.ID, string(result), now.UnixNano())
	if err != nil {
		return fmt.Errorf("record request: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("record request: %w", err)
	} else if n == 0 {
		return errKeyRace
	}
	return nil
}

// requestHash identifies a request's content apart from its key, so a key
// reused with a different request can be told from a retry. encoding/json
// writes struct fields in order, so the encoding is canonical.
func requestHash(method string, req any) ([]byte, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, errors.Wrap(err, errors.Internal, "card: request hash")
	}
	h := sha256.New()
	io.WriteString(h, method)
	h.Write([]byte{0})
	h.Write(b)
	return h.Sum(nil)[:16], nil
}

// Rekey re-encrypts with the keyring's current key every stored card number
// sealed with another key, a batch per transaction, and returns how many it
// moved. Run it after making a new key current; when it returns, no stored
// card needs the old keys, which may then leave the keyring. It is safe to
// run while the service runs, to run again, and to run in several processes
// at once: each returns only once a batch finds nothing left to move.
func (s *Cards) Rekey(ctx context.Context) (int, error) {
	const batch = 200
	total := 0
	for {
		n := 0
		err := s.db.InTx(ctx, func(tx *sql.Tx) error {
			q := `SELECT id, pan_key_id, pan_ct FROM cards WHERE pan_key_id <> ? ORDER BY id LIMIT ?`
			if s.db.Dialect == store.Postgres {
				q += ` FOR UPDATE`
			}
			rows, err := tx.QueryContext(ctx, s.db.Rebind(q), s.vault.current, batch)
			if err != nil {
				return err
			}
			type sealed struct {
				id, keyID string
				ct        []byte
			}
			var todo []sealed
			for rows.Next() {
				var r sealed
				if err := rows.Scan(&r.id, &r.keyID, &r.ct); err != nil {
					rows.Close()
					return err
				}
				todo = append(todo, r)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			for _, r := range todo {
				pan, err := s.vault.open(r.id, r.keyID, r.ct)
				if err != nil {
					return err
				}
				keyID, ct, err := s.vault.seal(r.id, pan)
				if err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE cards SET pan_key_id = ?, pan_ct = ? WHERE id = ?`), keyID, ct, r.id); err != nil {
					return err
				}
			}
			n = len(todo)
			return nil
		})
		if err != nil {
			return total, storeErr("rekey batch", err)
		}
		total += n
		// Until a batch finds none: a batch that found fewer may have
		// waited on another run's locked rows (PostgreSQL), and left out
		// those it rekeyed, while cards it had not reached remain.
		if n == 0 {
			return total, nil
		}
	}
}

func newEvent(topic, key string, now time.Time, payload any) (event.Event, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return event.Event{}, errors.Wrap(err, errors.Internal, "card: event payload")
	}
	return event.Event{Topic: topic, Key: key, Time: now, Payload: b}, nil
}

// storeErr returns err as the caller should see it: vocabulary errors as
// they are, an ended context or a COMMIT whose answer was lost (it may
// have been stored) as Timeout, anything else as Unavailable with err as
// the cause.
func storeErr(op string, err error) error {
	var e *errors.Error
	if errors.As(err, &e) {
		return err
	}
	if errors.CodeOf(err) == errors.Timeout {
		return errors.Wrap(err, errors.Timeout, "card: "+op+": deadline passed; retry with the same key")
	}
	return store.WriteFailed("card "+op, err)
}

// readErr maps a failed single-row read: no row is NotFound with message
// missing, anything else as storeErr.
func readErr(err error, missing string) error {
	if errors.IsErr(err, sql.ErrNoRows) && missing != "" {
		return errors.New(errors.NotFound, missing)
	}
	return storeErr("read", err)
}

const cardCols = `id, account_id, customer_id, currency, pan_first6, pan_last4, expiry_month, expiry_year, state, block_reason, controls, created_at, updated_at`

type scanner interface{ Scan(...any) error }

// scanCard reads a row of cardCols (and then extra), deriving the expired
// state at now.
func scanCard(sc scanner, now time.Time, extra ...any) (*Card, error) {
	c := new(Card)
	var ctl string
	var created, updated int64
	dest := append([]any{&c.ID, &c.AccountID, &c.CustomerID, &c.Currency, &c.PANFirst6, &c.PANLast4,
		&c.ExpiryMonth, &c.ExpiryYear, &c.State, &c.BlockReason, &ctl, &created, &updated}, extra...)
	if err := sc.Scan(dest...); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(ctl), &c.Controls); err != nil {
		return nil, errors.Wrap(err, errors.Internal, "card: stored controls are malformed")
	}
	c.CreatedAt, c.UpdatedAt = time.Unix(0, created).UTC(), time.Unix(0, updated).UTC()
	if (c.State == StateActive || c.State == StateFrozen) && c.ExpiredAt(now) {
		c.State = StateExpired
	}
	return c, nil
}
