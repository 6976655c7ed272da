package clearing

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/event"
	"github.com/corebank/corebank/money"
	"github.com/corebank/corebank/store"
)

const fileColumns = `id, name, network, file_date, sha256, record_count, control_total, status, report, created_at, updated_at`

type queryer interface {
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

func (c *Clearer) getFile(ctx context.Context, q queryer, id string) (*File, error) {
	var f File
	var status, report string
	var created, updated int64
	err := q.QueryRowContext(ctx, c.db.Rebind(`SELECT `+fileColumns+` FROM clearing_files WHERE id = ?`), id).Scan(
		&f.ID, &f.Name, &f.Network, &f.Date, &f.SHA256, &f.Records, &f.ControlTotal, &status, &report, &created, &updated)
	if err == sql.ErrNoRows {
		return nil, errors.Errorf(errors.NotFound, "clearing: no file %s", id)
	}
	if err != nil {
		return nil, fmt.Errorf("clearing: get file %s: %w", id, err)
	}
	f.Status = FileStatus(status)
	f.CreatedAt, f.UpdatedAt = time.Unix(0, created).UTC(), time.Unix(0, updated).UTC()
	if report != "" {
		f.Report = new(Report)
		if err := json.Unmarshal([]byte(report), f.Report); err != nil {
			return nil, fmt.Errorf("clearing: file %s report: %w", id, err)
		}
	}
	return &f, nil
}

// start records the file and its records (all pending) on first sight, or
// takes it over with a new fencing token; done with the stored report when
// it is already completed.
func (c *Clearer) start(ctx context.Context, pf *parsedFile, name, hash string, fence int64) (rep *Report, done bool, err error) {
	now := c.cfg.Now().UnixNano()
	err = c.db.InTx(ctx, func(tx *sql.Tx) error {
		f, err := c.getFile(ctx, tx, pf.id)
		if errors.Is(err, errors.NotFound) {
			return c.insertFile(ctx, tx, pf, name, hash, fence, now)
		}
		if err != nil {
			return err
		}
		switch {
		case f.SHA256 != hash:
			return errors.Errorf(errors.Conflict, "clearing: file %s was already ingested with other content", pf.id)
		case f.Status == FileCompleted:
			r := *f.Report
			r.Replayed, rep, done = true, &r, true
			return nil
		}
		res, err := tx.ExecContext(ctx, c.db.Rebind(`UPDATE clearing_files SET fence = ?, updated_at = ? WHERE id = ? AND fence < ?`), fence, now, pf.id, fence)
		if err != nil {
			return fmt.Errorf("clearing: take file %s: %w", pf.id, err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return errors.Errorf(errors.Conflict, "clearing: file %s: a newer processor holds it", pf.id)
		}
		return nil
	})
	return rep, done, err
}

func (c *Clearer) insertFile(ctx context.Context, tx *sql.Tx, pf *parsedFile, name, hash string, fence, now int64) error {
	res, err := tx.ExecContext(ctx, c.db.Rebind(`INSERT INTO clearing_files (`+fileColumns+`, fence) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (id) DO NOTHING`),
		pf.id, name, pf.network, pf.date, hash, pf.count, pf.total, string(FileProcessing), "", now, now, fence)
	if err != nil {
		return fmt.Errorf("clearing: insert file %s: %w", pf.id, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		// Another processor stored it first (two processes without a
		// shared Locker): a retry takes the file over or replays it.
		return errors.Errorf(errors.Unavailable, "clearing: file %s is being started by another processor; retry", pf.id)
	}
	const width = 35
	const chunk = 200
	for start := 0; start < len(pf.lines); start += chunk {
		ls := pf.lines[start:min(start+chunk, len(pf.lines))]
		args := make([]any, 0, width*len(ls))
		for i := range ls {
			l := &ls[i]
			args = append(args, pf.id, l.ID, l.Seq, string(l.Kind), l.PANMasked, "",
				l.Amount, string(l.Currency), l.BillingAmount, string(l.BillingCurrency),
				l.ARN, l.RRN, l.AuthCode, l.Original.Acquirer, l.Original.STAN, l.Original.TransmissionTime,
				l.MerchantName, l.MerchantCity, l.MerchantCountry, l.MCC, l.Presentment, b2i(l.Final),
				string(StatusPending), "", "", "", "", "", "", "", "", "", "", int64(0), now)
		}
		q := `INSERT INTO clearing_records (` + recordColumns + `) VALUES ` + store.Placeholders(len(ls), width)
		if _, err := tx.ExecContext(ctx, c.db.Rebind(q), args...); err != nil {
			return fmt.Errorf("clearing: insert records of %s: %w", pf.id, err)
		}
	}
	return nil
}

const recordColumns = `file_id, record_id, seq, kind, pan_masked, card_id, amount, currency, billing_amount, billing_currency,
	arn, rrn, auth_code, acquirer, stan, transmission, merchant_name, merchant_city, merchant_country, mcc, presentment, final,
	status, reason, detail, suspicious, authorization_id, hold_id, transfer_id, duplicate_of, op, op_account, op_settlement, op_amount, updated_at`

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// recordState is a pending record's stored progress: its plan, if one was
// recorded.
type recordState struct {
	plan *plan
}

// scanRecord reads a record and the plan stored with it (rec unset; op
// opNone if there is none).
func scanRecord(s interface{ Scan(...any) error }) (*Record, *plan, error) {
	var r Record
	var p plan
	var kind, cur, bcur, status, reason, susp string
	var final, updated int64
	err := s.Scan(&r.FileID, &r.ID, &r.Seq, &kind, &r.PANMasked, &r.CardID, &r.Amount, &cur, &r.BillingAmount, &bcur,
		&r.ARN, &r.RRN, &r.AuthCode, &r.Original.Acquirer, &r.Original.STAN, &r.Original.TransmissionTime,
		&r.MerchantName, &r.MerchantCity, &r.MerchantCountry, &r.MCC, &r.Presentment, &final,
		&status, &reason, &r.Detail, &susp, &r.AuthorizationID, &r.HoldID, &r.TransferID, &r.DuplicateOf, &p.op, &p.account, &p.settlement, &p.amount, &updated)
	if err != nil {
		return nil, nil, err
	}
	r.Kind, r.Currency, r.BillingCurrency = Kind(kind), money.Currency(cur), money.Currency(bcur)
	r.Status, r.Reason, r.Final = Status(status), Reason(reason), final != 0
	if r.Original.Acquirer != "" {
		r.Original.RRN = r.RRN
	} else {
		r.Original = authorization.NetworkID{}
	}
	for _, s := range strings.Split(susp, ",") {
		if s != "" {
			r.Suspicious = append(r.Suspicious, Reason(s))
		}
	}
	r.UpdatedAt = time.Unix(0, updated).UTC()
	return &r, &p, nil
}

func (c *Clearer) listRecords(ctx context.Context, fileID string, after, limit int) ([]Record, error) {
	rows, err := c.db.Read.QueryContext(ctx, c.db.Rebind(`SELECT `+recordColumns+` FROM clearing_records WHERE file_id = ? AND seq > ? ORDER BY seq LIMIT ?`), fileID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("clearing: list records of %s: %w", fileID, err)
	}
	defer rows.Close()
	out := []Record{}
	for rows.Next() {
		r, _, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("clearing: list records of %s: %w", fileID, err)
		}
		out = append(out, *r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("clearing: list records of %s: %w", fileID, err)
	}
	return out, nil
}

// pendingRecords returns a file's records that are not final, by id.
func (c *Clearer) pendingRecords(ctx context.Context, fileID string) (map[string]*recordState, error) {
	rows, err := c.db.Read.QueryContext(ctx, c.db.Rebind(`SELECT `+recordColumns+` FROM clearing_records WHERE file_id = ? AND status = ?`), fileID, string(StatusPending))
	if err != nil {
		return nil, fmt.Errorf("clearing: pending records of %s: %w", fileID, err)
	}
	defer rows.Close()
	out := map[string]*recordState{}
	for rows.Next() {
		r, p, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("clearing: pending records of %s: %w", fileID, err)
		}
		st := &recordState{}
		if p.op != opNone {
			r.Status = StatusPending
			p.rec = *r
			st.plan = p
		}
		out[r.ID] = st
	}
	return out, rows.Err()
}

// fenced checks, inside tx, that fence is still the file's: a processor
// whose lease was taken over must not write.
func (c *Clearer) fenced(ctx context.Context, tx *sql.Tx, fileID string, fence int64) error {
	res, err := tx.ExecContext(ctx, c.db.Rebind(`UPDATE clearing_files SET updated_at = ? WHERE id = ? AND fence = ?`), c.cfg.Now().UnixNano(), fileID, fence)
	if err != nil {
		return fmt.Errorf("clearing: fence file %s: %w", fileID, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return errors.Errorf(errors.Conflict, "clearing: file %s: lease lost to a newer processor", fileID)
	}
	return nil
}

// claim records a record's plan, after claiming its presentment. A
// presentment another record claimed makes this one a duplicate (dup); a
// plan without a ledger operation is final at once.
func (c *Clearer) claim(ctx context.Context, fileID string, fence int64, l *line, p *plan) (dup bool, err error) {
	notify := false
	err = c.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := c.fenced(ctx, tx, fileID, fence); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, c.db.Rebind(`INSERT INTO clearing_presentments (arn, presentment, kind, file_id, record_id)
			VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING`), l.ARN, l.Presentment, string(l.Kind), fileID, l.ID); err != nil {
			return fmt.Errorf("clearing: claim presentment: %w", err)
		}
		var ownerFile, ownerRec string
		if err := tx.QueryRowContext(ctx, c.db.Rebind(`SELECT file_id, record_id FROM clearing_presentments WHERE arn = ? AND presentment = ? AND kind = ?`),
			l.ARN, l.Presentment, string(l.Kind)).Scan(&ownerFile, &ownerRec); err != nil {
			return fmt.Errorf("clearing: claim presentment: %w", err)
		}
		if ownerFile != fileID || ownerRec != l.ID {
			dup = true
			out := Record{Status: StatusDuplicate, CardID: p.rec.CardID, DuplicateOf: ownerFile + "/" + ownerRec}
			return c.writeFinal(ctx, tx, fileID, l, out)
		}
		if p.op == opNone {
			notify = true
			if err := c.writeFinal(ctx, tx, fileID, l, p.rec); err != nil {
				return err
			}
			return c.appendEvent(ctx, tx, fileID, l.ID)
		}
		_, err := tx.ExecContext(ctx, c.db.Rebind(`UPDATE clearing_records SET card_id = ?, reason = ?, detail = ?, suspicious = ?, authorization_id = ?, hold_id = ?,
			op = ?, op_account = ?, op_settlement = ?, op_amount = ?, updated_at = ? WHERE file_id = ? AND record_id = ? AND status = ?`),
			p.rec.CardID, string(p.rec.Reason), p.rec.Detail, joinReasons(p.rec.Suspicious), p.rec.AuthorizationID, p.rec.HoldID,
			p.op, p.account, p.settlement, p.amount, c.cfg.Now().UnixNano(), fileID, l.ID, string(StatusPending))
		if err != nil {
			return fmt.Errorf("clearing: record plan: %w", err)
		}
		return nil
	})
	if err == nil && notify {
		c.cfg.Notify()
	}
	return dup, err
}

