package clearing

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/event"
	"github.com/corebank/corebank/ledger"
	"github.com/corebank/corebank/lock"
	"github.com/corebank/corebank/money"
	"github.com/corebank/corebank/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Defaults for Config.
const (
	// DefaultTolerance is how far, in percent, a clearing may exceed what
	// was authorized before it is reported suspicious (tips, FX).
	DefaultTolerance = 20
	// DefaultMaxFileSize is the largest file Ingest accepts, in bytes.
	DefaultMaxFileSize = 64 << 20
	// MaxRequestBytes bounds an RPC request to the service over HTTP: an
	// IngestRequest with a file of DefaultMaxFileSize (base64 in JSON), and
	// room for the rest. The RPC server's default is far smaller.
	MaxRequestBytes = (DefaultMaxFileSize+2)/3*4 + 64<<10
)

// Config configures a Clearer.
type Config struct {
	// Ledger moves the money. Required.
	Ledger ledger.Service
	// Authorization finds the authorization a record clears. Required.
	Authorization authorization.Service
	// Card finds the card a record's PAN is. Required.
	Card card.Service
	// Settlement maps each currency to the card scheme's settlement
	// account: where force-posts go and refunds come from. A record in a
	// currency without one is unmatched.
	Settlement map[money.Currency]string
	// Locker gives one processor a file at a time. Default: a lock.Local
	// (one process); use a shared Locker when several processes share the
	// database.
	Locker lock.Locker
	// Tolerance, in percent: a clearing above what was authorized by more
	// is reported suspicious. Default DefaultTolerance.
	Tolerance int
	// MaxFileSize caps a file's size in bytes. Default DefaultMaxFileSize.
	MaxFileSize int
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Log receives what cannot be returned. Default: discarded.
	Log *slog.Logger
	// Notify is called after each commit that wrote an event, to wake the
	// outbox relay. It must not block.
	Notify func()
}

// Clearer implements Service on a store.DB, calling the card service, the
// authorization service and the ledger.
type Clearer struct {
	db  *store.DB
	cfg Config
}

var _ Service = (*Clearer)(nil)

