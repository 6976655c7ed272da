package authorization

import (
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/event"
	"github.com/corebank/corebank/id"
	"github.com/corebank/corebank/ledger"
	"github.com/corebank/corebank/lock"
	"github.com/corebank/corebank/money"
	"github.com/corebank/corebank/obs"
	"github.com/corebank/corebank/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DefaultHoldTTL is how long a hold lives when Config.HoldTTL is zero.
const DefaultHoldTTL = 7 * 24 * time.Hour

// Config configures an Authorizer.
type Config struct {
	// Card finds cards and verifies CVCs. Required.
	Card card.Service
	// Ledger holds and moves the money. Required.
	Ledger ledger.Service
	// Settlement maps each currency to the ledger account holds are
	// destined for and financial requests are paid to (the card scheme's
	// settlement account). A card whose currency is missing is declined
	// with SystemError.
	Settlement map[money.Currency]string
	// HoldTTL is how long a hold reserves funds before the ledger may
	// expire it. Default DefaultHoldTTL.
	HoldTTL time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Log receives what cannot be returned (a failed compensation).
	// Default: discarded.
	Log *slog.Logger
	// Notify is called after each commit that wrote an event, to wake the
	// outbox relay. It must not block.
	Notify func()
	// Rand is where authorization codes come from. Default crypto/rand.
	Rand io.Reader
	// AnswerEarly answers an approval as soon as its ledger operation is
	// durable and finishes its record behind the answer (see complete):
	// one durable write fewer on the answer's path. Set it only where this
	// Authorizer is the one process deciding on its store (the embedded
	// shape); readers in other processes could see a record pending that
	// the network was already told about.
	AnswerEarly bool
	// RecoverEvery is how often the service completes records left pending
	// (RecoverPending) while it runs, besides at Open: a record answered
	// early whose finish failed, or a ledger call that failed with an
	// unknown outcome. Default 30s; negative: only at Open.
	RecoverEvery time.Duration
	// Metrics, if not nil, receives the service's metrics:
	// corebank_authorization_answers_total{kind, reason} (every answer,
	// retransmissions again), corebank_authorization_recovered_total
	// (pending records completed by RecoverPending),
	// corebank_authorization_finish_failures_total (records answered early
	// and left pending), and its group commit's (store.Committer.Instrument).
	Metrics prometheus.Registerer
}

// Authorizer implements Service on a store.DB, calling the card service and
// the ledger.
//
// In one process, requests are serialised per network message and per
// card (so that spend limits see every earlier decision); across
// processes sharing a PostgreSQL database the unique network key and
// conditional updates keep every message to one effect.
type Authorizer struct {
	db      *store.DB
	tx      *store.Committer // group-commits the records' writes
	st      *statements      // prepared on the writer, for the group commit
	cfg     Config
	locks   lock.Local     // per network message and per card, in this process
	bg      sync.WaitGroup // records being finished behind their answers (Config.AnswerEarly)
	bgMu    sync.Mutex     // guards closing, and bg.Add against Close's Wait
	closing bool

	stopSweep func()        // stops the periodic RecoverPending
	sweepDone chan struct{} // closed when it has stopped

	answers    *prometheus.CounterVec
	recovered  prometheus.Counter
	finishErr  prometheus.Counter
	queuedDone prometheus.Counter
	undone     prometheus.Counter

	randMu sync.Mutex
}

var _ Service = (*Authorizer)(nil)

// Open checks cfg, migrates db (the authorization table and the event
// outbox) and returns the service. Errors: BadRequest (bad config).
func Open(ctx context.Context, db *store.DB, cfg Config) (*Authorizer, error) {
	if cfg.Card == nil || cfg.Ledger == nil {
		return nil, errors.New(errors.BadRequest, "authorization: config needs Card and Ledger")
	}
	if cfg.HoldTTL == 0 {
		cfg.HoldTTL = DefaultHoldTTL
	}
	if cfg.HoldTTL < 0 {
		return nil, errors.New(errors.BadRequest, "authorization: HoldTTL must be positive")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("authorization: %w", err)
	}
	if err := store.Migrate(ctx, db, "authorization", sub); err != nil {
		return nil, fmt.Errorf("authorization: %w", err)
	}
	if err := event.Migrate(ctx, db); err != nil {
		return nil, fmt.Errorf("authorization: %w", err)
	}
	st, err := prepare(ctx, db)
	if err != nil {
		return nil, err
	}
	a := &Authorizer{db: db, tx: store.NewCommitter(db, 0), st: st, cfg: cfg}
	if err := a.instrument(); err != nil {
		a.Close()
		return nil, err
	}
	// On SQLite this process is the only writer, so every pending record is
	// left from before it started; on PostgreSQL another process may be
	// finishing one, so only the stale are taken.
	after := time.Duration(0)
	if db.Dialect != store.SQLite {
		after = time.Minute
	}
	if _, err := a.RecoverPending(ctx, after); err != nil {
		// Left pending: the sweep tries again, and a retransmission or
		// a reversal completes its record meanwhile.
		cfg.Log.WarnContext(ctx, "authorization: pending records not all completed at start", "err", err)
	}
	if _, err := a.RecoverQueued(ctx, after); err != nil {
		// Left queued: the sweep tries again, and an original arriving
		// meanwhile is declined.
		cfg.Log.WarnContext(ctx, "authorization: queued reversals not all carried out at start", "err", err)
	}
	if _, err := a.RecoverUndos(ctx, after); err != nil {
		// Left recorded: the sweep tries again.
		cfg.Log.WarnContext(ctx, "authorization: undos not all carried out at start", "err", err)
	}
	if cfg.RecoverEvery == 0 {
		cfg.RecoverEvery = 30 * time.Second
		a.cfg.RecoverEvery = cfg.RecoverEvery
	}
	if cfg.RecoverEvery > 0 {
		sctx, stop := context.WithCancel(context.Background())
		a.stopSweep, a.sweepDone = stop, make(chan struct{})
		go a.sweep(sctx, max(after, 5*time.Second))
	}
	return a, nil
}

// sweep runs RecoverPending, RecoverQueued and RecoverUndos every RecoverEvery on records untouched for
// olderThan (a decision under way holds its record's lock, and recovery
// waits for it, so olderThan only spares them the wait).
func (a *Authorizer) sweep(ctx context.Context, olderThan time.Duration) {
	defer close(a.sweepDone)
	t := time.NewTicker(a.cfg.RecoverEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := a.RecoverPending(ctx, olderThan); err != nil && ctx.Err() == nil {
			a.cfg.Log.WarnContext(ctx, "authorization: completing pending records failed; trying again later", "err", err)
		}
		if _, err := a.RecoverQueued(ctx, olderThan); err != nil && ctx.Err() == nil {
			a.cfg.Log.WarnContext(ctx, "authorization: carrying out queued reversals failed; trying again later", "err", err)
		}
		if _, err := a.RecoverUndos(ctx, olderThan); err != nil && ctx.Err() == nil {
			a.cfg.Log.WarnContext(ctx, "authorization: carrying out undos failed; trying again later", "err", err)
		}
	}
}

func (a *Authorizer) instrument() error {
	a.answers = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: obs.Namespace, Name: "authorization_answers_total",
		Help: "Authorization answers by kind and reason (approved, partial_approval, or why declined); a retransmission's answer counts again.",
	}, []string{"kind", "reason"})
	a.recovered = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: obs.Namespace, Name: "authorization_recovered_total",
		Help: "Pending authorization records completed by recovery (a crash between the ledger and the record).",
	})
	a.finishErr = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: obs.Namespace, Name: "authorization_finish_failures_total",
		Help: "Approvals answered before their record was finished whose record could not be finished; recovery completes them.",
	})
	a.queuedDone = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: obs.Namespace, Name: "authorization_queued_reversals_recovered_total",
		Help: "Queued reversals carried out by recovery (at start or by the sweep): their queuer's own attempt did not arrive.",
	})
	a.undone = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: obs.Namespace, Name: "authorization_undos_recovered_total",
		Help: "Ledger operations owed back (a record finished differently by another process) carried out by recovery: the first attempt failed.",
	})
	reg := a.cfg.Metrics
	if reg == nil {
		return nil
	}
	var err error
	if a.answers, err = obs.Register(reg, a.answers); err != nil {
		return fmt.Errorf("authorization: metrics: %w", err)
	}
	if a.recovered, err = obs.Register(reg, a.recovered); err != nil {
		return fmt.Errorf("authorization: metrics: %w", err)
	}
	if a.finishErr, err = obs.Register(reg, a.finishErr); err != nil {
		return fmt.Errorf("authorization: metrics: %w", err)
	}
	if a.queuedDone, err = obs.Register(reg, a.queuedDone); err != nil {
		return fmt.Errorf("authorization: metrics: %w", err)
	}
	if a.undone, err = obs.Register(reg, a.undone); err != nil {
		return fmt.Errorf("authorization: metrics: %w", err)
	}
	return a.tx.Instrument(reg)
}

// answered counts an answer.
func (a *Authorizer) answered(d *Decision, err error) (*Decision, error) {
	if err == nil && d != nil {
		a.answers.WithLabelValues(string(d.Kind), string(d.Reason)).Inc()
		if d.Replayed {
			d.Age = max(a.cfg.Now().Sub(d.At), 0)
		}
	}
	return d, err
}

// RecoverPending completes the records left pending for at least
// olderThan (by their last update): a crash between the ledger operation
// and the record, or a record that could not be finished behind its
// answer. Each is completed the way a retransmission would complete it:
// the recorded ledger operation is replayed under its own idempotency key
// (the ledger returns what it did), and the outcome recorded. It returns
// how many it completed. One that cannot be completed is left pending for
// the next run, the others are completed all the same, and the first
// failure is returned after them.
func (a *Authorizer) RecoverPending(ctx context.Context, olderThan time.Duration) (int, error) {
	list := func(limit int) ([]*record, error) {
		before := a.cfg.Now().Add(-olderThan).UnixNano()
		rows, err := a.db.Query(ctx, `SELECT `+columns+` FROM authorizations WHERE status = 'pending' AND updated_at <= ? ORDER BY updated_at LIMIT ?`, before, limit)
		if err != nil {
			return nil, fmt.Errorf("authorization: pending records: %w", err)
		}
		defer rows.Close()
		var batch []*record
		for rows.Next() {
			r, err := scanRecord(rows)
			if err != nil {
				return nil, fmt.Errorf("authorization: pending records: %w", err)
			}
			batch = append(batch, r)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("authorization: pending records: %w", err)
		}
		return batch, nil
	}
	return recoverEach(list, func(r *record) string { return r.networkKey }, func(r *record) error {
		err := a.recoverOne(ctx, r.networkKey)
		if err != nil {
			a.cfg.Log.WarnContext(ctx, "authorization: a pending record could not be completed; trying again later", "network_key", r.networkKey, "err", err)
		}
		return err
	})
}