// finish records a record's final state and its event.
func (c *Clearer) finish(ctx context.Context, fileID string, fence int64, l *line, out Record) error {
	err := c.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := c.fenced(ctx, tx, fileID, fence); err != nil {
			return err
		}
		if err := c.writeFinal(ctx, tx, fileID, l, out); err != nil {
			return err
		}
		return c.appendEvent(ctx, tx, fileID, l.ID)
	})
	if err == nil {
		c.cfg.Notify()
	}
	return err
}

func (c *Clearer) writeFinal(ctx context.Context, tx *sql.Tx, fileID string, l *line, out Record) error {
	res, err := tx.ExecContext(ctx, c.db.Rebind(`UPDATE clearing_records SET card_id = ?, status = ?, reason = ?, detail = ?, suspicious = ?,
		authorization_id = ?, hold_id = ?, transfer_id = ?, duplicate_of = ?, updated_at = ?
		WHERE file_id = ? AND record_id = ? AND status = ?`),
		out.CardID, string(out.Status), string(out.Reason), out.Detail, joinReasons(out.Suspicious),
		out.AuthorizationID, out.HoldID, out.TransferID, out.DuplicateOf, c.cfg.Now().UnixNano(),
		fileID, l.ID, string(StatusPending))
	if err != nil {
		return fmt.Errorf("clearing: record result: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return errors.Errorf(errors.Conflict, "clearing: record %s/%s is no longer pending", fileID, l.ID)
	}
	return nil
}

// appendEvent writes the record's event, read back as stored (masked).
func (c *Clearer) appendEvent(ctx context.Context, tx *sql.Tx, fileID, recordID string) error {
	r, _, err := scanRecord(tx.QueryRowContext(ctx, c.db.Rebind(`SELECT `+recordColumns+` FROM clearing_records WHERE file_id = ? AND record_id = ?`), fileID, recordID))
	if err != nil {
		return fmt.Errorf("clearing: read record %s/%s: %w", fileID, recordID, err)
	}
	topic := TopicRecordPosted
	switch r.Status {
	case StatusUnmatched:
		topic = TopicRecordUnmatched
	case StatusDuplicate, StatusPending:
		return nil
	}
	payload, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("clearing: event: %w", err)
	}
	key := r.CardID
	if key == "" {
		key = fileID
	}
	return event.Append(ctx, tx, c.db, event.Event{Topic: topic, Key: key, Payload: payload, Time: c.cfg.Now()})
}