// Open checks cfg, migrates db (the clearing tables and the event outbox)
// and returns the service. Errors: BadRequest (bad config).
func Open(ctx context.Context, db *store.DB, cfg Config) (*Clearer, error) {
	if cfg.Ledger == nil || cfg.Authorization == nil || cfg.Card == nil {
		return nil, errors.New(errors.BadRequest, "clearing: config needs Ledger, Authorization and Card")
	}
	if cfg.Tolerance < 0 || cfg.MaxFileSize < 0 {
		return nil, errors.New(errors.BadRequest, "clearing: Tolerance and MaxFileSize must not be negative")
	}
	if cfg.Tolerance == 0 {
		cfg.Tolerance = DefaultTolerance
	}
	if cfg.MaxFileSize == 0 {
		cfg.MaxFileSize = DefaultMaxFileSize
	}
	if cfg.Locker == nil {
		cfg.Locker = &lock.Local{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Notify == nil {
		cfg.Notify = func() {}
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("clearing: %w", err)
	}
	if err := store.Migrate(ctx, db, "clearing", sub); err != nil {
		return nil, fmt.Errorf("clearing: %w", err)
	}
	if err := event.Migrate(ctx, db); err != nil {
		return nil, fmt.Errorf("clearing: %w", err)
	}
	return &Clearer{db: db, cfg: cfg}, nil
}

// Ingest implements Service.
func (c *Clearer) Ingest(ctx context.Context, req IngestRequest) (*Report, error) {
	if !isText(req.FileName, 1, 255) {
		return nil, errors.New(errors.BadRequest, "clearing: file name must be 1 to 255 printable characters")
	}
	if len(req.Content) > c.cfg.MaxFileSize {
		return nil, errors.Errorf(errors.BadRequest, "clearing: file is %d bytes, more than the %d allowed", len(req.Content), c.cfg.MaxFileSize)
	}
	pf, err := parse(req.Content)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(req.Content)
	hash := hex.EncodeToString(sum[:])

	// Most repeats are answered without waiting for the lock.
	if rep, done, err := c.stored(ctx, pf.id, hash); err != nil || done {
		return rep, err
	}

	lease, err := c.cfg.Locker.Lock(ctx, "clearing/file/"+pf.id)
	if err != nil {
		return nil, errors.Wrap(err, errors.CodeOf(err), "clearing: lock file "+pf.id)
	}
	defer lease.Release()

	rep, done, err := c.start(ctx, pf, req.FileName, hash, lease.Token)
	if err != nil || done {
		return rep, err
	}
	recs, err := c.pendingRecords(ctx, pf.id)
	if err != nil {
		return nil, err
	}
	for i := range pf.lines {
		l := &pf.lines[i]
		st, ok := recs[l.ID]
		if !ok {
			continue // already final
		}
		if err := c.process(ctx, pf.id, lease.Token, l, st); err != nil {
			return nil, fmt.Errorf("clearing: file %s record %s: %w", pf.id, showID(l.ID), err)
		}
	}
	return c.complete(ctx, pf.id, lease.Token)
}

// stored returns the report of a file already completed with the same
// content (done), or Conflict when the id was used for other content.
func (c *Clearer) stored(ctx context.Context, id, hash string) (*Report, bool, error) {
	f, err := c.getFile(ctx, c.db.Read, id)
	if errors.Is(err, errors.NotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if f.SHA256 != hash {
		return nil, false, errors.Errorf(errors.Conflict, "clearing: file %s was already ingested with other content", id)
	}
	if f.Status != FileCompleted || f.Report == nil {
		return nil, false, nil
	}
	rep := *f.Report
	rep.Replayed = true
	return &rep, true, nil
}

// GetFile implements Service.
func (c *Clearer) GetFile(ctx context.Context, id string) (*File, error) {
	if !isToken(id, 32) {
		return nil, errors.New(errors.BadRequest, "clearing: malformed file id")
	}
	return c.getFile(ctx, c.db.Read, id)
}

// ListRecords implements Service.
func (c *Clearer) ListRecords(ctx context.Context, req ListRecordsRequest) (*RecordPage, error) {
	if req.After < 0 {
		return nil, errors.Errorf(errors.BadRequest, "clearing: after %d: want 0 or a record's seq", req.After)
	}
	if req.Limit < 0 || req.Limit > MaxRecordsPage {
		return nil, errors.Errorf(errors.BadRequest, "clearing: limit %d: want 1 to %d, or 0 for %d", req.Limit, MaxRecordsPage, MaxRecordsPage)
	}
	if _, err := c.GetFile(ctx, req.FileID); err != nil {
		return nil, err
	}
	limit := req.Limit
	if limit == 0 {
		limit = MaxRecordsPage
	}
	recs, err := c.listRecords(ctx, req.FileID, req.After, limit+1)
	if err != nil {
		return nil, err
	}
	p := &RecordPage{Records: recs}
	if len(recs) > limit {
		p.Records, p.More = recs[:limit], true
	}
	return p, nil
}

// plan is what is to be done with one record, decided from lookups before
// any money moves.
type plan struct {
	op         string // opNone, opPost, opDebit, opCredit
	account    string // the card's ledger account
	settlement string
	amount     int64  // what opDebit moves, if not the record's billing amount (0)
	rec        Record // card id, authorization id, hold id, status/reason for opNone, suspicious
}

// Ledger operations a record's plan may hold.
const (
	opNone   = ""       // nothing to post: the plan's status is final
	opPost   = "post"   // PostHold on rec.HoldID
	opDebit  = "debit"  // force-post: card account -> settlement
	opCredit = "credit" // refund: settlement -> card account
)

// byReference finds the card's approved authorization with the record's RRN
// and auth code: nil if there is none, or (ambiguous) if there are several.
func (c *Clearer) byReference(ctx context.Context, cardID string, l *line) (d *authorization.Decision, ambiguous bool, err error) {
	d, err = c.cfg.Authorization.ByReference(ctx, authorization.ReferenceQuery{CardID: cardID, RRN: l.RRN, AuthCode: l.AuthCode})
	switch {
	case err == nil:
		return d, false, nil
	case errors.Is(err, errors.Conflict):
		return nil, true, nil
	case absent(err):
		return nil, false, nil
	}
	return nil, false, fmt.Errorf("authorization lookup by reference: %w", err)
}

// ledgerKey is the idempotency key of a record's ledger write.
func ledgerKey(fileID, recordID string) string { return "clr:" + fileID + ":" + recordID }

// process applies one record not yet final, resuming at its recorded plan
// when an earlier run chose one.
func (c *Clearer) process(ctx context.Context, fileID string, fence int64, l *line, st *recordState) error {
	p := st.plan
	if p == nil {
		var err error
		if p, err = c.plan(ctx, l); err != nil {
			return err
		}
		dup, err := c.claim(ctx, fileID, fence, l, p)
		if err != nil || dup || p.op == opNone {
			return err
		}
	}
	out, err := c.execute(ctx, fileID, fence, l, p)
	if err != nil {
		return err
	}
	return c.finish(ctx, fileID, fence, l, out)
}

// plan decides what to do with a record: find its card, match it to its
// authorization, and choose the ledger operation.
func (c *Clearer) plan(ctx context.Context, l *line) (*plan, error) {
	p := &plan{}
	unmatched := func(r Reason, detail string) (*plan, error) {
		p.op, p.rec.Status, p.rec.Reason, p.rec.Detail = opNone, StatusUnmatched, r, detail
		return p, nil
	}
	cd, err := c.cfg.Card.Lookup(ctx, l.pan)
	switch {
	case absent(err):
		return unmatched(ReasonCardNotFound, "")
	case err != nil:
		return nil, fmt.Errorf("card lookup: %w", err)
	}
	p.rec.CardID, p.account = cd.ID, cd.AccountID
	if cd.Currency != l.BillingCurrency {
		p.rec.Suspicious = append(p.rec.Suspicious, ReasonCurrencyMismatch)
		return unmatched(ReasonCurrencyMismatch, fmt.Sprintf("billing currency %s, card account %s", l.BillingCurrency, cd.Currency))
	}
	p.settlement = c.cfg.Settlement[cd.Currency]
	if p.settlement == "" {
		return unmatched(ReasonNoSettlement, "no settlement account for "+string(cd.Currency))
	}
	if l.Kind == KindRefund {
		p.op = opCredit
		return p, nil
	}

	// 1. The original network ids: the authorization itself.
	var d *authorization.Decision
	if !l.Original.IsZero() {
		if d, err = c.byNetworkID(ctx, l.Original); err != nil {
			return nil, err
		}
	}
	// The code of the record the ids name: a confirming advice's is the
	// network's, which the clearing may carry rather than its original's.
	var namedCode string
	if d != nil {
		namedCode = d.AuthCode
	}
	// Ids of a record that builds on another (a reversal, an incremental,
	// an advice confirming the bank's approval) stand for the record that
	// holds (or debited) the money, read as it is now: the builder's own
	// hold may since have been replaced (a partial reversal), and a
	// reversal's TransferID is a refund. A reversal of an incremental
	// names the incremental, hence a few steps.
	for step := 0; step < 4 && d != nil && d.OriginalID != "" && d.BuildsOn(); step++ {
		if d, err = c.decisionNow(ctx, d.OriginalID); err != nil {
			return nil, err
		}
	}
	codeDiffers := func(d *authorization.Decision) bool {
		return l.AuthCode != "" && d.AuthCode != l.AuthCode && namedCode != l.AuthCode
	}
	if d != nil {
		p.rec.AuthorizationID = d.ID
		if d.CardID != cd.ID {
			p.rec.Suspicious = append(p.rec.Suspicious, ReasonCardMismatch)
			d = nil // never touch another card's hold
		}
	}
	if d != nil && !d.Approved {
		p.rec.Suspicious = append(p.rec.Suspicious, ReasonDeclined)
		d = nil
	}
	// The bank's approval under these ids holds nothing (reversed: the
	// gateway undid a late answer) and the record bears another approval
	// code: the network's stand-in, whose advice reused the ids (cardnet
	// gives it an identity of its own), holds the money.
	standIn := d != nil && d.Outstanding == 0 && d.HoldID != "" && l.RRN != "" && codeDiffers(d)
	// 2. No usable authorization by network ids (none given, none found,
	// another card's, or declined), or that stand-in: the card's own
	// approved authorization with the record's RRN and auth code.
	if (d == nil || standIn) && l.RRN != "" && l.AuthCode != "" {
		alt, ambiguous, err := c.byReference(ctx, cd.ID, l)
		if err != nil {
			return nil, err
		}
		switch {
		case alt != nil:
			d, p.rec.AuthorizationID = alt, alt.ID
		case ambiguous:
			// Several authorizations share the reference: guessing could
			// post against the wrong hold, so force-post and flag it.
			if standIn {
				p.rec.AuthorizationID = ""
			}
			d = nil
			p.rec.Suspicious = append(p.rec.Suspicious, ReasonAmbiguousReference)
			p.rec.Detail = "rrn and auth code match more than one authorization of the card"
		}
	}
	// Matched by its ids under another code (a match by reference is under
	// the record's own).
	if d != nil && codeDiffers(d) {
		p.rec.Suspicious = append(p.rec.Suspicious, ReasonAuthCode)
	}
	// 3. Without a match: force-post.
	switch {
	case d == nil:
		p.op, p.rec.Reason = opDebit, ReasonNoAuthorization
	case d.TransferID != "" && d.HoldID == "":
		// A single-message (0200) transaction: the money moved when it
		// was authorized, as far as it still stands (Outstanding, less
		// any reversal). What the clearings of it add up to beyond that
		// is debited now, forced: the network has paid it.
		cleared, debited, err := c.clearedAgainst(ctx, d.ID, d.CardID)
		if err != nil {
			return nil, err
		}
		// What the clearings add up to beyond what the 0200 still debits,
		// less what earlier clearings already debited beyond it: a
		// reversal after a clearing lowers Outstanding under what was
		// settled, and that part was never debited.
		beyond := max(cleared+l.BillingAmount-d.Outstanding-debited, 0)
		p.rec.TransferID = d.TransferID
		switch {
		case beyond == 0:
			p.op, p.rec.Status = opNone, StatusSettled
		case d.Outstanding == 0:
			p.op, p.amount, p.rec.Reason = opDebit, beyond, ReasonHoldNotPending
			p.rec.Detail = "the single-message transaction was reversed"
		default:
			p.op, p.amount, p.rec.Reason = opDebit, beyond, ReasonBeyondDebited
			p.rec.Detail = fmt.Sprintf("cleared %d beyond the %d debited at authorization", beyond, d.Outstanding)
			if over(cleared+l.BillingAmount, d.Outstanding, c.cfg.Tolerance) {
				p.rec.Suspicious = append(p.rec.Suspicious, ReasonOverAuthorized)
			}
		}
	case d.HoldID == "":
		p.op, p.rec.Reason = opDebit, ReasonNoAuthorization
	default:
		p.op, p.rec.HoldID = opPost, d.HoldID
	}
	return p, nil
}

// isRefusal reports whether a ledger error is a business refusal (the
// posting will never succeed as it is), not a failure to retry.
func isRefusal(err error) bool {
	switch errors.CodeOf(err) {
	case errors.BadRequest, errors.NotFound, errors.CurrencyMismatch, errors.AccountClosed, errors.InsufficientFunds, errors.Conflict:
		return true
	}
	return false
}

// execute makes a plan's ledger write, idempotently, and returns the
// record's final state.
func (c *Clearer) execute(ctx context.Context, fileID string, fence int64, l *line, p *plan) (Record, error) {
	out := p.rec
	key := ledgerKey(fileID, l.ID)
	meta := map[string]string{"clearing_file": fileID, "clearing_record": l.ID, "arn": l.ARN}
	refused := func(err error) (Record, error) {
		if isRefusal(err) {
			out.Status, out.Reason, out.Detail = StatusUnmatched, ReasonLedgerRefused, errors.MessageOf(err)
			return out, nil
		}
		return out, fmt.Errorf("ledger: %w", err)
	}
	amount := l.BillingAmount
	if p.amount > 0 {
		amount = p.amount
	}
	transfer := func(key string, from, to string, force bool) (*ledger.Transfer, error) {
		return c.cfg.Ledger.Transfer(ctx, ledger.TransferRequest{Key: key, Force: force, Metadata: meta, Legs: []ledger.Leg{
			{AccountID: from, Amount: -amount, Currency: l.BillingCurrency},
			{AccountID: to, Amount: amount, Currency: l.BillingCurrency},
		}})
	}
	switch p.op {
	case opCredit:
		t, err := transfer(key, p.settlement, p.account, false)
		if err != nil {
			return refused(err)
		}
		out.Status, out.TransferID = StatusRefunded, t.ID
		return out, nil
	case opDebit:
		t, err := transfer(key, p.account, p.settlement, true)
		if err != nil {
			return refused(err)
		}
		out.Status, out.TransferID = StatusForced, t.ID
		return out, nil
	case opPost:
	post:
		h, err := c.cfg.Ledger.PostHold(ctx, ledger.PostHoldRequest{
			Key: key, HoldID: p.rec.HoldID, Amount: l.BillingAmount, KeepOpen: !l.Final,
			Force:    true, // the network has already paid the acquirer
			Metadata: meta,
		})
		if err == nil {
			out.Status = StatusPosted
			// A hold a partial reversal placed in place of another covers
			// what remained: what was cleared against those it replaced
			// counts on both sides.
			before := authorization.ClearedBefore(h.Metadata)
			posted, authorized := h.Posted+before, h.Authorized+before
			if over(posted, authorized, c.cfg.Tolerance) {
				out.Suspicious = append(out.Suspicious, ReasonOverAuthorized)
				out.Detail = fmt.Sprintf("cleared %d of %d authorized", posted, authorized)
			}
			return out, nil
		}
		if !errors.Is(err, errors.Conflict) && !errors.Is(err, errors.NotFound) {
			return refused(err)
		}
		// The hold expired, was voided or was finished by an earlier
		// final presentment: the network has paid, so force-post. Hold
		// states are final, so a rerun takes this path again, with the
		// same key.
		h, gerr := c.cfg.Ledger.GetHold(ctx, p.rec.HoldID)
		switch {
		case gerr == nil && h.Status == ledger.HoldPending:
			return out, fmt.Errorf("ledger: post hold %s refused while pending: %w", p.rec.HoldID, err)
		case gerr == nil && h.Status == ledger.HoldVoided && p.rec.AuthorizationID != "":
			// Voided by a partial reversal that replaced it: post the
			// authorization's new hold, recorded first so that a rerun
			// posts that one. The key is free: the refused post stored
			// nothing under it.
			if now, err := c.currentHold(ctx, p.rec.AuthorizationID); err != nil {
				return out, err
			} else if now != "" && now != p.rec.HoldID {
				if err := c.replan(ctx, fileID, fence, l, now); err != nil {
					return out, err
				}
				p.rec.HoldID, out.HoldID = now, now
				goto post
			}
			out.Detail = "hold " + string(h.Status)
		case gerr == nil:
			out.Detail = "hold " + string(h.Status)
			if h.Status == ledger.HoldPosted {
				out.Suspicious = append(out.Suspicious, ReasonAfterFinal)
			}
		case !errors.Is(gerr, errors.NotFound):
			return out, fmt.Errorf("ledger: get hold: %w", gerr)
		}
		t, err := transfer(key+":force", p.account, p.settlement, true)
		if err != nil {
			return refused(err)
		}
		out.Status, out.Reason, out.TransferID = StatusForced, ReasonHoldNotPending, t.ID
		return out, nil
	}
	return out, errors.Errorf(errors.Internal, "clearing: unknown plan %q", p.op)
}

// over reports whether posted exceeds authorized by more than tol percent.
func over(posted, authorized int64, tol int) bool {
	// excess > authorized*tol/100, without multiplying authorized (up to
	// 10^15) by tol.
	if posted <= authorized {
		return false
	}
	excess := posted - authorized
	return excess > authorized/100*int64(tol)+authorized%100*int64(tol)/100
}

// currentHold is the hold authorization id reserves now, its pending
// reversals completed first; "" if there is no such authorization.
func (c *Clearer) currentHold(ctx context.Context, id string) (string, error) {
	d, err := c.decisionNow(ctx, id)
	if err != nil || d == nil {
		return "", err
	}
	return d.HoldID, nil
}

// decisionNow is authorization id as it is now, its pending reversals
// completed first (ByNetworkID does that, Get does not); nil if there is
// no such authorization.
func (c *Clearer) decisionNow(ctx context.Context, id string) (*authorization.Decision, error) {
	d, err := c.cfg.Authorization.Get(ctx, id)
	switch {
	case absent(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("authorization lookup: %w", err)
	}
	return c.byNetworkID(ctx, d.Network)
}

// byNetworkID is the decision under n, or nil if there is none.
func (c *Clearer) byNetworkID(ctx context.Context, n authorization.NetworkID) (*authorization.Decision, error) {
	d, err := c.cfg.Authorization.ByNetworkID(ctx, n)
	switch {
	case absent(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("authorization lookup: %w", err)
	}
	return d, nil
}

// absent reports whether err says a lookup found nothing: NotFound, or
// BadRequest (what the record carries cannot name one).
func absent(err error) bool {
	return errors.Is(err, errors.NotFound) || errors.Is(err, errors.BadRequest)
}