// recoverEach does each item list returns (up to limit at a time, oldest
// first) and returns how many it did. One that fails is skipped for the
// rest of the run (list is asked for more to see past it), the others are
// done all the same, and the first failure is returned after them.
func recoverEach[T any](list func(limit int) ([]T, error), key func(T) string, do func(T) error) (int, error) {
	const batch = 100
	n := 0
	var first error
	failed := make(map[string]bool)
	for {
		want := batch + len(failed)
		items, err := list(want)
		if err != nil {
			return n, err
		}
		progress := false // an item not tried before was tried
		for _, it := range items {
			k := key(it)
			if failed[k] {
				continue
			}
			progress = true
			if err := do(it); err != nil {
				failed[k] = true
				if first == nil {
					first = err
				}
				continue
			}
			n++
		}
		if !progress || len(items) < want {
			return n, first
		}
	}
}

func (a *Authorizer) recoverOne(ctx context.Context, key string) error {
	if r, err := a.find(ctx, key); err != nil || r == nil || r.status != statusPending {
		return err
	} else if r.Kind == KindReversal && r.Original != nil {
		// Completed as its retransmission would be, under the same locks:
		// the reversal's, its original's, the record it changes and its
		// card's (retransmitted).
		d, err := a.reverseAgain(ctx, r)
		if err != nil {
			return fmt.Errorf("authorization: recover %s: %w", r.ID, err)
		}
		a.recovered.Inc()
		a.cfg.Log.InfoContext(ctx, "authorization: completed a pending reversal", "authorization_id", r.ID, "network_key", key, "released", d.Amount)
		return nil
	}
	defer a.lock("net:" + key)()
	r, err := a.find(ctx, key)
	if err != nil || r == nil || r.status != statusPending {
		return err
	}
	defer a.lock("card:" + r.CardID)()
	if _, err := a.complete(ctx, r, nil); err != nil {
		return fmt.Errorf("authorization: recover %s: %w", r.ID, err)
	}
	a.recovered.Inc()
	a.cfg.Log.InfoContext(ctx, "authorization: completed a pending record", "authorization_id", r.ID, "network_key", key)
	return nil
}

// Close finishes the writes under way and stops the group committer. It
// does not close the store.
func (a *Authorizer) Close() error {
	if a.stopSweep != nil {
		a.stopSweep()
		<-a.sweepDone
	}
	a.bgMu.Lock()
	a.closing = true
	a.bgMu.Unlock()
	a.bg.Wait()
	a.tx.Close()
	a.st.close()
	return nil
}

// behind reports whether a record may be finished behind its answer, and
// if so counts the finish in bg: not once Close has begun, which waits for
// those counted and then stops the committer.
func (a *Authorizer) behind() bool {
	a.bgMu.Lock()
	defer a.bgMu.Unlock()
	if a.closing {
		return false
	}
	a.bg.Add(1)
	return true
}

// Authorize implements Service.
func (a *Authorizer) Authorize(ctx context.Context, req Request) (*Decision, error) {
	if err := req.validate(KindPurchase, KindCash, KindPreauth, KindRefund); err != nil {
		return nil, err
	}
	return a.answered(a.decide(ctx, &req))
}

// Financial implements Service.
func (a *Authorizer) Financial(ctx context.Context, req Request) (*Decision, error) {
	if err := req.validate(KindFinancial); err != nil {
		return nil, err
	}
	return a.answered(a.decide(ctx, &req))
}

// Increment implements Service.
func (a *Authorizer) Increment(ctx context.Context, req Request) (*Decision, error) {
	if err := req.validate(KindIncremental); err != nil {
		return nil, err
	}
	return a.answered(a.decide(ctx, &req))
}

// Advise implements Service.
func (a *Authorizer) Advise(ctx context.Context, req Request) (*Decision, error) {
	if err := req.validate(KindAdvice); err != nil {
		return nil, err
	}
	d, err := a.decide(ctx, &req)
	if err == nil && d.Reason == NetworkDeclined && req.Original != nil {
		err = a.releaseDeclined(ctx, req, d)
	}
	return a.answered(d, err)
}

// releaseDeclined releases what the bank holds for the original of an
// advice the network declined in stand-in (d): the bank's approval was not
// heard, the merchant was declined, and no clearing will come. It is a
// network reversal of the original under ids derived from the advice's
// ("ND" before its RRN), so a retransmitted advice does it once, and it is
// durable before the advice is acknowledged. An original of another card,
// not approved, or approved by the network too (an advice confirmed it) is
// left alone.
func (a *Authorizer) releaseDeclined(ctx context.Context, req Request, d *Decision) error {
	orig, err := a.find(ctx, req.Original.Key())
	if err == nil && orig != nil {
		// An approval answered early may be being finished behind its
		// answer (wait for it), or its finish failed (complete it).
		if orig, err = a.settled(ctx, orig); err == nil && orig.status == statusPending {
			orig, err = a.finished(ctx, orig)
		}
	}
	if err != nil || orig == nil || orig.CardID != d.CardID || !orig.Approved || orig.Kind == KindAdvice || orig.Kind == KindReversal {
		return err
	}
	if amount, currency := req.billing(); amount != orig.Requested || currency != orig.Currency {
		// Not the original's own advice: an incremental's, say, whose
		// DE90 names the authorization it would have added to. Nothing
		// in the message tells the two apart but the amount.
		return nil
	}
	var confirmed int
	if err := a.db.QueryRow(ctx, `SELECT COUNT(*) FROM authorizations WHERE kind = 'advice' AND original_key = ? AND approved = 1`,
		orig.networkKey).Scan(&confirmed); err != nil {
		return fmt.Errorf("authorization: advices of %s: %w", orig.networkKey, err)
	}
	if confirmed > 0 {
		return nil
	}
	n := d.Network
	n.RRN = declinedPrefix + n.RRN
	if _, err := a.reverse(ctx, ReversalRequest{Network: n, Original: *req.Original, Advice: true}); err != nil {
		return fmt.Errorf("authorization: release the original of a declined advice: %w", err)
	}
	return nil
}

// declinedPrefix marks the network id of the reversal that releases the
// original of an advice the network declined: "ND" and the advice's RRN,
// which no 12-character network RRN equals.
const declinedPrefix = "ND"