func joinReasons(rs []Reason) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = string(r)
	}
	return strings.Join(s, ",")
}

// complete builds the report from the records, stores it, marks the file
// completed and publishes clearing.file.completed.
func (c *Clearer) complete(ctx context.Context, fileID string, fence int64) (*Report, error) {
	var rep *Report
	err := c.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := c.fenced(ctx, tx, fileID, fence); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, c.db.Rebind(`SELECT `+recordColumns+` FROM clearing_records WHERE file_id = ? ORDER BY seq`), fileID)
		if err != nil {
			return fmt.Errorf("clearing: report %s: %w", fileID, err)
		}
		var recs []Record
		for rows.Next() {
			r, _, err := scanRecord(rows)
			if err != nil {
				rows.Close()
				return fmt.Errorf("clearing: report %s: %w", fileID, err)
			}
			recs = append(recs, *r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("clearing: report %s: %w", fileID, err)
		}
		now := c.cfg.Now()
		rep = buildReport(fileID, recs, now)
		js, err := json.Marshal(rep)
		if err != nil {
			return fmt.Errorf("clearing: report %s: %w", fileID, err)
		}
		if _, err := tx.ExecContext(ctx, c.db.Rebind(`UPDATE clearing_files SET status = ?, report = ?, updated_at = ? WHERE id = ?`),
			string(FileCompleted), string(js), now.UnixNano(), fileID); err != nil {
			return fmt.Errorf("clearing: complete %s: %w", fileID, err)
		}
		return event.Append(ctx, tx, c.db, event.Event{Topic: TopicFileCompleted, Key: fileID, Payload: js, Time: now})
	})
	if err != nil {
		return nil, err
	}
	c.cfg.Notify()
	return rep, nil
}

