package lab

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/unleash"
	"github.com/drillship/drillship/activities/unleash/unleashapi"
	"github.com/drillship/drillship/deploys"
	"github.com/drillship/drillship/drills"
	"github.com/drillship/drillship/lab"
	"github.com/drillship/drillship/ledger"
	"github.com/drillship/drillship/test/harness"
	"github.com/drillship/drillship/workflows"
)

// TestLabFlagKillSwitch runs the shipped flag-kill-switch drill on the lab
// with a real Unleash: real traffic through HAProxy, the feature's errors
// seen by the real Prometheus, the flag turned off through Unleash's admin
// API and obeyed by the service through the client API. The ledger gives
// the time from the flip to the SLO holding again; restore puts the flag
// back on.
func TestLabFlagKillSwitch(t *testing.T) {
	start := time.Now()
	l := lab.Start(t, lab.Options{Parts: lab.PartAll | lab.PartFlags, LoadRPS: 50})
	u := l.Unleash
	t.Logf("lab with unleash up in %s (unleash install %dms, 0: reused; start to healthy with its flag %dms)",
		time.Since(start).Round(time.Millisecond), u.InstallMs, u.StartMs)
	env := labStack(t, l)
	spec, err := drills.Load("../../drills/flag-kill-switch.yaml", env.Registry)
	if err != nil {
		t.Fatal(err)
	}
	// The steady state reads a 5s rate: let Prometheus scrape that much
	// real traffic first.
	time.Sleep(6 * time.Second)
	rec := harness.RunDrill(t, env, *spec, "")
	if rec.Outcome != ledger.OutcomeRecovered || !rec.Restored {
		t.Fatalf("outcome %s (%s), restored %v, findings %+v, events %+v", rec.Outcome, rec.Reason, rec.Restored, rec.Findings, rec.Events)
	}
	for _, m := range []string{ledger.Injected, ledger.Detected, ledger.Mitigated, ledger.Recovered, ledger.Restored} {
		if _, ok := rec.MarkAt(m); !ok {
			t.Fatalf("mark %s missing: %+v", m, rec.Marks)
		}
	}

	// The flip is in the ledger as the step that turned the flag off, and
	// the time from it to the SLO is an event of its own.
	var flip, sli *ledger.Event
	for i, e := range rec.Events {
		switch {
		case e.Kind == "step" && strings.HasPrefix(e.Detail, "kill switch: ") && strings.Contains(e.Detail, "on -> off"):
			flip = &rec.Events[i]
		case e.Kind == "sli" && strings.HasPrefix(e.Detail, workflows.SLOAfterStep):
			sli = &rec.Events[i]
		}
	}
	if flip == nil || sli == nil || !strings.Contains(flip.Detail, "served off by the client API") {
		t.Fatalf("events %+v: want the flip (on -> off) and the time from it to the SLO", rec.Events)
	}
	m := regexp.MustCompile(`(\d+)ms after the last mitigation step \(kill switch\) started`).FindStringSubmatch(sli.Detail)
	if m == nil {
		t.Fatalf("sli event %q", sli.Detail)
	}
	ms, _ := strconv.ParseInt(m[1], 10, 64)
	mitAt, _ := rec.MarkAt(ledger.Mitigated)
	// The SLO was observed after the flip, and no sooner than the service
	// can obey it; within the drill's 2s error-rate window plus scrapes.
	if ms <= 0 || mitAt != sli.At || sli.At-flip.At > ms+1000 || ms > 15000 {
		t.Fatalf("flip to SLO %dms (flip event at %d, SLO at %d, mitigated mark at %d): want a positive time consistent with the marks",
			ms, flip.At, sli.At, mitAt)
	}
	det, _ := rec.MarkAt(ledger.Detected)
	inj, _ := rec.MarkAt(ledger.Injected)
	t.Logf("flag kill switch: detected %dms after injection; flip to SLO holding again %dms (%s)", det-inj, ms, flip.Detail)

	// Restore: the flag is on again (as before the drill), no snapshot tag
	// is left, and the fault is out of the service.
	admin := unleashapi.NewAdmin(u.URL, u.AdminToken, 5*time.Second)
	e, err := admin.State(context.Background(), u.Project, u.Feature, u.Environment)
	if err != nil || !e.Enabled {
		t.Fatalf("after restore the flag reads enabled=%v (%v), want on as before the drill", e.Enabled, err)
	}
	if tags, err := admin.Tags(context.Background(), u.Feature); err != nil || len(tags) != 0 {
		t.Fatalf("tags after restore %+v (%v), want none", tags, err)
	}
	for _, s := range l.ServiceStatuses() {
		if s.FeatureErrorRate != 0 {
			t.Fatalf("service %s still has the feature fault (%g)", s.Version, s.FeatureErrorRate)
		}
	}
}

