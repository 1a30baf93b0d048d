package labprovider

import (
	"context"
	"strings"
	"testing"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/lab"
)

// The lab cannot label a fault, so Stop verifies the state first: a rate
// someone else set after the drill's is left alone, and a fault not in
// effect is NotFound rather than undone blindly. (Before, Stop reset the
// version's error rate to 0 whoever had set it.)
func TestStopVerifiesBeforeUndo(t *testing.T) {
	l := lab.Start(t, lab.Options{Parts: lab.PartPostgres})
	c, err := New(map[string]any{"lab": l.Dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	f := c.Faults()
	rate := func() float64 {
		t.Helper()
		cc, err := c.control()
		if err != nil {
			t.Fatal(err)
		}
		svcs, err := cc.Services(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range svcs {
			if s.Version == "v2" {
				return s.ErrorRate
			}
		}
		t.Fatal("no v2")
		return 0
	}
	mine := activities.Fault{Kind: FaultErrorRate, Params: map[string]string{"version": "v2", "rate": "0.1"}, Owner: "drill-1"}

	if r, err := f.Stop(ctx, mine, ""); err != nil || !r.NotFound {
		t.Fatalf("stop before inject = %+v, %v; want notFound", r, err)
	}
	h, err := f.Inject(ctx, mine)
	if err != nil || h != "v2" || rate() != 0.1 {
		t.Fatalf("inject = %q, %v; rate %v", h, err, rate())
	}
	// Someone else sets another rate on the same version.
	theirs := activities.Fault{Kind: FaultErrorRate, Params: map[string]string{"version": "v2", "rate": "0.3"}}
	if _, err := f.Inject(ctx, theirs); err != nil {
		t.Fatal(err)
	}
	r, err := f.Stop(ctx, mine, h)
	if err != nil || !strings.Contains(r.NotOurs, "someone else") || len(r.Stopped) != 0 || rate() != 0.3 {
		t.Fatalf("stop over someone else's rate = %+v, %v; rate %v, want 0.3 left alone", r, err, rate())
	}
	// Their stop ends their rate.
	if r, err := f.Stop(ctx, theirs, "v2"); err != nil || len(r.Stopped) != 1 || rate() != 0 {
		t.Fatalf("their stop = %+v, %v; rate %v", r, err, rate())
	}
}