func buildReport(fileID string, recs []Record, now time.Time) *Report {
	rep := &Report{FileID: fileID, Records: len(recs), Unmatched: []Issue{}, Suspicious: []Issue{}, CompletedAt: now.UTC()}
	for _, r := range recs {
		switch r.Status {
		case StatusPosted:
			rep.Posted++
		case StatusSettled:
			rep.Settled++
		case StatusForced:
			rep.Forced++
		case StatusRefunded:
			rep.Refunded++
		case StatusDuplicate:
			rep.Duplicates++
		case StatusUnmatched:
			rep.UnmatchedCount++
			if len(rep.Unmatched) < MaxReportIssues {
				rep.Unmatched = append(rep.Unmatched, Issue{RecordID: r.ID, Reason: r.Reason, Detail: r.Detail})
			}
		}
		for _, s := range r.Suspicious {
			rep.SuspiciousCount++
			if len(rep.Suspicious) < MaxReportIssues {
				rep.Suspicious = append(rep.Suspicious, Issue{RecordID: r.ID, Reason: s, Detail: r.Detail})
			}
		}
	}
	rep.Truncated = rep.UnmatchedCount > len(rep.Unmatched) || rep.SuspiciousCount > len(rep.Suspicious)
	return rep
}

// clearedAgainst is what records already applied have cleared against
// authorization id (settled with it, or force-posted beyond it).
// Only records of the authorization's own card count: a record naming its
// network ids on another card was flagged card_mismatch and posted there.
func (c *Clearer) clearedAgainst(ctx context.Context, authorizationID, cardID string) (cleared, debited int64, err error) {
	err = c.db.Read.QueryRowContext(ctx, c.db.Rebind(`SELECT CAST(COALESCE(SUM(billing_amount), 0) AS BIGINT),
		CAST(COALESCE(SUM(CASE WHEN status <> ? THEN op_amount ELSE 0 END), 0) AS BIGINT) FROM clearing_records
		WHERE authorization_id = ? AND authorization_id <> '' AND card_id = ? AND kind <> ?
		AND (status IN (?, ?) OR (status = ? AND op = ?))`),
		string(StatusSettled), authorizationID, cardID, string(KindRefund), string(StatusSettled), string(StatusForced),
		string(StatusPending), opDebit).Scan(&cleared, &debited)
	if err != nil {
		return 0, 0, fmt.Errorf("clearing: clearings of %s: %w", authorizationID, err)
	}
	return cleared, debited, nil
}

// replan records the hold a pending record's post now targets.
func (c *Clearer) replan(ctx context.Context, fileID string, fence int64, l *line, holdID string) error {
	return c.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := c.fenced(ctx, tx, fileID, fence); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, c.db.Rebind(`UPDATE clearing_records SET hold_id = ?, updated_at = ? WHERE file_id = ? AND record_id = ? AND status = ?`),
			holdID, c.cfg.Now().UnixNano(), fileID, l.ID, string(StatusPending))
		if err != nil {
			return fmt.Errorf("clearing: record plan: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return errors.Errorf(errors.Conflict, "clearing: record %s/%s is no longer pending", fileID, l.ID)
		}
		return nil
	})
}
