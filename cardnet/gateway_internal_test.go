package cardnet

import (
	"fmt"
	"testing"
	"time"
)

// The requests answered per the timeout policy are forgotten an hour
// after they were last recorded, oldest first, without a walk over all of
// them: a record costs the same with a million remembered (an outage of
// the authorization service records one per request).
func TestTimeoutAnswersAreForgottenOldestFirst(t *testing.T) {
	g := &Gateway{}
	g.init()
	old := time.Now().Add(-timedOutTTL - time.Minute)
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := range 1000 {
		k := fmt.Sprintf("old%d", i)
		g.timedOut[k] = timedOut{at: old}
		g.expiry = append(g.expiry, timedOutKey{k, old})
	}
	// Recorded long ago, and again since: kept.
	g.rememberTimeout("old7", true)
	g.rememberTimeout("new", false)
	if len(g.timedOut) != 2 {
		t.Fatalf("%d remembered, want 2 (old7 again, new)", len(g.timedOut))
	}
	if _, ok := g.timedOut["old7"]; !ok || !g.timedOut["old7"].queued {
		t.Errorf("old7, recorded again since, was forgotten: %+v", g.timedOut["old7"])
	}
	if len(g.expiry) != 2 {
		t.Errorf("%d keys left in the expiry list, want 2", len(g.expiry))
	}
	// A fresh entry ahead of old ones stops the sweep: nothing newer than
	// an hour is looked at, so a record costs what expires, not what is kept.
	g.expiry = append([]timedOutKey{{"fresh", time.Now()}}, g.expiry...)
	g.timedOut["fresh"] = timedOut{at: time.Now()}
	g.rememberTimeout("newer", false)
	if len(g.timedOut) != 4 {
		t.Errorf("%d remembered, want 4", len(g.timedOut))
	}
}