// decide is the one path of every request but reversals: card, checks,
// ledger, record. A message already recorded (a retransmission, or one
// left pending by a crash) is answered from its record, without asking the
// card service again: a retransmission must get its answer even when a
// new decision could not be made. Every later path ends in insert, which
// finds a record written meanwhile by another process, and no ledger
// operation runs before a record of it is durable.
func (a *Authorizer) decide(ctx context.Context, req *Request) (*Decision, error) {
	key := req.Network.Key()
	held := &heldLocks{}
	defer held.release()
	held.add(a.lock("net:" + key))
	if r, err := a.find(ctx, key); err != nil {
		return nil, err
	} else if r != nil {
		r.replayed = true
		standIn := req.Kind == KindAdvice || (req.Kind == KindRefund && req.StandIn)
		if standIn && req.Original == nil && !r.networkOwn() && r.Kind != KindReversal {
			// An advice reusing its original's ids without DE90: a
			// message of its own, as the gateway makes one with DE90
			// naming itself (identity "A" after DE7, DE90 the ids).
			held.release()
			held = &heldLocks{}
			o := req.Network
			req.Original = &o
			req.Network.TransmissionTime += "A"
			if err := req.Network.validate("advice"); err != nil {
				return nil, err
			}
			return a.decide(ctx, req)
		}
		// A retransmission has its first message's kind, card, amounts
		// and currencies; another request under the same network ids is
		// not one, and must not hear the first's answer (for an amount,
		// or a card, nobody holds).
		if amount, _ := req.billing(); !r.answers(req.Kind, amount, req.Digest()) {
			return nil, anotherRequest(r)
		}
		return a.complete(ctx, r, nil)
	}
	now := a.cfg.Now().UTC()
	r := a.newRecord(req, key, now)
	if len(req.PAN) < minPAN {
		// A number no card of ours can have (ISO/IEC 7812 allows 8
		// digits; we issue at least 12).
		return a.decline(ctx, r, CardNotFound, "")
	}

	c, err := a.cfg.Card.Lookup(ctx, string(req.PAN))
	if errors.Is(err, errors.NotFound) {
		return a.decline(ctx, r, CardNotFound, "")
	}
	if err != nil {
		return nil, fmt.Errorf("authorization: card lookup: %w", err)
	}
	held.addCard(a.lock("card:" + c.ID))
	r.CardID, r.AccountID, r.Currency = c.ID, c.AccountID, c.Currency

	if req.Kind == KindAdvice {
		return a.advise(ctx, req, r, c, held)
	}

	amount, currency := req.billing()
	if req.Kind == KindRefund && req.StandIn {
		// The network approved the refund on our behalf (its 0120): it
		// stands whatever the card's state, under the network's code, and
		// its card data is not checked.
		r.Approved, r.Reason, r.Amount, r.AuthCode, r.Detail = true, Approved, amount, req.AuthCode, detailStandIn
		if !isAuthCode(r.AuthCode) {
			r.AuthCode = a.authCode()
		}
		return a.record(ctx, r)
	}

	if req.Expiry != "" && req.Expiry != c.ExpiryYYMM() {
		// Counted as a failed check of the card's data, with wrong CVCs:
		// card testing guesses the expiry first, then the CVC, and the
		// lock must see both.
		if err := a.cfg.Card.CountFailedCheck(ctx, c.ID); err != nil {
			return nil, fmt.Errorf("authorization: count a wrong expiry: %w", err)
		}
		return a.decline(ctx, r, ExpiryMismatch, "")
	}
	if req.CVC != "" {
		ok, err := a.cfg.Card.VerifyCVC(ctx, c.ID, string(req.CVC))
		if err != nil {
			return nil, fmt.Errorf("authorization: verify cvc: %w", err)
		}
		if !ok {
			return a.decline(ctx, r, InvalidCVC, "")
		}
	}

	var orig *record
	if req.Kind == KindIncremental {
		orig, err = a.originalOf(ctx, *req.Original, c.ID)
		if err != nil {
			return nil, err
		}
		if !orig.holdsMoney() {
			// The network stood in for the original (the bank never saw
			// it, or answered late and reversed its own approval): its
			// advice holds the money, and the increment grows that.
			if orig, err = a.standInOf(ctx, req.Original.Key(), c.ID); err != nil {
				return nil, err
			}
		}
		if !orig.holdsMoney() {
			return a.decline(ctx, r, OriginalNotFound, "")
		}
		r.OriginalID = orig.ID
	}

	if req.Kind == KindRefund {
		// A refund is a credit: controls do not apply, and the money moves
		// with clearing. A card that can no longer be used is refused.
		switch {
		case c.State == card.StateBlocked || c.State == card.StateClosed:
			return a.decline(ctx, r, reasonFor(c.Check(card.Attempt{}, card.Spent{}, now)), "")
		case currency != c.Currency:
			return a.decline(ctx, r, NotPermitted, string(card.CurrencyMismatch))
		case amount == 0:
			return a.decline(ctx, r, InvalidAmount, "")
		}
		r.Approved, r.Reason, r.Amount = true, Approved, amount
		r.AuthCode = a.authCode()
		return a.record(ctx, r)
	}

	settlement := a.cfg.Settlement[c.Currency]
	if settlement == "" {
		return a.decline(ctx, r, SystemError, "no settlement account for "+string(c.Currency))
	}
	r.status = statusPending
	r.AuthCode = a.authCode()
	r.opKey, r.opAmount, r.opPartial = key, amount, req.PartialAllowed
	switch req.Kind {
	case KindFinancial:
		r.op, r.opTarget = opTransfer, settlement
	case KindIncremental:
		r.op, r.opTarget, r.opPartial = opIncr, orig.HoldID, false
		r.opExpires = now.Add(a.cfg.HoldTTL).UnixNano()
	default:
		r.op, r.opTarget = opPlace, settlement
		r.opExpires = now.Add(a.cfg.HoldTTL).UnixNano()
	}
	attempt := card.Attempt{Amount: amount, Currency: currency, MCC: req.MCC, Channel: req.Channel, Country: req.MerchantCountry}
	gate := func(ctx context.Context, tx *sql.Tx, r *record) error {
		if err := a.lockCard(ctx, tx, c.ID); err != nil {
			return err
		}
		if declined, err := a.reversedGate(ctx, tx, r); declined || err != nil {
			return err
		}
		// A card without spend limits is not totalled: one indexed scan
		// of its month saved in the group commit.
		var spent card.Spent
		if c.Controls.ReadsSpent() {
			var err error
			if spent, err = a.spent(ctx, tx, c.ID, now, c.Controls.VelocityWindow); err != nil {
				return err
			}
		}
		attempt := attempt
		if req.Kind == KindIncremental {
			// Not another payment: it grows one the velocity count has
			// already counted. Its amount is still spend.
			spent.CountInWindow = 0
			if c.Controls.PerTransactionLimit > 0 {
				// One payment, grown: Check's per-transaction limit is
				// on the whole of it, what the original holds now and
				// this. Increments of it still pending (their ledger
				// answer lost, or under way in another process) grow it
				// too.
				if err := tx.QueryRowContext(ctx, a.db.Rebind(`SELECT o.outstanding + CAST(COALESCE((SELECT SUM(i.op_amount) FROM authorizations i
					WHERE i.status = 'pending' AND i.op = 'incr' AND i.original_id = o.id), 0) AS BIGINT)
					FROM authorizations o WHERE o.id = ?`), r.OriginalID).Scan(&attempt.Held); err != nil {
					return fmt.Errorf("authorization: original of %s: %w", r.ID, err)
				}
			}
		}
		d := c.Check(attempt, spent, now)
		if d != card.NoDecline {
			r.setDeclined(reasonFor(d), string(d))
		}
		return nil
	}
	got, err := a.insertGated(ctx, r, gate)
	if err != nil {
		return nil, err
	}
	return a.complete(ctx, got, held)
}

// insertGated is insert, trying again while another process holds a lock
// the gate needs (errCardBusy), waiting a millisecond more each time.
func (a *Authorizer) insertGated(ctx context.Context, r *record, gate func(ctx context.Context, tx *sql.Tx, r *record) error) (*record, error) {
	return retryBusy(ctx, func() (*record, error) {
		got, inserted, err := a.insert(ctx, r, gate)
		if err == nil && !inserted {
			// Another process's, decided first: the same request's, or
			// another's under its ids (conflict, as decide finds it).
			if !got.answers(r.Kind, r.Requested, r.digest) {
				return nil, anotherRequest(got)
			}
			got.replayed = true
		}
		return got, err
	})
}

// retryBusy calls fn until it does not fail with errCardBusy,
// errOriginalArrived or errOriginalChanged, at most cardBusyTries times.
func retryBusy[T any](ctx context.Context, fn func() (T, error)) (T, error) {
	for try := 1; ; try++ {
		v, err := fn()
		if !errors.IsErr(err, errCardBusy) && !errors.IsErr(err, errOriginalArrived) && !errors.IsErr(err, errOriginalChanged) {
			return v, err
		}
		if try == cardBusyTries {
			return v, errors.Wrap(err, errors.Unavailable, "the card or message is being decided on elsewhere; try again")
		}
		select {
		case <-ctx.Done():
			return v, errors.Wrap(ctx.Err(), errors.Timeout, "deadline passed waiting for the card or message")
		case <-time.After(time.Duration(try) * time.Millisecond):
		}
	}
}

// lockNet makes an original's gate and the recording of a reversal that
// found no original one step across processes sharing a PostgreSQL
// database (in one process the message's in-process lock does it): a
// transaction-scoped advisory lock on the original's network key. It does
// not wait (errCardBusy); the caller tries again.
func (a *Authorizer) lockNet(ctx context.Context, tx *sql.Tx, networkKey string) error {
	return a.tryLock(ctx, tx, "net:", networkKey)
}

// tryLock takes tx's advisory lock on kind+name on PostgreSQL, without
// waiting: errCardBusy if another transaction holds it. Elsewhere it is a
// no-op, and costs nothing on the decision's path.
func (a *Authorizer) tryLock(ctx context.Context, tx *sql.Tx, kind, name string) error {
	if a.db.Dialect != store.Postgres {
		return nil
	}
	name = kind + name
	h := fnv.New64a()
	h.Write([]byte("corebank/authorization/" + name))
	var ok bool
	if err := tx.QueryRowContext(ctx, `SELECT pg_try_advisory_xact_lock($1)`, int64(h.Sum64())).Scan(&ok); err != nil {
		return fmt.Errorf("authorization: lock %s: %w", name, err)
	}
	if !ok {
		return errCardBusy
	}
	return nil
}

// errOriginalArrived: a reversal that found no original finds it recorded
// when it comes to record itself (another process decided it meanwhile);
// it starts again, and reverses it.
var errOriginalArrived = fmt.Errorf("authorization: the original arrived meanwhile")

// errOriginalChanged: a reversal about to be written pending finds the
// record it would change changed, or another reversal of it pending (another
// process reversed it meanwhile); it starts again.
var errOriginalChanged = fmt.Errorf("authorization: the original changed meanwhile")

// errCardBusy: another process holds the card's lock (lockCard).
var errCardBusy = fmt.Errorf("authorization: card locked by another process")

// cardBusyTries is how often a decision tries for a card another process
// is deciding on, waiting a millisecond more each time (about 0.2 s in all).
const cardBusyTries = 20

// lockCard makes the spend check and the pending record one step across
// processes sharing a PostgreSQL database: a transaction-scoped advisory
// lock on the card, held until the group commits, so that two processes
// cannot both approve the last of a limit. It does not wait (a group holds
// several cards' locks, taken in no common order): errCardBusy, and the
// decision tries again. Within a process the card's lock does this, and
// SQLite has one writer; there it is a no-op.
func (a *Authorizer) lockCard(ctx context.Context, tx *sql.Tx, cardID string) error {
	return a.tryLock(ctx, tx, "card:", cardID)
}

// reversedGate declines r if a reversal of it came first, or if the
// network stood in for it before it reached us (held in a queue until its
// advice overtook it: the advice holds what the network paid, this late
// decision is not heard, and holding again, or growing a
// pre-authorization, would hold the money twice), and says so.
func (a *Authorizer) reversedGate(ctx context.Context, tx *sql.Tx, r *record) (bool, error) {
	if r.CardID == "" {
		return false, nil // the card is unknown: that is the answer
	}
	if err := a.lockNet(ctx, tx, r.networkKey); err != nil {
		return false, err
	}
	rev, stood, err := a.reversedBefore(ctx, tx, r)
	if r.networkOwn() {
		stood = false // the network does not stand in for its own message
	}
	if err != nil || !rev && !stood {
		return false, err
	}
	detail := ""
	if !rev {
		detail = "stood_in"
	}
	r.gateDecline(detail)
	return true, nil
}

// gateDecline declines r in a gate: a reversal (or the network) decided
// it first, so it holds and names nothing.
func (r *record) gateDecline(detail string) {
	r.setDeclined(AlreadyReversed, detail)
	r.OriginalID, r.HoldID = "", ""
}

// detailStandIn marks a refund the network approved in stand-in, and a
// reversal that released a stand-in advice.
const detailStandIn = "stand_in"

