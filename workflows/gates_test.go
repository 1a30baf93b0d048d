package workflows

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/testsuite"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/audit"
	"github.com/drillship/drillship/deploys"
	"github.com/drillship/drillship/drills"
	"github.com/drillship/drillship/ledger"
	"github.com/drillship/drillship/policy"
	"github.com/drillship/drillship/specfile"
)

// policyStart is the workflow clock's start in the policy tests: a
// Wednesday, 10:00 UTC.
var policyStart = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// sli answers the SLI's error ratio: budget over the SLO window (720h),
// burn for the burn-rate windows (of the canary when Version is set).
type sli struct {
	budget float64
	burn   func(version string) float64
}

func mockSLI(env *testsuite.TestWorkflowEnvironment, s sli) {
	var a *activities.Activities
	env.OnActivity(a.ErrorRatios, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.RatiosInput) ([]activities.RatioReading, error) {
		var out []activities.RatioReading
		for _, w := range in.Windows {
			v := s.budget
			if w != 720*time.Hour {
				v = 0
				if s.burn != nil {
					v = s.burn(in.Version)
				}
			}
			out = append(out, activities.RatioReading{Window: w, Value: v, At: 2_000_000})
		}
		return out, nil
	})
}

func parsePolicy(t *testing.T, text string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse("policy.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	p.Audit.File = filepath.Join(t.TempDir(), "audit.jsonl")
	return p
}

const budgetPolicy = `errorBudget:
  slo: {target: 0.999, window: 720h, signals: {provider: local}, sli: {errorRatio: {metric: error_rate}}}
  thresholds:
    - {below: 0.5, allow: hotfix}
    - {below: 0, allow: none}
  burnRate:
    - {name: page, factor: 14.4, long: 1m, short: 10s}
  checkEvery: 1s
`

func policyEnv(t *testing.T) (*testsuite.TestWorkflowEnvironment, *world) {
	env, w := newEnv(t), newWorld()
	env.SetStartTime(policyStart)
	return env, w
}

func runWith(t *testing.T, env *testsuite.TestWorkflowEnvironment, in DeployInput) DeployResult {
	t.Helper()
	env.ExecuteWorkflow(Deploy, in)
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	var res DeployResult
	if err := env.GetWorkflowError(); err != nil {
		if !RecordOf(err, &res) {
			t.Fatalf("workflow error without a record: %v", err)
		}
		return res
	}
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	return res
}

// auditActions reads the audit log, checks its chain, and lists its actions.
func auditActions(t *testing.T, p *policy.Policy) []string {
	t.Helper()
	rep, err := audit.Verify(p.Audit.File)
	if err != nil || !rep.OK() {
		t.Fatalf("audit log: %+v %v", rep, err)
	}
	data, _ := os.ReadFile(p.Audit.File)
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var r audit.Record
		_ = json.Unmarshal([]byte(l), &r)
		out = append(out, r.Action+":"+r.Rule)
	}
	return out
}

func hasAction(list []string, prefix string) bool {
	for _, a := range list {
		if strings.HasPrefix(a, prefix) {
			return true
		}
	}
	return false
}

// longSpec: 10% watched for 90s, 50% watched for 90s, a 10s bake.
func longSpec() deploys.Spec {
	s := testSpec("rollback",
		deploys.Step{Weight: 10, Pause: specfile.Duration(90 * time.Second)},
		deploys.Step{Weight: 50, Pause: specfile.Duration(90 * time.Second)})
	s.Bake = specfile.Duration(10 * time.Second)
	return s
}

const midFreeze = `freezes:
  - name: change-window
    blocks: non-hotfix
    dates: {from: "2026-11-25T10:01", to: "2026-11-25T10:31"}
`

