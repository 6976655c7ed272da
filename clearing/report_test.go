package clearing_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/corebank/corebank/clearing"
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
	all, err := e.c.ListRecords(t.Context(), rep.FileID)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != n || all[n-1].Status != clearing.StatusUnmatched {
		t.Errorf("ListRecords: %d records, want all %d, the last unmatched", len(all), n)
	}
}
