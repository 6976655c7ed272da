package authorization_test

import (
	"testing"

	"github.com/corebank/corebank/authorization"
)

// A record builds on its original when it holds no money of its own:
// reversals, incrementals and the advice confirming the bank's approval;
// not a stand-in advice with its own hold, nor a purchase.
func TestDecisionBuildsOn(t *testing.T) {
	for _, c := range []struct {
		d    authorization.Decision
		want bool
	}{
		{authorization.Decision{Kind: authorization.KindReversal}, true},
		{authorization.Decision{Kind: authorization.KindIncremental}, true},
		{authorization.Decision{Kind: authorization.KindAdvice, Detail: "confirms_original"}, true},
		{authorization.Decision{Kind: authorization.KindAdvice, Detail: "stand_in"}, false},
		{authorization.Decision{Kind: authorization.KindAdvice}, false},
		{authorization.Decision{Kind: authorization.KindPurchase}, false},
		{authorization.Decision{Kind: authorization.KindPreauth}, false},
	} {
		if got := c.d.BuildsOn(); got != c.want {
			t.Errorf("%s %q: BuildsOn = %v, want %v", c.d.Kind, c.d.Detail, got, c.want)
		}
	}
}