// TestPolicyFreezeBeginsMidDeploy: a freeze that begins during the first
// window holds the canary at 10% (watched) until it ends, then the deploy
// goes on and is promoted.
func TestPolicyFreezeBeginsMidDeploy(t *testing.T) {
	env, w := policyEnv(t)
	w.deployDelay, w.windowDelay = 2*time.Second, 90*time.Second
	w.mockDeploy(env)
	p := parsePolicy(t, midFreeze)
	var phase string
	env.RegisterDelayedCallback(func() {
		v, _ := env.QueryWorkflow(QueryState)
		var st DeployState
		_ = v.Get(&st)
		phase = st.Phase + " " + activities.FormatWeights(st.Weights) + " " + st.Waiting
	}, 10*time.Minute)
	res := runWith(t, env, DeployInput{Spec: longSpec(), Version: "v2", Policy: p})
	if res.Outcome != OutcomePromoted {
		t.Fatalf("outcome %s (%s)", res.Outcome, res.Reason)
	}
	if !strings.HasPrefix(phase, "frozen") || !strings.Contains(phase, "v2=10") || !strings.Contains(phase, "freeze change-window until 2026-11-25T10:31:00Z") {
		t.Fatalf("at 10:10 the deploy is %q, want frozen at 10%% until 10:31", phase)
	}
	end := time.Date(2026, 11, 25, 10, 31, 0, 0, time.UTC).UnixMilli()
	held, shiftedAfter := false, false
	for _, s := range res.Steps {
		if s.Kind == WatchHeld && s.Weight == 10 {
			held = true
		}
		if s.Kind == WatchWindow && s.Weight == 50 && s.StartedAt >= end {
			shiftedAfter = true
		}
	}
	if !held || !shiftedAfter {
		t.Fatalf("held at 10%% %v, 50%% only after the freeze %v: %+v", held, shiftedAfter, res.Steps)
	}
	wantWeights(t, w, 0, 100)
}

// TestPolicyFreezeApproveOverrides: a person approving while frozen
// proceeds at once; the override names the rule, in the record and the
// audit log.
func TestPolicyFreezeApproveOverrides(t *testing.T) {
	env, w := policyEnv(t)
	w.deployDelay, w.windowDelay = 2*time.Second, 90*time.Second
	w.mockDeploy(env)
	p := parsePolicy(t, midFreeze)
	var rejected error
	env.RegisterDelayedCallback(func() { update(env, UpdateApprove, Command{Who: "ann", Reason: "release manager says go"}, &rejected) }, 5*time.Minute)
	res := runWith(t, env, DeployInput{Spec: longSpec(), Version: "v2", Policy: p})
	if rejected != nil {
		t.Fatal(rejected)
	}
	if res.Outcome != OutcomePromoted {
		t.Fatalf("outcome %s (%s)", res.Outcome, res.Reason)
	}
	if res.EndedAt-res.StartedAt > (10 * time.Minute).Milliseconds() {
		t.Fatalf("took %dms: the approval did not end the hold", res.EndedAt-res.StartedAt)
	}
	acts := auditActions(t, p)
	if !hasAction(acts, "approve:") || !hasAction(acts, "override:freeze change-window") {
		t.Fatalf("audit log %v: want the approval and the override of freeze change-window", acts)
	}
}