// detailOwn marks the gateway's own reversal (the first of its details):
// it undoes the bank's answer, not what the network reports. notOwn is the
// SQL condition of a reversal that is not one.
const (
	detailOwn = "own"
	notOwn    = "detail NOT LIKE '" + detailOwn + "%'"
)

// detailAnotherRequest marks the gateway's own reversal of a request that
// was never recorded, another having taken its ids (ReversalRequest.
// OriginalDigest): it released nothing and reverses nothing of the record
// under the ids. notAnotherRequest is the SQL condition of a reversal that
// is not one.
const (
	detailAnotherRequest = "another_request"
	notAnotherRequest    = "detail NOT LIKE '" + detailOwn + "," + detailAnotherRequest + "%'"
)

// detailConfirms marks a stand-in advice of a payment the bank approved
// and still holds: nothing more is held.
const detailConfirms = "confirms_original"

// networkOwn reports whether r is the network's own message of what it
// decided in stand-in: an advice, or a refund it approved.
func (r *record) networkOwn() bool {
	return r.Kind == KindAdvice || (r.Kind == KindRefund && r.Detail == detailStandIn)
}

// advise applies a stand-in advice: no checks, the network decided.
func (a *Authorizer) advise(ctx context.Context, req *Request, r *record, c *card.Card, held *heldLocks) (*Decision, error) {
	if !req.StandIn {
		return a.decline(ctx, r, NetworkDeclined, "")
	}
	amount, currency := req.billing()
	if currency != c.Currency || amount == 0 {
		// The ledger cannot hold another currency: record what came.
		return a.decline(ctx, r, InvalidAmount, "advice not in the card's currency, or zero")
	}
	if req.Original != nil {
		orig, err := a.originalOf(ctx, *req.Original, c.ID)
		if err != nil {
			return nil, err
		}
		if orig != nil && orig.Approved && orig.HoldID != "" && orig.Outstanding > 0 {
			// The bank approved it already (a late answer the network did
			// not wait for) and still holds it: the advice confirms it,
			// nothing more is held. An original since reversed (the gateway
			// undoes approvals it answered 91 to) holds nothing, so the
			// advice places its own forced hold below: the network paid.
			// It keeps the network's approval code, which the network's
			// clearing carries (ByReference finds the original by it).
			r.OriginalID, r.Approved, r.Reason, r.Amount, r.HoldID = orig.ID, true, Approved, orig.Amount, orig.HoldID
			r.AuthCode, r.Detail = orig.AuthCode, detailConfirms
			if isAuthCode(req.AuthCode) {
				r.AuthCode = req.AuthCode
			}
			return a.record(ctx, r)
		}
		// The network's reversal of the transaction came first (its
		// store-and-forward queue behind an online 0400): it reversed
		// what this advice reports, so nothing is held. The gateway's
		// own reversals (detail "own") undo the bank's decision, not the
		// network's, and do not count.
		reversed, err := networkReversed(a.db.QueryRow(ctx, networkReversedQuery, req.Original.Key()), req.Original.Key())
		if err != nil {
			return nil, err
		}
		if reversed {
			return a.decline(ctx, r, AlreadyReversed, "network_reversed_original")
		}
	}
	settlement := a.cfg.Settlement[c.Currency]
	if settlement == "" {
		return a.decline(ctx, r, SystemError, "no settlement account for "+string(c.Currency))
	}
	now := a.cfg.Now().UTC()
	r.status = statusPending
	r.AuthCode = req.AuthCode // the network's, which its clearing carries
	if !isAuthCode(r.AuthCode) {
		r.AuthCode = a.authCode()
	}
	r.op, r.opKey, r.opAmount, r.opTarget, r.opForce = opPlace, r.networkKey, amount, settlement, true
	r.opExpires = now.Add(a.cfg.HoldTTL).UnixNano()
	got, err := a.insertGated(ctx, r, func(ctx context.Context, tx *sql.Tx, r *record) error {
		// Reversals of the advice's own ids, which are its original's
		// when it reuses them without DE90: the network's, which reversed
		// what it reports. The gateway's own (recorded "own", or queued:
		// only the gateway queues) undid the bank's decision of a message
		// under those ids, not the network's stand-in, and do not count.
		if r.CardID == "" {
			return nil
		}
		if err := a.lockNet(ctx, tx, r.networkKey); err != nil {
			return err
		}
		reversed, err := networkReversed(tx.StmtContext(ctx, a.st.networkReversed).QueryRowContext(ctx, r.networkKey), r.networkKey)
		if err == nil && reversed {
			r.gateDecline("network_reversed_original")
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return a.complete(ctx, got, held)
}

// networkReversed reads the answer of networkReversedQuery for key: whether
// the network reversed the message with network key.
func networkReversed(row *sql.Row, key string) (bool, error) {
	var n int
	if err := row.Scan(&n); err != nil {
		return false, fmt.Errorf("authorization: reversals of %s: %w", key, err)
	}
	return n > 0, nil
}

// originalOf is original for a message on card cardID that builds on it
// (an incremental, an advice confirming it), with the reversals pending on
// it completed first (current; the caller holds the card's lock). An
// original of another card is nil, and is left alone (completing it here
// would race its own decision, whose card lock this one does not hold); so
// is one whose reversal is queued, which is as good as reversed
// (QueueReversal).
func (a *Authorizer) originalOf(ctx context.Context, n NetworkID, cardID string) (*record, error) {
	o, err := a.find(ctx, n.Key())
	if err != nil || o == nil || o.CardID != cardID {
		return nil, err
	}
	full, err := a.queuedInFull(ctx, n.Key())
	if err != nil || full {
		return nil, err
	}
	if o, err = a.finished(ctx, o); err != nil {
		return nil, err
	}
	return a.current(ctx, o)
}

// holdsMoney reports whether r is an approval whose hold still holds money.
func (r *record) holdsMoney() bool {
	return r != nil && r.Approved && r.HoldID != "" && r.Outstanding > 0
}

// standInOf is the stand-in advice (standIn) of the original with network
// key origKey on card cardID, finished, with the reversals pending on it
// completed first (current; the caller holds the card's lock), or nil. One
// still pending is nil: it is being decided, or finished behind its
// answer, under its own message's lock, which a holder of a card's lock
// does not wait for.
func (a *Authorizer) standInOf(ctx context.Context, origKey, cardID string) (*record, error) {
	adv, err := a.standIn(ctx, origKey)
	if err != nil || adv == nil || adv.CardID != cardID || adv.status != statusDone {
		return nil, err
	}
	return a.current(ctx, adv)
}

// original returns the finished record of an original message, completing
// it first if it is pending, or nil.
func (a *Authorizer) original(ctx context.Context, n NetworkID) (*record, error) {
	o, err := a.find(ctx, n.Key())
	if err != nil || o == nil {
		return nil, err
	}
	return a.finished(ctx, o)
}

// finished returns o, completed first if it is pending.
func (a *Authorizer) finished(ctx context.Context, o *record) (*record, error) {
	if o.status == statusPending {
		if _, err := a.complete(ctx, o, nil); err != nil {
			return nil, err
		}
		return a.find(ctx, o.networkKey)
	}
	return o, nil
}

func (a *Authorizer) newRecord(req *Request, key string, now time.Time) *record {
	amount, currency := req.billing()
	r := &record{
		Decision: Decision{
			ID: id.New("authz_", now), Kind: req.Kind, Network: req.Network,
			Requested: amount, Currency: currency,
			MCC: req.MCC, Channel: req.Channel, MerchantName: req.MerchantName, MerchantCity: req.MerchantCity,
			MerchantCountry: req.MerchantCountry, At: now,
		},
		networkKey: key,
		status:     statusDone,
		updatedAt:  now.UnixNano(),
		txnAmount:  req.Amount,
		digest:     req.Digest(),
	}
	if req.Original != nil {
		o := *req.Original
		r.Original = &o
		r.originalKey = o.Key()
	}
	return r
}

// decline records a declined decision.
func (a *Authorizer) decline(ctx context.Context, r *record, reason Reason, detail string) (*Decision, error) {
	r.setDeclined(reason, detail)
	return a.record(ctx, r)
}

// setDeclined makes r a decided decline with no ledger operation.
func (r *record) setDeclined(reason Reason, detail string) {
	r.status, r.Approved, r.Reason, r.Detail = statusDone, false, reason, detail
	r.Amount, r.Outstanding, r.AuthCode = 0, 0, ""
	r.op, r.opKey, r.opAmount, r.opTarget, r.opExpires, r.opForce, r.opPartial = opNone, "", 0, "", 0, false, false
}

// record inserts a decided record (or returns the one already there),
// unless a reversal of it came first.
func (a *Authorizer) record(ctx context.Context, r *record) (*Decision, error) {
	r.status = statusDone
	got, err := a.insertGated(ctx, r, func(ctx context.Context, tx *sql.Tx, r *record) error {
		_, err := a.reversedGate(ctx, tx, r)
		return err
	})
	if err != nil {
		return nil, err
	}
	return a.complete(ctx, got, nil)
}

// complete returns a record's decision, first carrying out its pending
// ledger operation, with the operation's own idempotency key, and
// recording the outcome. This is how a crash between the ledger and the
// record is repaired: a retransmission (or RecoverPending) finds the
// pending record and completes it; the ledger returns what it did the
// first time.
//
// With Config.AnswerEarly, an approval is answered as soon as its ledger
// operation is durable when held is given: what the
// answer says is already durable (the pending record holds the operation,
// its key and the auth code; the ledger holds the money), so the record is
// finished behind the answer, with the message's lock kept until it is, so
// that readers of it wait (settled). If the process dies first,
// the record stays pending and is completed, to the same answer, by a
// retransmission, a reversal or RecoverPending at the next start. A
// decline is recorded before it is answered: the ledger does not remember
// refusals, so a replay might approve what was declined.
func (a *Authorizer) complete(ctx context.Context, r *record, held *heldLocks) (*Decision, error) {
	if r.status == statusDone {
		return r.decision(), nil
	}
	if r.Kind == KindReversal {
		return a.completeReversal(ctx, r)
	}
	meta := map[string]string{"authorization_id": r.ID}
	var err error
	var holdID, transferID string
	switch r.op {
	case opPlace:
		var h *ledger.Hold
		h, err = a.cfg.Ledger.PlaceHold(ctx, ledger.PlaceHoldRequest{
			Key: r.opKey, AccountID: r.AccountID, Destination: r.opTarget, Amount: r.opAmount, Currency: r.Currency,
			ExpiresAt: time.Unix(0, r.opExpires).UTC(), Force: r.opForce, Metadata: meta,
		})
		if err == nil {
			holdID = h.ID
		}
	case opIncr:
		var h *ledger.Hold
		h, err = a.cfg.Ledger.IncrementHold(ctx, ledger.IncrementHoldRequest{
			Key: r.opKey, HoldID: r.opTarget, Amount: r.opAmount, Force: r.opForce, ExpiresAt: time.Unix(0, r.opExpires).UTC(),
		})
		if err == nil {
			holdID = h.ID
		}
	case opTransfer:
		var t *ledger.Transfer
		t, err = a.cfg.Ledger.Transfer(ctx, ledger.TransferRequest{
			Key: r.opKey, Force: r.opForce, Metadata: meta,
			Legs: []ledger.Leg{
				{AccountID: r.AccountID, Amount: -r.opAmount, Currency: r.Currency},
				{AccountID: r.opTarget, Amount: r.opAmount, Currency: r.Currency},
			},
		})
		if err == nil {
			transferID = t.ID
		}
	default:
		return nil, errors.Errorf(errors.Internal, "authorization: %s pending with no operation", r.ID)
	}

	switch code := errors.CodeOf(err); code {
	case "":
		r.Approved, r.Reason, r.Amount = true, Approved, r.opAmount
		if r.opAmount < r.Requested {
			r.Reason = PartialApproval
		}
		r.HoldID, r.TransferID, r.Forced = holdID, transferID, r.opForce
		if r.Kind != KindIncremental {
			r.Outstanding = r.opAmount
		}
	case errors.InsufficientFunds:
		if r.opPartial && !strings.HasSuffix(r.opKey, ":partial") {
			b, err := a.cfg.Ledger.Balance(ctx, r.AccountID, time.Time{})
			if err != nil {
				return nil, fmt.Errorf("authorization: balance for partial approval: %w", err)
			}
			if b.Available > 0 && b.Available < r.opAmount {
				if err := a.setPartial(ctx, r, b.Available); err != nil {
					return nil, err
				}
				fresh, err := a.find(ctx, r.networkKey)
				if err != nil {
					return nil, err
				}
				fresh.replayed = r.replayed
				return a.complete(ctx, fresh, held)
			}
		}
		a.declined(r, InsufficientFunds, "")
	case errors.AccountClosed:
		a.declined(r, CardInactive, "account_closed")
	case errors.CurrencyMismatch:
		a.declined(r, NotPermitted, string(card.CurrencyMismatch))
	case errors.NotFound, errors.Conflict, errors.BadRequest:
		// Permanent: the account, hold or key is not what we expected.
		if r.op == opIncr && code == errors.Conflict {
			a.declined(r, OriginalNotFound, "hold_not_pending")
		} else {
			a.declined(r, SystemError, "ledger "+string(code))
		}
	default:
		return nil, fmt.Errorf("authorization: %s %s: %w", r.op, r.ID, err)
	}

	// Not an incremental: its finish grows its original's outstanding,
	// which readers of the original (a late reversal) must see as answered.
	if r.Approved && held != nil && a.cfg.AnswerEarly && r.Kind != KindIncremental && a.behind() {
		d := r.decision()
		locks := held.take()
		// The card's next decision need not wait: it counts this record
		// in spend whether pending or done.
		locks.releaseCard()
		go func() {
			defer a.bg.Done()
			defer locks.release()
			got, done, _, err := a.finish(context.WithoutCancel(ctx), r, false)
			switch {
			case err != nil:
				a.finishErr.Inc()
				a.cfg.Log.ErrorContext(ctx, "authorization: finish an answered approval; it stays pending until recovered",
					"authorization_id", r.ID, "err", err)
			case !done && got != nil && (!got.Approved || got.HoldID != d.HoldID):
				// Nothing in this process finishes a record whose lock it
				// does not hold; another process sharing the database
				// may have. An operator must look: the network was told
				// approved.
				a.finishErr.Inc()
				a.cfg.Log.ErrorContext(ctx, "authorization: an answered approval was finished differently elsewhere",
					"authorization_id", r.ID, "approved", got.Approved, "hold_id", got.HoldID, "answered_hold_id", d.HoldID)
			}
		}()
		return d, nil
	}

	got, _, owes, err := a.finish(ctx, r, true)
	if owes != nil {
		// Another process decided differently (its funds check failed
		// where ours passed, or money arrived between the two calls): give
		// back what our call did. Recorded with the finish, so a failure
		// here leaves it to RecoverUndos.
		if uerr := a.runUndo(context.WithoutCancel(ctx), owes); uerr != nil {
			a.cfg.Log.WarnContext(ctx, "authorization: an undo failed; recovery carries it out", "authorization_id", r.ID, "op", owes.op, "err", uerr)
		}
	}
	if err != nil {
		return nil, err
	}
	if got == nil {
		return nil, errors.Errorf(errors.Internal, "authorization: %s vanished", r.ID)
	}
	d := got.decision()
	d.Replayed = r.replayed
	return d, nil
}

// declined sets a pending record's outcome to a decline.
func (a *Authorizer) declined(r *record, reason Reason, detail string) {
	r.Approved, r.Reason, r.Detail, r.Amount, r.Outstanding, r.AuthCode = false, reason, detail, 0, 0, ""
}

// setPartial makes a pending record's operation a partial one: the amount
// available, under a key of its own (the full amount's request failed and
// so is not remembered by the ledger, but keeping them apart is clearer).
// It goes through the group commit like every other write of the records:
// on SQLite the writer has one connection.
func (a *Authorizer) setPartial(ctx context.Context, r *record, amount int64) error {
	err := a.tx.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, a.db.Rebind(`UPDATE authorizations SET op_key = ?, op_amount = ?, updated_at = ? WHERE id = ? AND status = 'pending' AND op_key = ?`),
			r.opKey+":partial", amount, a.cfg.Now().UnixNano(), r.ID, r.opKey)
		return err
	})
	if err != nil {
		return fmt.Errorf("authorization: partial %s: %w", r.ID, err)
	}
	return nil
}

