// Package drill holds the end-to-end tests of drills on the embedded stack.
package drill

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/drillship/drillship/cli"
	"github.com/drillship/drillship/drills"
	"github.com/drillship/drillship/ledger"
	"github.com/drillship/drillship/localenv"
	"github.com/drillship/drillship/test/harness"
	"github.com/drillship/drillship/workflows"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

func TestRegionFailoverDrill(t *testing.T) {
	env := harness.Start(t, false)
	spec := harness.DrillSpec(t, env, "region-failover")
	rec := harness.RunDrill(t, env, spec, drills.ModeAutomated)
	if rec.Outcome != ledger.OutcomeRecovered {
		t.Fatalf("outcome %s: %s %+v", rec.Outcome, rec.Reason, rec.Findings)
	}
	harness.AssertRestored(t, env, rec)
	for _, m := range ledger.Order {
		if _, ok := rec.MarkAt(m); !ok {
			t.Fatalf("mark %s missing: %+v", m, rec.Marks)
		}
	}
	if err := ledger.Monotonic(rec.Marks); err != nil {
		t.Fatal(err)
	}
	// The ground truth: when the local environment put the fault in effect.
	var faults []localenv.FaultRecord
	harness.GetJSON(t, env.LocalURL()+"/api/faults", &faults)
	if len(faults) != 1 {
		t.Fatalf("faults %+v", faults)
	}
	detected, _ := rec.MarkAt(ledger.Detected)
	errMs := detected - faults[0].StartedAt
	interval := spec.Detection.Interval.D().Milliseconds()
	if errMs < 0 || errMs > interval {
		t.Fatalf("detected %dms after the true failure time; want within one probe interval (%dms)", errMs, interval)
	}
	t.Logf("detection error %dms, mitigation latency %vms", errMs, *rec.MitigationLatencyMs)
}

func TestDrillGuardrailTripRestores(t *testing.T) {
	env := harness.Start(t, false)
	spec := harness.DrillSpec(t, env, "region-failover")
	// Nobody mitigates (gameday, no acks): half the traffic fails until the
	// guardrail stops the drill.
	spec.Guardrails.Checks[0].Max = harness.Ptr(0.2)
	spec.Guardrails.Checks[0].For = time.Second
	rec := harness.RunDrill(t, env, spec, drills.ModeGameday)
	if rec.Outcome != ledger.OutcomeAborted || !strings.Contains(rec.Reason, "guardrail total-outage tripped") {
		t.Fatalf("outcome %s: %s", rec.Outcome, rec.Reason)
	}
	harness.AssertRestored(t, env, rec)
}

func TestDrillSurvivesWorkerKill(t *testing.T) {
	env := harness.Start(t, true)
	w := harness.StartWorker(t, env)
	spec := harness.DrillSpec(t, env, "region-failover")
	spec.Recovery.HoldFor = 5 * 1e9
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run, err := cli.StartDrill(ctx, env.Client, workflows.DrillInput{Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	harness.WaitPhase(t, env.Client, run.GetID(), "recover")
	w.Kill()
	harness.StartWorker(t, env)
	var rec ledger.Record
	if err := run.Get(ctx, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Outcome != ledger.OutcomeRecovered {
		t.Fatalf("outcome %s: %s", rec.Outcome, rec.Reason)
	}
	harness.AssertRestored(t, env, rec)
}

func TestRollbackDrill(t *testing.T) {
	env := harness.Start(t, false)
	spec, err := drills.Load("rollback-drill", env.Registry)
	if err != nil {
		t.Fatal(err)
	}
	rec := harness.RunDrill(t, env, *spec, "")
	if rec.Outcome != ledger.OutcomeRecovered || !rec.Restored {
		t.Fatalf("outcome %s restored %v: %s %+v", rec.Outcome, rec.Restored, rec.Reason, rec.Findings)
	}
	if rec.TimeToRollbackMs == nil || *rec.TimeToRollbackMs > (2*time.Minute).Milliseconds() {
		t.Fatalf("time to rollback %v: want measured and within the 2-minute rule", rec.TimeToRollbackMs)
	}
	if err := ledger.Monotonic(rec.Marks); err != nil {
		t.Fatal(err)
	}
	st := harness.State(t, env)
	if st.Stable != "v1" || harness.Contains(st.Running, "v9") || st.VersionWeights["v1"] != 100 || len(st.Faults) != 0 {
		t.Fatalf("after the drill: stable %s running %v weights %v faults %v", st.Stable, st.Running, st.VersionWeights, st.Faults)
	}
}

func TestDependencyOutageDrill(t *testing.T) {
	env := harness.Start(t, false)
	spec, err := drills.Load("dependency-outage", env.Registry)
	if err != nil {
		t.Fatal(err)
	}
	rec := harness.RunDrill(t, env, *spec, "")
	if rec.Outcome != ledger.OutcomeRecovered || !rec.Restored {
		t.Fatalf("outcome %s restored %v: %s", rec.Outcome, rec.Restored, rec.Reason)
	}
	st := harness.State(t, env)
	if len(st.Faults) != 0 || len(st.Shed) != 0 {
		t.Fatalf("after restore: faults %v shed %v", st.Faults, st.Shed)
	}
}
