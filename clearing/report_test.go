package clearing_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/corebank/corebank/clearing"
	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/event"
	"github.com/corebank/corebank/store/storetest"
)

// A file with more issues than a report lists: the report (answered,
// stored, and published when the file completes) lists the first
// MaxReportIssues of each kind, counts them all, says it is cut, and its
// event fits what a broker takes, so the outbox keeps moving.
func TestLongReportIsCut(t *testing.T) {
	e := newEnv(t, storetest.SQLite(t, "clearing"))
	h := e.holder(1000)
	const n = clearing.MaxReportIssues + 2
	recs := make([]rec, n)
	for i := range recs {
		// Billed in a currency the card's account does not hold:
		// unmatched and suspicious both.
		recs[i] = rec{id: fmt.Sprintf("REC%029d", i), pan: h.PAN, amount: 100, currency: "EUR"}
	}
	rep := e.ingest(t, "long.csv", file("LONG", recs...))
	check := func(what string, rep *clearing.Report) {
		t.Helper()
		if rep.Records != n || rep.UnmatchedCount != n || rep.SuspiciousCount != n || !rep.Truncated ||
			len(rep.Unmatched) != clearing.MaxReportIssues || len(rep.Suspicious) != clearing.MaxReportIssues {
			t.Errorf("%s: records %d, unmatched %d listed of %d, suspicious %d of %d, truncated %v; want %d, %d of %d, %d of %d, true",
				what, rep.Records, len(rep.Unmatched), rep.UnmatchedCount, len(rep.Suspicious), rep.SuspiciousCount, rep.Truncated,
				n, clearing.MaxReportIssues, n, clearing.MaxReportIssues, n)
		}
		if rep.Unmatched[0].RecordID != recs[0].id || rep.Unmatched[len(rep.Unmatched)-1].RecordID != recs[clearing.MaxReportIssues-1].id {
			t.Errorf("%s: listed %s..%s, want the first %d records", what, rep.Unmatched[0].RecordID, rep.Unmatched[len(rep.Unmatched)-1].RecordID, clearing.MaxReportIssues)
		}
	}
	check("Ingest", rep)
	var payload []byte
	if err := e.db.Read.QueryRow(`SELECT payload FROM outbox WHERE topic = ?`, clearing.TopicFileCompleted).Scan(&payload); err != nil {
		t.Fatal(err)
	}
	if len(payload) > event.MaxPayload/2 {
		t.Errorf("the completion event is %d bytes; a report of at most %d issues a list should be far under the broker's %d", len(payload), clearing.MaxReportIssues, event.MaxPayload)
	}
	t.Logf("completion event: %d bytes", len(payload))
	var published clearing.Report
	if err := json.Unmarshal(payload, &published); err != nil {
		t.Fatal(err)
	}
	check("event", &published)
	again := e.ingest(t, "long.csv", file("LONG", recs...))
	if !again.Replayed {
		t.Error("second ingest not replayed")
	}
	check("replay", again)
	all := e.allRecords(t, rep.FileID) // two pages
	if len(all) != n || all[n-1].Status != clearing.StatusUnmatched || all[n-1].Seq != n {
		t.Errorf("ListRecords: %d records, want all %d, the last unmatched", len(all), n)
	}
	// A page's bounds.
	p, err := e.c.ListRecords(t.Context(), clearing.ListRecordsRequest{FileID: rep.FileID, After: n - 3, Limit: 2})
	if err != nil || len(p.Records) != 2 || p.Records[0].Seq != n-2 || !p.More {
		t.Errorf("2 after %d: %+v, %v; want seqs %d and %d, more", n-3, p, err, n-2, n-1)
	}
	p, err = e.c.ListRecords(t.Context(), clearing.ListRecordsRequest{FileID: rep.FileID, After: n - 1, Limit: 2})
	if err != nil || len(p.Records) != 1 || p.Records[0].Seq != n || p.More {
		t.Errorf("2 after %d: %+v, %v; want the last only", n-1, p, err)
	}
	for _, bad := range []clearing.ListRecordsRequest{
		{FileID: rep.FileID, After: -1},
		{FileID: rep.FileID, Limit: -1},
		{FileID: rep.FileID, Limit: clearing.MaxRecordsPage + 1},
	} {
		if _, err := e.c.ListRecords(t.Context(), bad); errors.CodeOf(err) != errors.BadRequest {
			t.Errorf("ListRecords(%+v) = %v, want bad_request", bad, err)
		}
	}
}
