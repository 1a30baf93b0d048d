package deploy

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/drillship/drillship/cli"
	"github.com/drillship/drillship/devenv"
	"github.com/drillship/drillship/localenv"
	"github.com/drillship/drillship/specfile"
	"github.com/drillship/drillship/test/harness"
	"github.com/drillship/drillship/workflows"
)

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestDeploySurvivesServerRestart stops the Temporal server in the middle
// of a deploy's watch window and starts it again on the same SQLite file and
// port; the deploy must carry on and promote. The local environment runs on
// its own (devenv is started without one) so that it outlives the server,
// as a real cloud outlives a Temporal outage.
func TestDeploySurvivesServerRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	local, err := localenv.Start(ctx, localenv.Options{RPS: 100})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { local.Close() })
	opts := devenv.Options{DBFile: filepath.Join(t.TempDir(), "temporal.db"), Port: freePort(t), NoLocal: true, NoWorker: true}
	env1, err := devenv.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env1.Close() })
	w := harness.StartWorkerAt(t, env1, local.URL())

	spec := harness.DeploySpec(t, env1)
	spec.Steps = spec.Steps[:1]
	spec.Steps[0].Pause = specfile.Duration(12 * time.Second) // the window the restart falls into
	spec.Bake = specfile.Duration(2 * time.Second)
	for i := range spec.Analysis.Metrics {
		if spec.Analysis.Metrics[i].Metric == "latency_p99" {
			spec.Analysis.Metrics[i].Max = harness.Ptr(5) // a restart on a busy machine is not what is judged
		}
	}
	run, err := cli.StartDeploy(ctx, env1.Client, workflows.DeployInput{Spec: spec, Version: "v2", RequestedBy: "restart-test"})
	if err != nil {
		t.Fatal(err)
	}
	harness.WaitPhase(t, env1.Client, run.GetID(), "watching")
	time.Sleep(3 * time.Second)
	var before workflows.DeployState
	v, err := env1.Client.QueryWorkflow(ctx, run.GetID(), "", workflows.QueryState)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Get(&before); err != nil {
		t.Fatal(err)
	}

	stoppedAt := time.Now()
	if err := env1.Stack.Stop(); err != nil {
		t.Fatal(err)
	}
	if st := harness.StateAt(t, local.URL()); st.VersionWeights["v2"] != 10 {
		t.Fatalf("with the server down the canary has %d%%, want 10", st.VersionWeights["v2"])
	}
	if before.WindowEndsAt <= stoppedAt.UnixMilli() {
		t.Fatalf("the server stopped at %d, after the window ended (%d): not a mid-window restart", stoppedAt.UnixMilli(), before.WindowEndsAt)
	}
	w.Kill() // the worker goes with the machine
	time.Sleep(time.Second)

	env2, err := devenv.Start(ctx, opts)
	if err != nil {
		t.Fatalf("restart on %s port %d: %v", opts.DBFile, opts.Port, err)
	}
	t.Cleanup(func() { env2.Close() })
	down := time.Since(stoppedAt)
	harness.StartWorkerAt(t, env2, local.URL())

	var res workflows.DeployResult
	if err := env2.Client.GetWorkflow(ctx, run.GetID(), run.GetRunID()).Get(ctx, &res); err != nil {
		t.Fatal(err)
	}
	st := harness.StateAt(t, local.URL())
	if res.Outcome != workflows.OutcomePromoted || st.VersionWeights["v2"] != 100 || st.VersionWeights["v1"] != 0 || st.Stable != "v2" || harness.Contains(st.Running, "v1") {
		t.Fatalf("after the restart: outcome %s (%s), weights %v, stable %s, running %v; want promoted, v2=100 v1=0, stable v2, v1 stopped",
			res.Outcome, res.Reason, st.VersionWeights, st.Stable, st.Running)
	}
	if len(res.Steps) != 2 || res.Steps[0].Weight != 10 || res.Steps[0].Verdict != "pass" || res.Steps[0].Samples < 5 {
		t.Fatalf("steps %+v: want the 10%% window passed with its samples kept across the restart, then the bake", res.Steps)
	}
	// The same run went on: its history holds the events from before the
	// stop (the first SetWeights) and it completed.
	desc, err := env2.Client.DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
	if err != nil {
		t.Fatal(err)
	}
	if s := desc.GetWorkflowExecutionInfo().GetStatus(); s != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		t.Fatalf("status %s", s)
	}
	t.Logf("server down for %s in the middle of a 12s window (%dms before its end); deploy promoted, step 1 took %d samples, total %dms",
		down.Round(100*time.Millisecond), before.WindowEndsAt-stoppedAt.UnixMilli(), res.Steps[0].Samples, res.DurationMs)
}
