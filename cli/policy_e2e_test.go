package cli_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	sdklog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/drillship/drillship/audit"
	"github.com/drillship/drillship/devenv"
	"github.com/drillship/drillship/localenv"
	"github.com/drillship/drillship/workflows"
)

// burnSpec is web-canary with a lenient absolute threshold (20% errors)
// and no comparison with stable below 20%: the canary's own analysis
// passes a canary with 3% errors; only the policy's burn-rate gate can
// stop it.
const burnSpec = `service: web
environment: local
traffic: {provider: local, config: {level: version}}
release: {provider: local}
analysis:
  provider: local
  interval: 1s
  failureLimit: 1
  minRequests: 5
  metrics:
    - {name: error-rate, metric: error_rate, window: 3s, max: 0.2, maxVsBaseline: 2, ignoreBelow: 0.2}
steps:
  - {weight: 20, pause: 40s}
  - {weight: 50, pause: 10s}
onFailure: rollback
bake: 3s
`

// End to end on the local environment: a canary answering 3% errors to
// real requests is under its own 20% threshold, but burns a 99.5% SLO's
// budget at about 6x over 30s and 10s: the burn-rate gate rolls it back
// while its first window runs, traffic goes back to stable, and the
// rollback's reason gives the rates. The deploy is tied to the policy
// through --policy; a hotfix flag is recorded in the audit log.
func TestPolicyBurnRateTripsOnRealTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a deploy on the embedded server and the local environment")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	env, err := devenv.Start(ctx, devenv.Options{Local: localenv.Options{RPS: 100}})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	log := writeFile(t, "audit.jsonl", "")
	pol := writeFile(t, "policy.yaml", `errorBudget:
  slo:
    target: 0.995
    window: 1h
    signals: {provider: local}
    sli: {errorRatio: {metric: error_rate}}
  burnRate:
    - {name: fast, factor: 2, long: 30s, short: 10s}
  checkEvery: 1s
audit: {file: `+log+`}
`)
	spec := writeFile(t, "burn.yaml", burnSpec)
	addr := []string{"--address", env.Stack.Address(), "--local-env", env.LocalURL()}
	if code, out, stderr := runCLI(append([]string{"env", "fault", "add", "bad_version", "--version", "v2", "--rate", "0.03"}, addr[2:]...)...); code != 0 {
		t.Fatalf("fault: exit %d %s %s", code, out, stderr)
	}
	start := time.Now()
	code, out, stderr := runCLI(append([]string{"deploy", "start", spec, "--version", "v2", "--wait", "--output", "json",
		"--policy", pol, "--hotfix", "--reason", "e2e"}, addr...)...)
	took := time.Since(start)
	if code != 3 {
		t.Fatalf("deploy: exit %d, want 3 (rolled back)\n%s\n%s", code, out, stderr)
	}
	var res workflows.DeployResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if res.Outcome != workflows.OutcomeRolledBack || !strings.Contains(res.Reason, "burn rate fast") || !strings.Contains(res.Reason, "x over the long window") {
		t.Fatalf("outcome %s (%s), want rolled back by the burn-rate gate", res.Outcome, res.Reason)
	}
	if res.FinalWeights["v1"] != 100 || res.FinalWeights["v2"] != 0 {
		t.Fatalf("final weights %v", res.FinalWeights)
	}
	for _, s := range res.Steps {
		if s.Verdict == workflows.VerdictFail {
			t.Fatalf("the canary's own analysis failed (%+v): the gate was not what stopped it", s)
		}
	}
	st := envState(t, env.Local)
	if st.VersionWeights["v2"] != 0 {
		t.Fatalf("environment weights %v after the rollback", st.VersionWeights)
	}
	rep, err := audit.Verify(log)
	data, _ := os.ReadFile(log)
	if err != nil || !rep.OK() || !strings.Contains(string(data), `"action":"hotfix"`) {
		t.Fatalf("audit log %+v %v:\n%s", rep, err, data)
	}
	// The gated run (side effects, timers of the burn-rate watch, audit
	// activities) replays against the code that ran it.
	h := &historypb.History{}
	it := env.Client.GetWorkflowHistory(ctx, workflows.DeployID("web", "v2"), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		h.Events = append(h.Events, ev)
	}
	r := sdkworker.NewWorkflowReplayer()
	r.RegisterWorkflowWithOptions(workflows.Deploy, workflow.RegisterOptions{Name: "Deploy"})
	if err := r.ReplayWorkflowHistory(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)), h); err != nil {
		t.Fatalf("replaying the gated deploy (%d events): %v", len(h.Events), err)
	}
	t.Logf("rolled back after %s: %s (time to rollback %v ms)", took.Round(time.Millisecond), res.Reason, deref(res.TimeToRollbackMs))
}

func deref(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}
