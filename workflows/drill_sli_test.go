package workflows

import (
	"strings"
	"testing"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/drills"
	"github.com/drillship/drillship/ledger"
)

// The ledger gives the time from the last mitigation step to the SLO
// holding again (a flag flip's effect, for a kill switch), at the
// Mitigated mark.
func TestDrillRecordsTimeFromLastStepToSLO(t *testing.T) {
	env, w := newEnv(t), newDrillWorld()
	w.mock(env)
	spec := drillSpec(drills.ModeAutomated)
	spec.Mitigation.Steps = []drills.Step{{Name: "kill switch", Action: &activities.Action{Name: "flag_off", Params: map[string]string{"feature": "recs"}}}}
	rec := runDrill(t, env, spec)
	if rec.Outcome != ledger.OutcomeRecovered {
		t.Fatalf("outcome %s (%s)", rec.Outcome, rec.Reason)
	}
	mit, _ := rec.MarkAt(ledger.Mitigated)
	for _, e := range rec.Events {
		if e.Kind == "sli" && strings.HasPrefix(e.Detail, SLOAfterStep) {
			if e.At != mit || !strings.Contains(e.Detail, "(kill switch)") {
				t.Fatalf("event %+v: want it at the Mitigated mark (%d), naming the step", e, mit)
			}
			return
		}
	}
	t.Fatalf("no %q event in %+v", SLOAfterStep, rec.Events)
}
