package activities

import (
	"strings"
	"testing"

	"github.com/drillship/drillship/analysis"
)

func TestBlindWindowFails(t *testing.T) {
	for _, tc := range []struct {
		samples, inconclusive int
		fail                  bool
	}{{4, 0, false}, {4, 2, false}, {4, 3, true}, {3, 3, true}, {0, 0, false}} {
		r := blind(WatchResult{Samples: tc.samples, Inconclusive: tc.inconclusive, Last: []analysis.Verdict{{At: 42, Outcome: analysis.Inconclusive, Reason: "read failed"}}})
		if r.Failed != tc.fail {
			t.Errorf("%d/%d inconclusive: failed %v, want %v", tc.inconclusive, tc.samples, r.Failed, tc.fail)
		}
		if r.Failed && (!strings.Contains(r.Reason, "signals unavailable") || r.FailedAt != 42) {
			t.Errorf("reason %q failedAt %d", r.Reason, r.FailedAt)
		}
	}
}
