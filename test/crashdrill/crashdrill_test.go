// Package crashdrill runs the region failover drill with its worker process
// SIGKILLed at every activity boundary and in the middle of the recovery
// check (see harness/crash.go for the matrix), with a fault of someone
// else's in the same environment throughout.
package crashdrill

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/drillship/drillship/devenv"
	"github.com/drillship/drillship/drills"
	"github.com/drillship/drillship/ledger"
	"github.com/drillship/drillship/localenv"
	"github.com/drillship/drillship/test/harness"
)

func TestMain(m *testing.M) {
	harness.Parallel(3)
	os.Exit(harness.Main(m))
}

// The bystander is a fault a person put in before the drill: a little
// latency in west, which none of the drill's checks judges (the drill
// injects only region_down). The drill's restore must never touch it.
const bystanderKind = "latency"

// checks are the activities that observe on the drill's behalf; a kill that
// hits one leaves time nobody checked, which the ledger must show.
var checks = []string{"Guard", "WaitFor", "Watch", "Check"}

var drillCrash = harness.CrashScenario{
	Name: "drill",
	Setup: func(t *testing.T, env *devenv.Env) {
		harness.PostJSON(t, env.LocalURL()+"/api/faults", map[string]any{"kind": bystanderKind,
			"params": map[string]string{"region": "west", "ms": "1"}}, nil)
	},
	Begin: func(t *testing.T, env *devenv.Env) client.WorkflowRun {
		spec := harness.DrillSpec(t, env, "region-failover")
		// Long enough for the mid-recover kill to find the phase by polling
		// on a loaded machine (the shipped 2s can pass between two polls).
		spec.Recovery.HoldFor = 4 * 1e9 // 4s, whichever duration type the spec uses
		// Three stacks at once on a loaded 2-core machine: the load
		// generator sees a few percent of errors, and the preflight refused
		// now and then at the shipped 2%. The matrix is about crashes; the
		// fault (a whole region down) is far above either bound.
		for i := range spec.SteadyState {
			if spec.SteadyState[i].Metric == "error_rate" {
				spec.SteadyState[i].Max = harness.Ptr(0.1)
			}
		}
		return harness.StartDrill(t, env, spec, drills.ModeAutomated, "crash-matrix")
	},
	MidPhase: "recover",
	Check: func(t *testing.T, env *devenv.Env, run client.WorkflowRun, rec *harness.Recorder, kill *harness.Kill) string {
		r, runErr := harness.DrillRecordOf(t, run, 4*time.Minute)
		if r.Outcome != ledger.OutcomeRecovered {
			t.Errorf("outcome %s (%s, %v), want recovered; findings %+v", r.Outcome, r.Reason, runErr, r.Findings)
		}
		st := harness.State(t, env)
		if st.RegionWeights["east"] != 50 || st.RegionWeights["west"] != 50 || !r.Restored {
			t.Errorf("end state: regions %v restored %v, want 50/50, restored", st.RegionWeights, r.Restored)
		}
		if st.Load.Multiplier != 1 {
			t.Errorf("load multiplier %g after the drill, want 1", st.Load.Multiplier)
		}
		var all []localenv.FaultRecord
		harness.GetJSON(t, env.LocalURL()+"/api/faults", &all)
		var drillFaults []localenv.FaultRecord
		bystander := ""
		for _, f := range all {
			switch {
			case f.Kind == bystanderKind:
				bystander = f.ID
				if !f.Active {
					t.Errorf("the drill's restore ended someone else's fault: %+v", f)
				}
			default:
				drillFaults = append(drillFaults, f)
			}
		}
		if len(drillFaults) != 1 || drillFaults[0].Kind != "region_down" || drillFaults[0].Active {
			t.Errorf("faults the drill injected %+v, want exactly one region_down, ended", drillFaults)
		}
		for _, m := range rec.Mutations() {
			if bystander != "" && (strings.Contains(m.Key, "/"+bystander+" ") || strings.Contains(m.Key, `"`+bystander+`"`)) {
				t.Errorf("the drill sent a request naming someone else's fault: %s", m.Key)
			}
		}
		calls, changed := harness.WeightChanges(t, env.Client, run.GetID())
		if calls != 2 || changed > 2 || changed < 1 {
			t.Errorf("SetWeights in history: %d completed, %d changed; want 2 and 2 (1 when a kill hit one after its change)", calls, changed)
		}
		interrupted, err := harness.Interrupted(context.Background(), env.Client, run.GetID(), checks...)
		if err != nil {
			t.Fatal(err)
		}
		// The guard is stopped right after recovery is observed: a kill
		// within a guard interval plus a heartbeat of that leaves less
		// unwatched time than the guard's own cadence, which is not a blind
		// spot (the drill records gaps over interval + 1 s).
		recAt, _ := r.MarkAt(ledger.Recovered)
		atStop := kill != nil && recAt > 0 && kill.At.UnixMilli() > recAt-2500 && !kill.Hit("WaitFor", "Watch", "Check")
		if kill != nil && kill.Hit(checks...) && interrupted && atStop {
			t.Logf("the kill came %dms before recovery was observed (the guard's stop): no blind spot is required", recAt-kill.At.UnixMilli())
		}
		if kill != nil && kill.Hit(checks...) && interrupted && !atStop {
			n, ms := blindSpots(t, r)
			if n == 0 || ms <= 0 {
				var guard []string
				for _, e := range r.Events {
					if e.Kind == "guardrail" || e.Kind == "blind" || e.Kind == "phase" {
						guard = append(guard, fmt.Sprintf("%d %s %s", e.At-kill.At.UnixMilli(), e.Kind, e.Detail))
					}
				}
				t.Errorf("the kill hit %v, yet the ledger records no blind time (blind spots %d, %dms); events (ms after the kill): %v", kill.Running, n, ms, guard)
			}
		}
		return r.Outcome
	},
}

// blindSpots reads the record's blind spots through JSON, so that records
// of code without them read as none.
func blindSpots(t *testing.T, rec ledger.Record) (n int, ms int64) {
	b, _ := json.Marshal(rec)
	var v struct {
		BlindSpots []struct{ From, To int64 } `json:"blindSpots"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	for _, s := range v.BlindSpots {
		ms += s.To - s.From
	}
	return len(v.BlindSpots), ms
}

func TestCrashMatrixDrill(t *testing.T) {
	if testing.Short() {
		t.Skip("crash matrix: minutes of real runs")
	}
	harness.CrashMatrix(t, drillCrash)
}