// reasonFor maps a card decline to a reason.
func reasonFor(d card.Decline) Reason {
	switch d {
	case card.NoDecline:
		return Approved
	case card.CardBlockedLost:
		return CardBlockedLost
	case card.CardBlockedStolen:
		return CardBlockedStolen
	case card.CardExpired:
		return CardExpired
	case card.CardFrozen, card.CardClosed:
		return CardInactive
	case card.ChannelDisabled, card.CountryNotAllowed, card.MCCBlocked, card.CurrencyMismatch:
		return NotPermitted
	case card.InvalidAmount:
		return InvalidAmount
	case card.OverTransactionLimit, card.OverDailyLimit, card.OverMonthlyLimit:
		return ExceedsLimit
	case card.VelocityExceeded:
		return ExceedsFrequency
	default:
		return CardInactive
	}
}

// Reverse implements Service.
func (a *Authorizer) Reverse(ctx context.Context, req ReversalRequest) (*Decision, error) {
	if err := req.validate(); err != nil {
		return nil, err
	}
	return a.answered(a.reverse(ctx, req))
}

// QueueReversal implements Service.
func (a *Authorizer) QueueReversal(ctx context.Context, req ReversalRequest) error {
	if err := req.validate(); err != nil {
		return err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("authorization: queue reversal: %w", err)
	}
	return a.tx.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.StmtContext(ctx, a.st.queue).ExecContext(ctx, req.Network.Key(), req.Original.Key(), string(body), a.cfg.Now().UnixNano()); err != nil {
			return fmt.Errorf("authorization: queue reversal %s: %w", req.Network.Key(), err)
		}
		return nil
	})
}

// RecoverQueued carries out the reversals queued (QueueReversal) at least
// olderThan ago and not yet recorded, oldest first, and returns how many it
// recorded. One that fails is left queued for the next run, and the first
// failure is returned after the others have been tried.
func (a *Authorizer) RecoverQueued(ctx context.Context, olderThan time.Duration) (int, error) {
	list := func(limit int) ([]queued, error) {
		return a.queuedReversals(ctx, a.cfg.Now().Add(-olderThan).UnixNano(), limit)
	}
	return recoverEach(list, func(q queued) string { return q.key }, func(q queued) error {
		if q.bad != nil {
			// Left for an operator; the rest of the queue goes on.
			a.cfg.Log.ErrorContext(ctx, "authorization: a queued reversal is unreadable; skipped", "network_key", q.key, "err", q.bad)
			return fmt.Errorf("authorization: queued reversal %s: %w", q.key, q.bad)
		}
		d, err := a.reverse(ctx, q.req)
		if err == nil {
			err = a.unqueue(ctx, q.key)
		}
		if c := errors.CodeOf(err); c == errors.Conflict || c == errors.BadRequest {
			// Refused for good (its ids recorded for another message):
			// every run would refuse it again.
			a.cfg.Log.ErrorContext(ctx, "authorization: a queued reversal is refused; left queued for an operator", "network_key", q.key, "err", err)
			return fmt.Errorf("authorization: queued reversal %s: %w", q.key, err)
		}
		if err != nil {
			a.cfg.Log.WarnContext(ctx, "authorization: a queued reversal failed; trying again later", "network_key", q.key, "err", err)
			return fmt.Errorf("authorization: queued reversal %s: %w", q.key, err)
		}
		a.queuedDone.Inc()
		a.cfg.Log.InfoContext(ctx, "authorization: carried out a queued reversal", "authorization_id", d.ID, "network_key", q.key, "released", d.Amount)
		return nil
	})
}

func (a *Authorizer) reverse(ctx context.Context, req ReversalRequest) (*Decision, error) {
	return retryBusy(ctx, func() (*Decision, error) { return a.reverseOnce(ctx, req) })
}