// TestPolicyHotfixPassesFreeze: a freeze of non-hotfix deploys refuses a
// deploy at its start (nothing changed; the rule, until when, how) and
// lets a hotfix through, recorded as one.
func TestPolicyHotfixPassesFreeze(t *testing.T) {
	text := `freezes:
  - name: holidays
    blocks: non-hotfix
    dates: {from: "2026-11-24", to: "2026-11-26"}
`
	t.Run("refused", func(t *testing.T) {
		env, w := policyEnv(t)
		w.mockDeploy(env)
		res := runWith(t, env, DeployInput{Spec: testSpec("rollback"), Version: "v2", Policy: parsePolicy(t, text)})
		if res.Outcome != OutcomeRefused {
			t.Fatalf("outcome %s (%s), want refused", res.Outcome, res.Reason)
		}
		for _, want := range []string{"freeze holidays", "until 2026-11-27T00:00:00Z", "--hotfix"} {
			if !strings.Contains(res.Reason, want) {
				t.Errorf("reason %q does not say %q", res.Reason, want)
			}
		}
		if w.called("deploy") != 0 || w.called("weights") != 0 || w.called("lease") != 0 {
			t.Fatal("a refused deploy changed something")
		}
	})
	t.Run("hotfix", func(t *testing.T) {
		env, w := policyEnv(t)
		w.mockDeploy(env)
		p := parsePolicy(t, text)
		res := runWith(t, env, DeployInput{Spec: testSpec("rollback"), Version: "v2", Policy: p, Hotfix: true, RequestedBy: "ann", Reason: "fix checkout"})
		if res.Outcome != OutcomePromoted || !res.Hotfix {
			t.Fatalf("outcome %s hotfix %v (%s)", res.Outcome, res.Hotfix, res.Reason)
		}
		if len(res.Audit) == 0 || res.Audit[0].Action != "hotfix" || !strings.Contains(res.Audit[0].Rule, "freeze holidays") {
			t.Fatalf("record %+v: want the hotfix and the freeze it passed", res.Audit)
		}
		if acts := auditActions(t, p); !hasAction(acts, "hotfix:[freeze holidays]") {
			t.Fatalf("audit log %v", acts)
		}
		wantWeights(t, w, 0, 100)
	})
}

// TestPolicyBudgetThresholds: below each threshold a start is refused
// (a hotfix passes "hotfix" but not "none"); above them it deploys.
func TestPolicyBudgetThresholds(t *testing.T) {
	for _, c := range []struct {
		name   string
		ratio  float64 // over the SLO window; the budget is 0.001
		hotfix bool
		want   string
		rule   string
	}{
		{"80% left", 0.0002, false, OutcomePromoted, ""},
		{"40% left", 0.0006, false, OutcomeRefused, "error budget below 50%"},
		{"40% left, hotfix", 0.0006, true, OutcomePromoted, ""},
		{"overspent", 0.0012, false, OutcomeRefused, "error budget below 0%"},
		{"overspent, hotfix", 0.0012, true, OutcomeRefused, "error budget below 0%"},
	} {
		t.Run(c.name, func(t *testing.T) {
			env, w := policyEnv(t)
			w.mockDeploy(env)
			mockSLI(env, sli{budget: c.ratio})
			res := runWith(t, env, DeployInput{Spec: testSpec("rollback"), Version: "v2", Policy: parsePolicy(t, budgetPolicy), Hotfix: c.hotfix})
			if res.Outcome != c.want || !strings.Contains(res.Reason, c.rule) {
				t.Fatalf("outcome %s (%s), want %s by %q", res.Outcome, res.Reason, c.want, c.rule)
			}
			if c.want == OutcomeRefused && (w.called("deploy") != 0 || w.called("weights") != 0) {
				t.Fatal("a refused deploy changed something")
			}
		})
	}
}

// TestPolicyFastBurnRollsBackCanary: the canary's own analysis passes
// (its error rate is under its absolute 5%), but it burns the budget at
// 20x over both windows: it is rolled back during its first window, once
// it has taken traffic for the gate's short window (10s), the reason
// naming the burn rates.
func TestPolicyFastBurnRollsBackCanary(t *testing.T) {
	env, w := policyEnv(t)
	w.windowDelay = 30 * time.Second
	w.mockDeploy(env)
	mockSLI(env, sli{budget: 0, burn: func(version string) float64 {
		if version == "v2" {
			return 0.02 // 2% errors: under the canary's 5% threshold, 20x the budget's rate
		}
		return 0
	}})
	res := runWith(t, env, DeployInput{Spec: testSpec("rollback"), Version: "v2", Policy: parsePolicy(t, budgetPolicy)})
	if res.Outcome != OutcomeRolledBack {
		t.Fatalf("outcome %s (%s), want rolled_back", res.Outcome, res.Reason)
	}
	for _, want := range []string{"burn rate page", "20x over the long window", "20x over the short one"} {
		if !strings.Contains(res.Reason, want) {
			t.Errorf("reason %q does not say %q", res.Reason, want)
		}
	}
	if s := res.Steps[0]; s.Verdict != VerdictInterrupted || s.Weight != 10 || s.EndedAt-s.StartedAt < 10_000 || s.EndedAt-s.StartedAt > 15_000 {
		t.Errorf("first window %+v: want it cut short at 10%% by the gate, 10 to 15s in", s)
	}
	wantWeights(t, w, 100, 0)
	if w.stable != "v1" || w.called("promote") != 0 || w.stoppedServing != 0 {
		t.Fatalf("stable %s promote %d stoppedServing %d", w.stable, w.called("promote"), w.stoppedServing)
	}
}

