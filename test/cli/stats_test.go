package cli

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/drillship/drillship/test/harness"
)

func TestDeployStatsFromVisibility(t *testing.T) {
	env := harness.Start(t, false)
	harness.RunDeploy(t, env, harness.DeploySpec(t, env), "v2")
	harness.BadVersion(t, env, "v3", "0.3")
	harness.RunDeploy(t, env, harness.DeploySpec(t, env), "v3")
	var stats struct {
		Deploys      int     `json:"deploys"`
		Promoted     int     `json:"promoted"`
		Production   int     `json:"productionDeploys"`
		Caught       int     `json:"caughtBeforePromotion"`
		ChangeFail   float64 `json:"changeFailureRate"`
		RestoreP50Ms *int64  `json:"timeToRestoreMedianMs"`
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) { // visibility is eventually consistent
		code, out, stderr := harness.RunCLI("deploy", "stats", "--output", "json", "--address", env.Stack.Address())
		if code != 0 {
			t.Fatalf("stats: %d %s", code, stderr)
		}
		if err := json.Unmarshal([]byte(out), &stats); err != nil {
			t.Fatal(err)
		}
		if stats.Deploys == 2 {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	// The bad canary was caught before promotion: not a change failure
	// (DORA counts deploys that caused a failure in production).
	if stats.Deploys != 2 || stats.Promoted != 1 || stats.Production != 1 || stats.Caught != 1 || stats.ChangeFail != 0 || stats.RestoreP50Ms != nil {
		t.Fatalf("stats %+v: want 2 deploys, 1 promoted and in production, 1 caught as a canary, change failure rate 0, no time to restore", stats)
	}
}