func (a *Authorizer) reverseOnce(ctx context.Context, req ReversalRequest) (*Decision, error) {
	key, origKey := req.Network.Key(), req.Original.Key()
	// The original's lock too: an original and its reversal are decided
	// one after the other, whichever comes first. Locks are taken in name
	// order, so two requests naming each other cannot deadlock.
	first, second := "net:"+origKey, "net:"+key
	if second < first {
		first, second = second, first
	}
	defer a.lock(first)()
	defer a.lock(second)()
	if r, err := a.find(ctx, key); err != nil {
		return nil, err
	} else if r != nil {
		if r.reverses(origKey) {
			return a.retransmitted(ctx, r, origKey)
		}
		// Ids recorded for another message: not a retransmission, and it
		// must not hear that message's answer (its original would stay
		// held while the network is told it was released).
		if orig, err := a.find(ctx, origKey); err != nil {
			return nil, err
		} else if orig != nil && orig.Kind == KindIncremental && orig.originalKey == key {
			return nil, badf("a reversal of an incremental carries the incremental's original's network ids as its own")
		}
		return nil, anotherRequest(r)
	}
	now := a.cfg.Now().UTC()
	o := req.Original
	rev := &record{
		Decision: Decision{
			ID: id.New("authz_", now), Kind: KindReversal, Network: req.Network, Original: &o,
			Approved: true, Reason: Approved, Requested: 0, At: now,
		},
		networkKey: key, originalKey: origKey, status: statusDone, updatedAt: now.UnixNano(),
	}
	switch {
	case req.OwnDecision:
		rev.Detail = detailOwn // first: stand-in advices look for reversals not notOwn
	case req.Advice:
		rev.Detail = "advice"
	}
	orig, err := a.original(ctx, req.Original)
	if err != nil {
		return nil, err
	}
	if req.OwnDecision && req.OriginalDigest != "" && orig != nil && orig.digest != "" && orig.digest != req.OriginalDigest &&
		(orig.Kind != KindAdvice || orig.Original != nil) {
		// The gateway answered per its timeout policy a request that was
		// never recorded: another under the same ids was. Its approval,
		// which the network heard, stands. (A stand-in advice that took
		// the ids is kept below, as stand_in_kept.)
		rev.addDetail(detailAnotherRequest)
		rev.addDetail("nothing_to_release")
		return a.reversal(ctx, rev)
	}
	if orig != nil && orig.Kind == KindIncremental {
		return a.reverseIncrement(ctx, key, req, rev, orig)
	}
	// If the network stood in for the original (answered late, or never
	// received) and advised it, the money is on its advice, whose DE90
	// names the original as this reversal does. Its lock before the card's,
	// as a message's own lock always is.
	// Not for the gateway's own reversal (it undoes the bank's decision,
	// not the network's), nor for a reversal of an advice (the network
	// does not stand in for its own advice; advices whose DE90s name each
	// other would otherwise have their reversals wait for each other's
	// locks).
	var adv *record
	if !req.OwnDecision && (orig == nil || orig.Kind != KindAdvice) {
		if adv, err = a.standIn(ctx, origKey); err != nil {
			return nil, err
		}
	}
	if adv != nil && orig != nil && adv.CardID != orig.CardID {
		adv = nil
	}
	if orig == nil && adv == nil {
		rev.Reason = OriginalNotFound
		return a.reversal(ctx, rev)
	}
	if adv != nil {
		defer a.lock("net:" + adv.networkKey)()
	}
	cardID := adv.cardOr(orig)
	defer a.lock("card:" + cardID)()
	if orig != nil {
		if orig, err = a.find(ctx, origKey); err != nil {
			return nil, err
		}
		if orig, err = a.current(ctx, orig); err != nil {
			return nil, err
		}
	}
	if adv != nil {
		if adv, err = a.original(ctx, adv.Network); err != nil {
			return nil, err
		}
		if adv == nil {
			return nil, errors.Errorf(errors.Internal, "authorization: the stand-in advice for %s vanished", origKey)
		}
		if adv, err = a.current(ctx, adv); err != nil {
			return nil, err
		}
	}
	// The network's reversal of a transaction it stood in for is of its
	// stand-in while that holds; otherwise of the original, if that holds
	// (the gateway's own reversal never reaches here with adv).
	// (Held by a hold, or by a 0200's transfer: not holdsMoney, which
	// asks for a hold.)
	holds := func(r *record) bool { return r != nil && r.Approved && r.Outstanding > 0 }
	// keep records the gateway's own reversal of orig releasing nothing:
	// the network's approval stands.
	keep := func(detail string) (*Decision, error) {
		a.copyOriginal(rev, orig)
		rev.OriginalID = orig.ID
		rev.addDetail(detail)
		rev.stampAfter(a.cfg.Now(), orig.updatedAt)
		return a.reversal(ctx, rev)
	}
	if req.OwnDecision && orig != nil && orig.Kind == KindAdvice && orig.Original == nil {
		// A stand-in advice that took the request's own ids (reusing
		// them without DE90, the request never decided): the gateway's
		// reversal undoes the bank's decision, and there was none.
		return keep("stand_in_kept")
	}
	if req.OwnDecision && holds(orig) {
		// A stand-in advice that confirmed the bank's approval (it came
		// while the original held) stands on the original's hold: the
		// network's approval stands, so the hold does. (The card's lock
		// orders this and the confirmation.)
		var n int
		if err := a.db.QueryRow(ctx, `SELECT COUNT(*) FROM authorizations WHERE kind = 'advice' AND original_key = ?
			AND detail = '`+detailConfirms+`' AND approved = 1 AND card_id = ?`, origKey, orig.CardID).Scan(&n); err != nil {
			return nil, fmt.Errorf("authorization: confirmations of %s: %w", origKey, err)
		}
		if n > 0 {
			return keep("confirmed_by_stand_in")
		}
	}
	if orig != nil && (adv == nil || (holds(orig) && !holds(adv))) {
		rev.OriginalID = orig.ID
		rev.stampAfter(a.cfg.Now(), orig.updatedAt)
		return a.release(ctx, key, rev, orig, req.remaining(orig))
	}
	rev.OriginalID, rev.origAbsent = adv.ID, orig == nil
	rev.addDetail(detailStandIn)
	rev.stampAfter(a.cfg.Now(), adv.updatedAt)
	return a.release(ctx, key, rev, adv, req.remaining(adv))
}

// cardOr is the card of adv, if any, else of orig.
func (adv *record) cardOr(orig *record) string {
	if adv != nil {
		return adv.CardID
	}
	return orig.CardID
}

// standIn returns the stand-in advice the network sent in place of the
// original with network key origKey (its DE90 names that original), one
// that placed (or is placing) a hold of its own, not one confirming the
// bank's approval; or nil.
func (a *Authorizer) standIn(ctx context.Context, origKey string) (*record, error) {
	r, err := scanRecord(a.db.QueryRow(ctx, `SELECT `+columns+` FROM authorizations WHERE original_key = ? AND kind = 'advice'
		AND detail <> '`+detailConfirms+`' AND (status = 'pending' OR (approved = 1 AND hold_id <> '')) ORDER BY at LIMIT 1`, origKey))
	if errors.IsErr(err, errNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("authorization: stand-in advice for %s: %w", origKey, err)
	}
	return r, nil
}

// retransmitted answers a reversal recorded already (origKey: the
// original its request names). A pending one is completed first, under the
// locks it began under: besides the reversal's and its original's (held by
// the caller), the lock of the record it changes, if that is not its
// original (a reversal of an incremental changes the incremental's
// original, see reverseIncrement), and its card's.
func (a *Authorizer) retransmitted(ctx context.Context, r *record, origKey string) (*Decision, error) {
	if r.status == statusPending && r.Kind == KindReversal {
		if r.opOriginal != "" && r.opOriginal != origKey && r.opOriginal != r.networkKey {
			defer a.lock("net:" + r.opOriginal)()
		}
		defer a.lock("card:" + r.CardID)()
		again, err := a.findAgain(ctx, r.networkKey, r.ID)
		if err != nil {
			return nil, err
		}
		r = again
	}
	return a.complete(ctx, r, nil)
}

// current returns o as it is once the reversals pending on it (written
// pending, their ledger operation done or not, their record not finished:
// a lost answer, a crash) are completed, so that whatever acts on o
// computes from finished records. The caller holds o's card's lock, as
// every reversal of o holds it from before it is written pending to its
// finish.
func (a *Authorizer) current(ctx context.Context, o *record) (*record, error) {
	if o == nil {
		return nil, nil
	}
	return a.afterPendingReversals(ctx, o, func(r *record) error {
		_, err := a.complete(ctx, r, nil)
		return err
	})
}

// afterPendingReversals returns o as it is once each reversal pending on
// it is completed by completeOne.
func (a *Authorizer) afterPendingReversals(ctx context.Context, o *record, completeOne func(r *record) error) (*record, error) {
	revs, err := a.pendingReversals(ctx, o.networkKey)
	if err != nil || len(revs) == 0 {
		return o, err
	}
	for _, r := range revs {
		if err := completeOne(r); err != nil {
			return nil, fmt.Errorf("authorization: complete reversal %s of %s first: %w", r.ID, o.ID, err)
		}
	}
	return a.findAgain(ctx, o.networkKey, o.ID)
}

// reverseAgain completes the recorded reversal r as its retransmission
// would, under its own locks.
func (a *Authorizer) reverseAgain(ctx context.Context, r *record) (*Decision, error) {
	return a.reverse(ctx, ReversalRequest{Network: r.Network, Original: *r.Original})
}

// addDetail appends word to r's comma-separated detail.
func (r *record) addDetail(word string) {
	r.Detail = strings.TrimPrefix(r.Detail+","+word, ",")
}

// findAgain reads again the record of key, id, which must exist: it was
// read or written before under the locks still held.
func (a *Authorizer) findAgain(ctx context.Context, key, id string) (*record, error) {
	r, err := a.find(ctx, key)
	if err == nil && r == nil {
		err = errors.Errorf(errors.Internal, "authorization: %s vanished", id)
	}
	return r, err
}