// TestPolicyBreakGlassNeedsOpenIncident: break-glass is refused for a
// person the policy does not name and for an incident that is not open
// (asked of a real HTTP incident provider), then goes through with an open
// one; every attempt is in the audit log.
func TestPolicyBreakGlassNeedsOpenIncident(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/incidents/INC-1":
			_, _ = rw.Write([]byte(`{"incident": {"state": "triggered"}}`))
		case "/incidents/INC-2":
			_, _ = rw.Write([]byte(`{"incident": {"state": "resolved"}}`))
		default:
			http.NotFound(rw, r)
		}
	}))
	defer srv.Close()
	p := parsePolicy(t, `breakGlass:
  who: [ann]
  requireIncident: true
  incidents: {provider: http, url: "`+srv.URL+`/incidents/{{id}}", field: incident.state, open: [triggered, acknowledged]}
`)
	env, w := policyEnv(t)
	w.windowDelay = 10 * time.Second
	w.mockDeploy(env)
	var errs []string
	send := func(c Command) {
		env.UpdateWorkflow(UpdateBreakGlass, "bg-"+c.Who+c.Incident, &testsuite.TestUpdateCallback{
			OnAccept: func() {},
			OnReject: func(err error) { errs = append(errs, "rejected: "+err.Error()) },
			OnComplete: func(_ any, err error) {
				if err != nil {
					errs = append(errs, "refused: "+err.Error())
				}
			},
		}, c)
	}
	env.RegisterDelayedCallback(func() { send(Command{Who: "eve", Reason: "sev1", Incident: "INC-1"}) }, 3*time.Second)
	env.RegisterDelayedCallback(func() { send(Command{Who: "ann", Reason: "sev1", Incident: "INC-2"}) }, 4*time.Second)
	env.RegisterDelayedCallback(func() { send(Command{Who: "ann", Reason: "sev1 fix cannot wait", Incident: "INC-1"}) }, 5*time.Second)
	res := runWith(t, env, DeployInput{Spec: testSpec("rollback"), Version: "v2", Policy: p})
	if res.Outcome != OutcomePromoted || !strings.Contains(res.Reason, "break-glass by ann") {
		t.Fatalf("outcome %s (%s), want promoted by break-glass", res.Outcome, res.Reason)
	}
	if len(errs) != 2 || !strings.Contains(errs[0], "eve may not break glass") || !strings.Contains(errs[1], "INC-2 is not open (resolved)") {
		t.Fatalf("refusals %q", errs)
	}
	acts := auditActions(t, p)
	refused := 0
	for _, a := range acts {
		if strings.HasPrefix(a, "break-glass-refused") {
			refused++
		}
	}
	if refused != 2 || !hasAction(acts, "break-glass:") {
		t.Fatalf("audit log %v", acts)
	}
}

