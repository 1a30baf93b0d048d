// Package deploy holds the end-to-end tests of deploys: the embedded
// Temporal server, the local environment with real traffic, and worker
// processes killed with SIGKILL.
package deploy

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/drillship/drillship/cli"
	"github.com/drillship/drillship/test/harness"
	"github.com/drillship/drillship/workflows"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

func TestGoodDeployPromotes(t *testing.T) {
	env := harness.Start(t, false)
	res := harness.RunDeploy(t, env, harness.DeploySpec(t, env), "v2")
	if res.Outcome != workflows.OutcomePromoted {
		t.Fatalf("outcome %s: %s", res.Outcome, res.Reason)
	}
	st := harness.State(t, env)
	if st.VersionWeights["v2"] != 100 || st.VersionWeights["v1"] != 0 || st.Stable != "v2" {
		t.Fatalf("local environment after promotion: weights %v stable %s, want v2=100 stable v2", st.VersionWeights, st.Stable)
	}
	if harness.Contains(st.Running, "v1") {
		t.Fatalf("running %v: the old version must be stopped after promotion", st.Running)
	}
}

func TestBadDeployRollsBack(t *testing.T) {
	env := harness.Start(t, false)
	harness.BadVersion(t, env, "v2", "0.1")
	res := harness.RunDeploy(t, env, harness.DeploySpec(t, env), "v2")
	if res.Outcome != workflows.OutcomeRolledBack {
		t.Fatalf("outcome %s: %s", res.Outcome, res.Reason)
	}
	st := harness.State(t, env)
	if st.VersionWeights["v1"] != 100 || st.VersionWeights["v2"] != 0 || st.Stable != "v1" || harness.Contains(st.Running, "v2") {
		t.Fatalf("after rollback: weights %v stable %s running %v, want v1=100, v2 stopped", st.VersionWeights, st.Stable, st.Running)
	}
	if res.TimeToRollbackMs == nil || *res.TimeToRollbackMs < 0 || *res.TimeToRollbackMs > 5000 {
		t.Fatalf("time to rollback %v", res.TimeToRollbackMs)
	}
}

func TestDeploySurvivesWorkerKill(t *testing.T) {
	env := harness.Start(t, true)
	w := harness.StartWorker(t, env)
	spec := harness.DeploySpec(t, env)
	// This test is about the kill; the process restart on a loaded 2-core
	// machine can push p99 latency past the shipped 0.5s, which would roll
	// back (rightly) for a reason this test is not about.
	for i := range spec.Analysis.Metrics {
		if spec.Analysis.Metrics[i].Metric == "latency_p99" {
			spec.Analysis.Metrics[i].Max = harness.Ptr(5)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run, err := cli.StartDeploy(ctx, env.Client, workflows.DeployInput{Spec: spec, Version: "v2"})
	if err != nil {
		t.Fatal(err)
	}
	harness.WaitPhase(t, env.Client, run.GetID(), "watching")
	time.Sleep(time.Second) // in the middle of the watch window
	w.Kill()
	if st := harness.State(t, env); st.VersionWeights["v2"] != 10 {
		t.Fatalf("at the kill the canary had %d%%, want 10", st.VersionWeights["v2"])
	}
	harness.StartWorker(t, env)
	var res workflows.DeployResult
	if err := run.Get(ctx, &res); err != nil {
		t.Fatal(err)
	}
	st := harness.State(t, env)
	if res.Outcome != workflows.OutcomePromoted || st.VersionWeights["v2"] != 100 || st.Stable != "v2" {
		t.Fatalf("after the kill: outcome %s (%s) weights %v stable %s", res.Outcome, res.Reason, st.VersionWeights, st.Stable)
	}
}