// stampAfter times a reversal once its card's lock is held, and after
// whatever last changed its original (updated at after): the card's
// decisions (an increment growing the original, say) are then all before
// it or all after, and its time, never equal to theirs, says which.
func (r *record) stampAfter(now time.Time, after int64) {
	r.updatedAt = max(now.UnixNano(), after+1)
	r.At = time.Unix(0, r.updatedAt).UTC()
}

// reverseIncrement reverses an incremental authorization: its original's
// hold comes back down by what the increment added (less what req leaves, what
// is to remain of the increment), once however many reversals name it.
//
// Nothing is released if the increment was declined, or is reversed
// already, or if its original was reversed (wholly or to a new total, DE95)
// since the increment was approved: such a reversal states what the network
// wants held, increments included, and undoing the increment again would
// take it off twice.
func (a *Authorizer) reverseIncrement(ctx context.Context, key string, req ReversalRequest, rev, inc *record) (*Decision, error) {
	rev.OriginalID = inc.ID
	rev.addDetail("incremental")
	nothing := func() (*Decision, error) {
		a.copyOriginal(rev, inc)
		rev.addDetail("nothing_to_release")
		return a.reversal(ctx, rev)
	}
	undo := inc.Amount - req.remaining(inc)
	if !inc.Approved || undo <= 0 || inc.Original == nil || inc.originalKey == key || inc.originalKey == inc.networkKey {
		// (A reversal whose own ids are the increment's original's, when
		// no record holds them, a stand-in's, would wait for its own lock
		// below: a malformed network's; reverseOnce refuses it when a
		// record does.)
		return nothing()
	}
	// The original's lock, after the reversal's and the increment's: no
	// one holds an original's lock while waiting for another message's.
	defer a.lock("net:" + inc.originalKey)()
	// The record the increment grew (its OriginalID): its original, or the
	// network's stand-in advice of it (see decide), whose lock comes next.
	grown, err := a.byID(ctx, inc.OriginalID)
	if err != nil {
		return nil, err
	}
	if grown != nil && grown.networkKey != inc.originalKey {
		defer a.lock("net:" + grown.networkKey)()
	}
	defer a.lock("card:" + inc.CardID)()
	// The original's pending reversals (of it, or of its increments) are
	// completed first: the count below is then of finished ones.
	var base *record
	if grown != nil {
		if base, err = a.original(ctx, grown.Network); err != nil {
			return nil, err
		}
	}
	if base, err = a.current(ctx, base); err != nil {
		return nil, err
	}
	rev.stampAfter(a.cfg.Now(), inc.updatedAt)
	// Covered: the increment reversed already, or its original reversed
	// after the increment grew it (inc.updatedAt: when it was finished,
	// under the card's lock, as reversals are timed).
	// The gateway's own reversals of the original do not cover an
	// increment: they undo the bank's answer, not state what the network
	// wants held. One that released the original left it nothing to
	// release; one that kept it (confirmed by a stand-in), or never
	// touched it (the increment grew a stand-in advice), left the
	// increment in place. Nor does the gateway's own reversal of another
	// request under the increment's ids, which reversed nothing of it.
	var covered int
	if err := a.db.QueryRow(ctx, `SELECT COUNT(*) FROM authorizations WHERE kind = 'reversal'
		AND ((original_key = ? AND `+notAnotherRequest+`) OR (original_key = ? AND at > ? AND `+notOwn+`))`,
		inc.networkKey, inc.originalKey, inc.updatedAt).Scan(&covered); err != nil {
		return nil, fmt.Errorf("authorization: reversals of %s: %w", inc.ID, err)
	}
	if covered > 0 {
		return nothing()
	}
	if base == nil {
		return nothing()
	}
	return a.release(ctx, key, rev, base, max(base.Outstanding-undo, 0))
}

// copyOriginal gives rev its original's card, account and merchant.
func (a *Authorizer) copyOriginal(rev, orig *record) {
	rev.CardID, rev.AccountID, rev.Currency, rev.HoldID = orig.CardID, orig.AccountID, orig.Currency, orig.HoldID
	rev.MCC, rev.Channel, rev.MerchantName, rev.MerchantCity, rev.MerchantCountry = orig.MCC, orig.Channel, orig.MerchantName, orig.MerchantCity, orig.MerchantCountry
}

// release brings orig's outstanding amount down to keep, with the ledger
// operation that matches: its hold voided (keep 0), replaced by a smaller
// one, or a financial request's transfer refunded down to keep. Like a
// decision, rev is first written pending with that operation (op_*, its
// keys derived from the reversal's network key), then the operation is
// made and rev finished with its effect on orig (complete): a reversal
// whose ledger answer is lost is on record, and is completed by its
// retransmission, by the next message acting on orig, or by
// RecoverPending, never undone by another reversal's own operation. The
// caller holds the locks of rev, orig and its card, and has completed the
// reversals pending on orig (current).
func (a *Authorizer) release(ctx context.Context, key string, rev, orig *record, keep int64) (*Decision, error) {
	a.copyOriginal(rev, orig)
	release := orig.Outstanding - keep
	rev.Requested = max(release, 0)
	if !orig.Approved || release <= 0 || (orig.HoldID == "" && orig.TransferID == "") {
		rev.addDetail("nothing_to_release")
		return a.reversal(ctx, rev)
	}

	var op, target string
	var expires int64
	switch {
	case orig.HoldID != "" && keep == 0:
		op, target = opVoid, orig.HoldID
	case orig.HoldID != "":
		// Partial: a new hold for what remains, then the old one voided, so
		// the merchant is never under-held; both keyed by the reversal.
		old, err := a.cfg.Ledger.GetHold(ctx, orig.HoldID)
		if err != nil {
			return nil, fmt.Errorf("authorization: hold for partial reversal: %w", err)
		}
		if old.Status != ledger.HoldPending && old.Status != ledger.HoldVoided {
			// Already posted by clearing, or expired: nothing held to release.
			rev.addDetail("hold_not_pending")
			return a.reversal(ctx, rev)
		}
		op, target, expires = opReplace, old.ID, old.ExpiresAt.UnixNano()
	default:
		// A financial request: the money moved; give back what is reversed,
		// from where it went (the original's transfer's destination).
		op, target = opRefund, orig.opTarget
	}
	rev.status, rev.op, rev.opKey, rev.opAmount, rev.opTarget, rev.opExpires, rev.opOriginal =
		statusPending, op, key, keep, target, expires, orig.networkKey
	got, err := a.recordReversal(ctx, rev, orig)
	if err != nil {
		return nil, err
	}
	return a.complete(ctx, got, nil)
}

// completeReversal carries out a pending reversal's ledger operation under
// its own keys (the ledger returns what it did, if it did it before) and
// finishes the reversal (finishReversal). Outcomes the ledger gives for
// good are recorded and release nothing, the original unchanged: the hold
// no longer pending (posted by clearing, or expired: hold_not_pending, as
// when the reversal begins so), or the request refused (ledger_<code>,
// logged: an operator must look). Any other failure leaves the reversal
// pending and is returned.
func (a *Authorizer) completeReversal(ctx context.Context, r *record) (*Decision, error) {
	target, err := a.find(ctx, r.opOriginal)
	if err != nil {
		return nil, err
	}
	if target == nil {
		return nil, errors.Errorf(errors.Internal, "authorization: reversal %s: its original %s is not recorded", r.ID, r.opOriginal)
	}
	meta := map[string]string{"authorization_id": target.ID}
	released := false
	switch r.op {
	case opVoid:
		// Refused: already posted by clearing, or expired: nothing held
		// to release. Or voided by a partial reversal that left nothing
		// to hold (what clearing posted covers what remained,
		// replaceHold): the authorization's outstanding still comes
		// down. A failed read of the hold leaves the reversal pending.
		var st ledger.HoldStatus
		var refused bool
		st, refused, err = a.voidHold(ctx, r.opKey+":void", r.opTarget)
		if err != nil && refused {
			return nil, fmt.Errorf("authorization: reversal %s: %w", r.ID, err)
		}
		if refused {
			r.addDetail("hold_not_pending")
		}
		released = err == nil && st == ledger.HoldVoided
	case opReplace:
		released, err = a.replaceHold(ctx, r, meta)
	case opRefund:
		var t *ledger.Transfer
		t, err = a.giveBack(ctx, r.opKey+":refund", r.opTarget, r.AccountID, r.Requested, r.Currency, meta)
		if err == nil {
			released, r.TransferID = true, t.ID
		}
	default:
		return nil, errors.Errorf(errors.Internal, "authorization: reversal %s pending with no operation", r.ID)
	}
	if err != nil {
		switch code := errors.CodeOf(err); code {
		case errors.NotFound, errors.Conflict, errors.BadRequest, errors.AccountClosed, errors.CurrencyMismatch, errors.InsufficientFunds:
			a.cfg.Log.ErrorContext(ctx, "authorization: the ledger refused a reversal's operation; recorded as releasing nothing",
				"authorization_id", r.ID, "original_id", target.ID, "op", r.op, "err", err)
			r.addDetail("ledger_" + string(code))
		default:
			return nil, fmt.Errorf("authorization: %s for reversal %s: %w", r.op, r.ID, err)
		}
	}
	if released {
		r.Amount = r.Requested
	} else {
		r.Amount = 0
	}
	got, err := a.finishReversal(ctx, r, released)
	if err != nil {
		return nil, err
	}
	return got.decision(), nil
}