// TestPolicyDrillFreeze: a drill during a freeze that blocks drills is
// refused with the freeze named and nothing injected; outside it, it runs.
func TestPolicyDrillFreeze(t *testing.T) {
	p := parsePolicy(t, `freezes:
  - name: peak
    blocks: drills
    dates: {from: "2026-11-25T09:00", to: "2026-11-25T12:00"}
`)
	env, w := newEnv(t), newDrillWorld()
	env.SetStartTime(policyStart)
	w.mock(env)
	env.ExecuteWorkflow(Drill, DrillInput{Spec: drillSpec(drills.ModeAutomated), Policy: p})
	rec := endedDrill(t, env, drills.Spec{}, ErrRefused)
	if rec.Outcome != ledger.OutcomeRefused || !strings.Contains(rec.Reason, "freeze peak") || !strings.Contains(rec.Reason, "until 2026-11-25T12:00:00Z") {
		t.Fatalf("outcome %s reason %q", rec.Outcome, rec.Reason)
	}
	if w.called("inject") != 0 || !rec.Restored {
		t.Fatalf("inject called %d times, restored %v", w.called("inject"), rec.Restored)
	}

	env, w = newEnv(t), newDrillWorld()
	env.SetStartTime(policyStart.Add(3 * time.Hour))
	w.mock(env)
	env.ExecuteWorkflow(Drill, DrillInput{Spec: drillSpec(drills.ModeAutomated), Policy: p})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("after the freeze: %v", err)
	}
}

// TestPolicyFreezeAbortRollsBack: an abort while frozen rolls back.
func TestPolicyFreezeAbortRollsBack(t *testing.T) {
	env, w := policyEnv(t)
	w.deployDelay, w.windowDelay = 2*time.Second, 90*time.Second
	w.mockDeploy(env)
	var rejected error
	env.RegisterDelayedCallback(func() { update(env, UpdateAbort, Command{Who: "bob", Reason: "not today"}, &rejected) }, 5*time.Minute)
	res := runWith(t, env, DeployInput{Spec: longSpec(), Version: "v2", Policy: parsePolicy(t, midFreeze)})
	if rejected != nil {
		t.Fatal(rejected)
	}
	if res.Outcome != OutcomeAborted {
		t.Fatalf("outcome %s (%s), want aborted", res.Outcome, res.Reason)
	}
	wantWeights(t, w, 100, 0)
	if w.called("stop:v2") != 1 || w.stoppedServing != 0 {
		t.Fatalf("canary stopped %d times, %d while serving", w.called("stop:v2"), w.stoppedServing)
	}
}

// TestPolicyBreakGlassAtStart: a start refused by a freeze that blocks
// everything goes ahead with --reason and --incident when the incident is
// open (recorded as break-glass-start naming the rule), and stays refused
// when it is not.
func TestPolicyBreakGlassAtStart(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		state := map[string]string{"/i/INC-1": "open", "/i/INC-2": "closed"}[r.URL.Path]
		_, _ = rw.Write([]byte(`{"status": "` + state + `"}`))
	}))
	defer srv.Close()
	text := `freezes:
  - {name: peak, blocks: all, dates: {from: "2026-11-25", to: "2026-11-25"}}
breakGlass:
  requireIncident: true
  incidents: {provider: http, url: "` + srv.URL + `/i/{{id}}"}
`
	for _, c := range []struct{ incident, want, says string }{
		{"INC-1", OutcomePromoted, ""},
		{"INC-2", OutcomeRefused, "incident INC-2 is not open (closed)"},
		{"", OutcomeRefused, "freeze peak"},
	} {
		t.Run(c.incident, func(t *testing.T) {
			env, w := policyEnv(t)
			w.mockDeploy(env)
			p := parsePolicy(t, text)
			res := runWith(t, env, DeployInput{Spec: testSpec("rollback"), Version: "v2", Policy: p, RequestedBy: "ann", Reason: "sev1 fix", Incident: c.incident})
			if res.Outcome != c.want || !strings.Contains(res.Reason, c.says) {
				t.Fatalf("outcome %s (%s), want %s saying %q", res.Outcome, res.Reason, c.want, c.says)
			}
			if c.want == OutcomePromoted {
				if acts := auditActions(t, p); !hasAction(acts, "break-glass-start:freeze peak") {
					t.Fatalf("audit log %v", acts)
				}
				// Breaking glass overrides the freeze for the whole deploy:
				// its shifts are not held until the freeze ends.
				if res.DurationMs > time.Hour.Milliseconds() {
					t.Fatalf("the deploy took %s of workflow time: its shifts were held by the freeze it broke glass past", time.Duration(res.DurationMs)*time.Millisecond)
				}
			}
		})
	}
}
