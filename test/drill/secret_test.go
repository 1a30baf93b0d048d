package drill

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/drills"
	"github.com/drillship/drillship/ledger"
	"github.com/drillship/drillship/test/harness"
)

// A secret referenced from a spec as ${VAR} is expanded in the worker, so
// the probe gets it while no workflow history holds it.
func TestSecretNeverInHistory(t *testing.T) {
	const secret = "s3cr3t-token-7f1d2c9e"
	t.Setenv("DRILLSHIP_TEST_TOKEN", secret)
	var authorized int
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Token") != secret {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		authorized++
		w.WriteHeader(http.StatusOK)
	}))
	defer api.Close()

	env := harness.Start(t, false)
	spec := harness.DrillSpec(t, env, "region-failover")
	probe := activities.Target{Provider: "http", Config: map[string]any{
		"url": api.URL, "headers": map[string]any{"X-Token": "${DRILLSHIP_TEST_TOKEN}"},
	}}
	one := 1.0
	spec.SteadyState = append(spec.SteadyState, activities.Check{Name: "token-api", Target: &probe, Query: activities.Query{Metric: "up"}, Min: &one})
	spec.Recovery.HoldFor = 0
	if err := spec.Validate(env.Registry); err != nil {
		t.Fatal(err)
	}
	rec := harness.RunDrill(t, env, spec, drills.ModeAutomated)
	if rec.Outcome != ledger.OutcomeRecovered || authorized == 0 {
		t.Fatalf("outcome %s (%s), authorized probes %d: the worker must have sent the expanded secret", rec.Outcome, rec.Reason, authorized)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, id := range []string{rec.ID} {
		it := env.Client.GetWorkflowHistory(ctx, id, "", false, 0)
		events := 0
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				t.Fatal(err)
			}
			events++
			raw, err := ev.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(raw, []byte(secret)) {
				t.Fatalf("event %d (%s) of %s holds the secret", ev.EventId, ev.EventType, id)
			}
		}
		if events < 10 {
			t.Fatalf("only %d events read", events)
		}
	}
}
