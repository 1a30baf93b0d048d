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
		Failed       int     `json:"failed"`
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
	if stats.Deploys != 2 || stats.Promoted != 1 || stats.Failed != 1 || stats.ChangeFail != 0.5 || stats.RestoreP50Ms == nil {
		t.Fatalf("stats %+v: want 2 deploys, 1 promoted, 1 rolled back, change failure rate 0.5, a time to restore", stats)
	}
}
