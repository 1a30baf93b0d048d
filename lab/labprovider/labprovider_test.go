package labprovider

import (
	"strings"
	"testing"
	"time"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/prometheus"
)

func TestExprFillsScopeAndWindow(t *testing.T) {
	q := activities.Query{Window: 5 * time.Second, Scope: map[string]string{"version": "v2"}}
	got, err := prometheus.Expr(portable[activities.MetricErrorRate], q)
	if err != nil {
		t.Fatal(err)
	}
	want := `sum(rate(drillship_lab_requests_total{version="v2",code=~"5.."}[5s])) / sum(rate(drillship_lab_requests_total{version="v2"}[5s]))`
	if got != want {
		t.Fatalf("expr\n got %s\nwant %s", got, want)
	}
	if _, err := prometheus.Expr(`up{version="{{version}}"}`, activities.Query{Scope: map[string]string{"version": `v2"}or{`}}); err == nil || !strings.Contains(err.Error(), "label value") {
		t.Fatalf("injection: err = %v, want a label value error", err)
	}
	if _, err := prometheus.Expr(`up{region="{{region}}"}`, q); err == nil || !strings.Contains(err.Error(), "{{region}}") {
		t.Fatalf("missing key: err = %v, want it named", err)
	}
}

func TestConfig(t *testing.T) {
	c, err := New(nil, nil)
	if err != nil || c.ref != "default" {
		t.Fatalf("no settings: %v, ref %q; want the default lab", err, c.ref)
	}
	if _, err := New(map[string]any{"lab": "relative/dir"}, nil); err == nil || !strings.Contains(err.Error(), "absolute path") {
		t.Fatalf("relative lab: err = %v", err)
	}
	if _, err := New(map[string]any{"labs": "default"}, nil); err == nil || !strings.Contains(err.Error(), "labs") {
		t.Fatalf("typo: err = %v", err)
	}
	f := activities.Fault{Kind: FaultErrorRate, Params: map[string]string{"version": "v2", "rate": "0.1"}}
	ch, err := change(f, false)
	if err != nil || *ch.ErrorRate != 0.1 || ch.Version != "v2" {
		t.Fatalf("error_rate change %+v, %v", ch, err)
	}
	if ch, _ = change(f, true); *ch.ErrorRate != 0 {
		t.Fatalf("undo error_rate: rate %v, want 0", *ch.ErrorRate)
	}
	if _, err := change(activities.Fault{Kind: "kill_node", Params: map[string]string{"version": "v2"}}, false); !activities.IsPermanent(err) {
		t.Fatalf("unknown kind: err = %v, want permanent", err)
	}
}