// flagRollout is a deploy whose traffic is an Unleash flag's gradual
// rollout: v2 is the flag's on side, judged on the requests that went
// through the feature, as the lab's real Prometheus counts them.
const flagRollout = `service: web
environment: lab
traffic: {provider: unleash, config: {lab: default, on: v2, off: v1}}
release: {provider: lab, config: {lab: default}}
analysis:
  provider: lab
  config: {lab: default}
  interval: 1s
  failureLimit: 1
  metrics:
    - name: feature-error-rate
      metric: error_rate
      window: 5s
      expr: >-
        sum(rate(drillship_lab_feature_requests_total{code=~"5.."}[{{window}}]))
        / sum(rate(drillship_lab_feature_requests_total[{{window}}]))
      max: 0.05
steps:
  - {weight: 10, pause: 6s}
  - {weight: 50, pause: 4s}
onFailure: rollback
bake: 3s
artifacts: {keep: 3}
`

// TestLabFlagRollout deploys through a real Unleash flag: the canary weight
// is the flag's rollout percentage; a failing feature rolls back by turning
// the flag off, a good one is promoted with the flag fully on. Weights are
// read back from Unleash itself.
func TestLabFlagRollout(t *testing.T) {
	l := lab.Start(t, lab.Options{Parts: lab.PartAll | lab.PartFlags, LoadRPS: 50})
	env := labStack(t, l)
	spec, err := deploys.Parse("flag-rollout.yaml", []byte(flagRollout), env.Registry)
	if err != nil {
		t.Fatal(err)
	}
	flag, err := unleash.New(map[string]any{"lab": l.StatePath(), "on": "v2", "off": "v1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	weights := func() activities.Weights {
		t.Helper()
		w, err := flag.Weights(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	// Not released yet: the flag starts off.
	if err := flag.SetWeights(ctx, activities.Weights{"v2": 0, "v1": 100}); err != nil {
		t.Fatal(err)
	}

	// The feature fails a fifth of its requests: rolled back, flag off.
	l.Service("v1").SetFeatureErrorRate(0.2)
	res := harness.RunDeploy(t, env, *spec, "v2")
	if res.Outcome != workflows.OutcomeRolledBack || !strings.Contains(res.Reason, "feature-error-rate") {
		t.Fatalf("bad feature: outcome %s (%s), want rolled back on feature-error-rate", res.Outcome, res.Reason)
	}
	if w := weights(); w["v2"] != 0 || w["v1"] != 100 {
		t.Fatalf("Unleash after rollback %v, want v2=0 (flag off)", w)
	}
	t.Logf("rollback: %s; time to rollback %vms", res.Reason, deref(res.TimeToRollbackMs))

	// Mended, and once the bad run's errors have left the 5s window: the
	// rollout goes 10, 50, 100 and the flag stays fully on.
	l.Service("v1").SetFeatureErrorRate(0)
	time.Sleep(7 * time.Second)
	res = harness.RunDeploy(t, env, *spec, "v2")
	if res.Outcome != workflows.OutcomePromoted {
		t.Fatalf("good feature: outcome %s (%s), want promoted", res.Outcome, res.Reason)
	}
	if w := weights(); w["v2"] != 100 || w["v1"] != 0 {
		t.Fatalf("Unleash after promotion %v, want v2=100 (flag on for everyone)", w)
	}
}
