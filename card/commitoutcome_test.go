package card_test

import (
	"context"
	"testing"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

// A card issued through a connection lost while its COMMIT is in flight
// may have been stored: the caller is answered Timeout (retry with the
// same key), not Unavailable (nothing stored). Here it was stored, and the
// retry with the same key, without the proxy, returns that card.
func TestIssueWithLostCommitAnswersTimeout(t *testing.T) {
	ctx := context.Background()
	ddb, db, p := storetest.PostgresCutting(t, "card", false)
	cfg := testConfig(t, newClock(epoch))
	s := openCards(t, db, cfg)

	p.Arm()
	c, err := s.Issue(ctx, issueReq("issue-1", "cus_ada"))
	if !p.WasCut() {
		t.Fatal("no COMMIT went through the proxy")
	}
	if errors.CodeOf(err) != errors.Timeout || !store.CommitOutcomeUnknown(err) {
		t.Fatalf("Issue whose COMMIT's answer was lost: %v, %v; want timeout (outcome unknown)", c, err)
	}

	if n := count(t, ddb, "cards"); n != 1 {
		t.Fatalf("%d cards stored, want 1: the server committed", n)
	}
	again := issue(t, openCards(t, ddb, cfg), "issue-1", "cus_ada")
	if n := count(t, ddb, "cards"); n != 1 || again.CustomerID != "cus_ada" {
		t.Errorf("the retry with the same key: %+v, %d cards; want the one stored", again, n)
	}
}