// replaceHold carries out a pending partial reversal of a hold: a new hold
// for what remains (op_amount, the old hold's account and destination,
// expiring at op_expires), then the old one voided; it sets r.HoldID to the
// new hold. If the old hold was posted or has expired meanwhile, the new
// hold (placed now or by an attempt before) is voided too
// (<op_key>:undo) and nothing is released (hold_not_pending).
func (a *Authorizer) replaceHold(ctx context.Context, r *record, meta map[string]string) (released bool, err error) {
	old, err := a.cfg.Ledger.GetHold(ctx, r.opTarget)
	if err != nil {
		return false, err
	}
	// cleared: what clearing posted against this authorization's holds,
	// the old one and those it replaced (carried in each replacement's
	// metadata): op_amount - old.Posted alone would hold again what was
	// posted against a hold the old one replaced. All of it is stable once
	// the old hold is voided, so a rerun computes the same amount.
	cleared := old.Posted + ClearedBefore(old.Metadata)
	amount := r.opAmount - cleared
	if cleared > 0 {
		m := make(map[string]string, len(meta)+1)
		for k, v := range meta {
			m[k] = v
		}
		m[MetaClearedBefore] = strconv.FormatInt(cleared, 10)
		meta = m
	}
	var h *ledger.Hold
	if amount > 0 {
		h, err = a.cfg.Ledger.PlaceHold(ctx, ledger.PlaceHoldRequest{
			Key: r.opKey + ":hold", AccountID: old.AccountID, Destination: old.Destination, Amount: amount,
			Currency: old.Currency, ExpiresAt: time.Unix(0, r.opExpires).UTC(), Force: true, Metadata: meta,
		})
		if err != nil {
			return false, err
		}
	}
	voided := false
	if old.Status == ledger.HoldPending || old.Status == ledger.HoldVoided {
		st, _, err := a.voidHold(ctx, r.opKey+":void", old.ID)
		if err != nil {
			return false, err
		}
		voided = st == ledger.HoldVoided
	}
	if !voided {
		// Clearing posted the old hold, or its expiry released it (before
		// the read, or between the read and the void): nothing is
		// released, and the new hold would hold the money again.
		if h != nil {
			if _, _, err := a.voidHold(ctx, r.opKey+":undo", h.ID); err != nil {
				return false, err
			}
		}
		r.addDetail("hold_not_pending")
		return false, nil
	}
	if h != nil {
		r.HoldID = h.ID
	}
	return true, nil
}

// giveBack transfers amount from target (where a 0200 sent it) back to
// account, under key, forced: it returns the cardholder's own money.
func (a *Authorizer) giveBack(ctx context.Context, key, target, account string, amount int64, currency money.Currency, meta map[string]string) (*ledger.Transfer, error) {
	return a.cfg.Ledger.Transfer(ctx, ledger.TransferRequest{
		Key: key, Force: true, Metadata: meta,
		Legs: []ledger.Leg{
			{AccountID: target, Amount: -amount, Currency: currency},
			{AccountID: account, Amount: amount, Currency: currency},
		},
	})
}

// voidHold voids hold holdID under key and returns its status after. A
// void the ledger refuses (refused: posted by clearing, expired, voided
// under another key) reads the hold again to tell.
func (a *Authorizer) voidHold(ctx context.Context, key, holdID string) (st ledger.HoldStatus, refused bool, err error) {
	_, err = a.cfg.Ledger.VoidHold(ctx, ledger.VoidHoldRequest{Key: key, HoldID: holdID})
	if err == nil {
		return ledger.HoldVoided, false, nil
	}
	if !errors.Is(err, errors.Conflict) {
		return "", false, err
	}
	h, err := a.cfg.Ledger.GetHold(ctx, holdID)
	if err != nil {
		return "", true, fmt.Errorf("authorization: read hold %s after a refused void: %w", holdID, err)
	}
	return h.Status, true, nil
}

// reversal records a decided reversal that releases nothing.
func (a *Authorizer) reversal(ctx context.Context, rev *record) (*Decision, error) {
	got, err := a.recordReversal(ctx, rev, nil)
	if err != nil {
		return nil, err
	}
	if got.status == statusPending {
		// Recorded meanwhile by another process, and under way there.
		return a.complete(ctx, got, nil)
	}
	return got.decision(), nil
}

// Get implements Service.
func (a *Authorizer) Get(ctx context.Context, id string) (*Decision, error) {
	if !strings.HasPrefix(id, "authz_") || len(id) != len("authz_")+26 {
		return nil, badf("malformed authorization id")
	}
	r, err := a.byID(ctx, id)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, errors.Errorf(errors.NotFound, "authorization %s not found", id)
	}
	if r, err = a.settled(ctx, r); err != nil {
		return nil, err
	}
	if r.status != statusDone {
		return nil, errors.Errorf(errors.NotFound, "authorization %s is not decided yet", id)
	}
	return r.decision(), nil
}

// ByNetworkID implements Service.
func (a *Authorizer) ByNetworkID(ctx context.Context, n NetworkID) (*Decision, error) {
	if err := n.validate("network"); err != nil {
		return nil, err
	}
	r, err := a.find(ctx, n.Key())
	if err != nil {
		return nil, err
	}
	if r != nil && r.Kind == KindReversal && r.status == statusPending && r.Original != nil {
		// A reversal begun and not finished (its ledger answer lost):
		// reading it completes it, as its retransmission would.
		return a.reverseAgain(ctx, r)
	}
	if r != nil {
		if r, err = a.settled(ctx, r); err != nil {
			return nil, err
		}
		if r, err = a.reversalsDone(ctx, r); err != nil {
			return nil, err
		}
	} else if q, err := a.queuedReversal(ctx, n.Key()); err != nil {
		return nil, err
	} else if q != nil {
		// A reversal promised and not yet carried out: reading it carries
		// it out, so that what is read is what the queue will have done.
		return a.reverse(ctx, *q)
	}
	if r == nil || r.status != statusDone {
		return nil, errors.New(errors.NotFound, "no decision for that network message")
	}
	return r.decision(), nil
}

// settled returns r as it is once no decision of this process is working
// on it: a pending record may be an approval already answered and being
// finished behind its answer (see complete), and a reader must see what the
// network was told. It waits for the record's lock and reads it again.
func (a *Authorizer) settled(ctx context.Context, r *record) (*record, error) {
	if r.status != statusPending {
		return r, nil
	}
	unlock, err := a.lockCtx(ctx, "net:"+r.networkKey)
	if err != nil {
		return nil, errors.Wrap(err, errors.Timeout, "deadline passed waiting for the record to be finished")
	}
	unlock()
	again, err := a.find(ctx, r.networkKey)
	if err != nil {
		return nil, err
	}
	if again == nil {
		return r, nil
	}
	return again, nil
}

// reversalsDone returns r once the reversals pending on it are completed
// (each as its retransmission would be, under its own locks), so that a
// reader (clearing, about to post r's hold) sees the hold and amount r has,
// not the ones a reversal whose answer was lost is replacing. Served by
// the partial index of pending reversals: nothing to do costs one lookup.
func (a *Authorizer) reversalsDone(ctx context.Context, r *record) (*record, error) {
	if r.Kind == KindReversal {
		return r, nil
	}
	return a.afterPendingReversals(ctx, r, func(rev *record) error {
		if rev.Original == nil {
			return nil
		}
		_, err := a.reverseAgain(ctx, rev)
		return err
	})
}

// ByReference implements Service.
func (a *Authorizer) ByReference(ctx context.Context, q ReferenceQuery) (*Decision, error) {
	if err := q.validate(); err != nil {
		return nil, err
	}
	// Approvals being finished behind their answers are waited for first.
	pending, err := a.pendingByReference(ctx, q)
	if err != nil {
		return nil, err
	}
	for _, key := range pending {
		unlock, err := a.lockCtx(ctx, "net:"+key)
		if err != nil {
			return nil, errors.Wrap(err, errors.Timeout, "deadline passed waiting for a record to be finished")
		}
		unlock()
	}
	rs, err := a.byReference(ctx, q)
	if err != nil {
		return nil, err
	}
	switch len(rs) {
	case 0:
		return nil, errors.New(errors.NotFound, "no approved authorization of that card with that reference and auth code")
	case 1:
		r, err := a.reversalsDone(ctx, rs[0])
		if err != nil {
			return nil, err
		}
		return r.decision(), nil
	}
	return nil, errors.Errorf(errors.Conflict, "the reference and auth code match %s and %s (and maybe more) of that card", rs[0].ID, rs[1].ID)
}

// authCodeAlphabet is what approval codes are drawn from.
const authCodeAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

// authCode returns six random characters of authCodeAlphabet.
func (a *Authorizer) authCode() string {
	a.randMu.Lock()
	defer a.randMu.Unlock()
	var out [6]byte
	var buf [16]byte
	for i := 0; i < len(out); {
		if _, err := io.ReadFull(a.cfg.Rand, buf[:]); err != nil {
			rand.Read(buf[:])
		}
		for _, b := range buf {
			if b < 252 && i < len(out) { // 252 = 7*36: no modulo bias
				out[i] = authCodeAlphabet[b%36]
				i++
			}
		}
	}
	return string(out[:])
}

// heldLocks are the unlocks of the locks a decision holds, released
// together, by the decision or by whoever takes them over. The card's lock,
// taken last, may be released first on its own (releaseCard).
type heldLocks struct {
	unlocks []func()
	card    func()
}

func (h *heldLocks) add(unlock func()) { h.unlocks = append(h.unlocks, unlock) }

func (h *heldLocks) addCard(unlock func()) { h.card = unlock }

// take hands the locks over: h no longer releases them.
func (h *heldLocks) take() *heldLocks {
	t := &heldLocks{unlocks: h.unlocks, card: h.card}
	h.unlocks, h.card = nil, nil
	return t
}

// releaseCard unlocks the card's lock, if held.
func (h *heldLocks) releaseCard() {
	if h.card != nil {
		h.card()
		h.card = nil
	}
}

// release unlocks in reverse order of locking.
func (h *heldLocks) release() {
	h.releaseCard()
	for i := len(h.unlocks) - 1; i >= 0; i-- {
		h.unlocks[i]()
	}
	h.unlocks = nil
}

// lock takes name's in-process lock and returns its release.
func (a *Authorizer) lock(name string) func() {
	l, _ := a.locks.Lock(context.Background(), name) // never fails without a deadline
	return l.Release
}

// lockCtx is lock, giving up when ctx ends (then it returns ctx's error).
func (a *Authorizer) lockCtx(ctx context.Context, name string) (func(), error) {
	l, err := a.locks.Lock(ctx, name)
	if err != nil {
		return nil, err
	}
	return l.Release, nil
}

// isAuthCode reports whether s is an approval code as this service makes
// them and clearing files carry them: six of 0-9 A-Z.
func isAuthCode(s string) bool {
	return len(s) == 6 && strings.Trim(s, authCodeAlphabet) == ""
}
