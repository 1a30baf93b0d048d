package cli

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/drillship/drillship/ledger"
)

// Issue 11 item 3: after a failed inject the --wait summary printed
// "restored +1795891961098ms", an epoch shown as an offset. With no
// injection, offsets count from the drill's start.
func TestPrintDrillNeverPrintsAnEpochAsAnOffset(t *testing.T) {
	start := int64(1_795_891_950_000)
	r := ledger.Record{Name: "region-failover", Outcome: ledger.OutcomeNotRecovered, Restored: true, StartedAt: start,
		Marks:      []ledger.Mark{{Name: ledger.Restored, At: start + 11_098, Source: "steady state observed after restore"}},
		BlindSpots: []ledger.BlindSpot{{What: "guardrails", From: start + 1_000, To: start + 12_200, Attempt: 2}}}
	var b bytes.Buffer
	printDrill(&b, r)
	out := b.String()
	for _, m := range regexp.MustCompile(`\+\s*(\d+)ms`).FindAllStringSubmatch(out, -1) {
		if v, _ := strconv.ParseInt(m[1], 10, 64); v > 24*3600*1000 {
			t.Fatalf("offset %sms printed:\n%s", m[1], out)
		}
	}
	if !strings.Contains(out, "+  11098ms") || !strings.Contains(out, "from start") || !strings.Contains(out, "guardrails unchecked for 11.2 s") {
		t.Fatalf("summary:\n%s", out)
	}
}
