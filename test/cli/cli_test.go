package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/drillship/drillship/cli"
	"github.com/drillship/drillship/drills"
	"github.com/drillship/drillship/schedule"
	"github.com/drillship/drillship/test/harness"
)

func countWorkflows(t *testing.T, env interface {
	ListWorkflow(context.Context, *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error)
}) int {
	t.Helper()
	resp, err := env.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return len(resp.Executions)
}

func TestBadInputStartsNothing(t *testing.T) {
	env := harness.Start(t, false)
	dir := t.TempDir()
	good, err := os.ReadFile("../../deploys/web-canary.yaml")
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, from, to string) string {
		p := filepath.Join(dir, name)
		s := string(good)
		if from != "" {
			if !strings.Contains(s, from) {
				t.Fatalf("fixture lacks %q", from)
			}
			s = strings.Replace(s, from, to, 1)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	before := harness.State(t, env)
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"malformed yaml", []string{"deploy", "start", write("malformed.yaml", "steps:\n", "steps: [\n"), "--version", "v2"}, []string{"malformed.yaml:"}},
		{"weights not increasing", []string{"deploy", "start", write("order.yaml", "weight: 50", "weight: 5"), "--version", "v2"}, []string{"order.yaml:", "steps[1].weight", "must increase"}},
		{"weight above 100", []string{"deploy", "start", write("big.yaml", "weight: 50", "weight: 500"), "--version", "v2"}, []string{"big.yaml:", "steps[1].weight", "1..100"}},
		{"unknown provider", []string{"deploy", "start", write("prov.yaml", "release: {provider: local}", "release: {provider: kubectl}"), "--version", "v2"}, []string{"prov.yaml:", "release", `"kubectl"`, "allowed:"}},
		{"negative duration", []string{"deploy", "start", write("neg.yaml", "bake: 3s", "bake: -3s"), "--version", "v2"}, []string{"neg.yaml:", "bake", "negative"}},
		{"bad version label", []string{"deploy", "start", write("ok.yaml", "", ""), "--version", "v2 beta"}, []string{"--version", "not a version label"}},
		{"missing spec file", []string{"deploy", "start", filepath.Join(dir, "nope.yaml"), "--version", "v2"}, []string{"nope.yaml", "cannot read"}},
		{"bad output flag", []string{"deploy", "start", write("ok2.yaml", "", ""), "--version", "v2", "--output", "xml"}, []string{"--output", "allowed: text, json"}},
		{"bad drill mode", []string{"drill", "run", "region-failover", "--mode", "chaos"}, []string{"--mode", "allowed: automated, gameday"}},
		{"bad calendar", []string{"drill", "schedule", "create", "region-failover", "--calendar", "fifth friday 10:00 UTC"}, []string{"--calendar", "first, second, third, fourth or every"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(tc.args, "--address", env.Stack.Address(), "--local-env", env.LocalURL())
			code, _, stderr := harness.RunCLI(args...)
			if code != cli.ExitUsage {
				t.Fatalf("exit %d, want %d; stderr %s", code, cli.ExitUsage, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q lacks %q", stderr, w)
				}
			}
		})
	}
	if n := countWorkflows(t, env.Client); n != 0 {
		t.Fatalf("%d workflows started by bad input", n)
	}
	after := harness.State(t, env)
	if after.Stable != before.Stable || len(after.Running) != len(before.Running) || len(after.Faults) != 0 {
		t.Fatalf("the environment changed: %+v -> %+v", before, after)
	}
	code, out, stderr := harness.RunCLI("drill", "validate", "../../drills/region-failover.yaml", "--local-env", env.LocalURL())
	if code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("validate shipped drill: %d %s %s", code, out, stderr)
	}
}

func TestScheduleNextRunsOnFirstTuesdays(t *testing.T) {
	env := harness.Start(t, true)
	spec, err := drills.Load("region-failover", env.Registry)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id, err := schedule.Create(ctx, env.Client, spec, "first tuesday 10:00 America/New_York", "")
	if err != nil {
		t.Fatal(err)
	}
	if id != "drill-schedule/region-failover" {
		t.Fatalf("id %s", id)
	}
	var entries []schedule.Entry
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		entries, err = schedule.List(ctx, env.Client)
		if err == nil && len(entries) == 1 && len(entries[0].Next) > 0 {
			break
		}
		time.Sleep(200 * time.Millisecond) // the schedule list is eventually consistent
	}
	if len(entries) != 1 || len(entries[0].Next) < 3 {
		t.Fatalf("entries %+v err %v", entries, err)
	}
	ny, _ := time.LoadLocation("America/New_York")
	for _, n := range entries[0].Next {
		l := n.In(ny)
		if l.Weekday() != time.Tuesday || l.Day() > 7 || l.Hour() != 10 || l.Minute() != 0 {
			t.Fatalf("next run %s is not a first Tuesday at 10:00 New York time", l)
		}
	}
	code, out, stderr := harness.RunCLI("drill", "schedule", "list", "--address", env.Stack.Address())
	if code != 0 || !strings.Contains(out, "drill-schedule/region-failover") || !strings.Contains(out, "next: Tue") {
		t.Fatalf("schedule list: %d\n%s\n%s", code, out, stderr)
	}
	if code, _, stderr := harness.RunCLI("drill", "schedule", "delete", "region-failover", "--address", env.Stack.Address()); code != 0 {
		t.Fatalf("delete: %s", stderr)
	}
}

func TestDeployStartWaitExitCodes(t *testing.T) {
	env := harness.Start(t, false)
	code, out, stderr := harness.RunCLI("deploy", "start", "web-canary", "--version", "v2", "--wait", "--output", "json",
		"--address", env.Stack.Address(), "--local-env", env.LocalURL())
	var res struct{ Outcome string }
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Outcome != "promoted" {
		t.Fatalf("good deploy: exit %d outcome %q\n%s\n%s", code, res.Outcome, out, stderr)
	}
	harness.BadVersion(t, env, "v3", "0.3")
	code, out, stderr = harness.RunCLI("deploy", "start", "web-canary", "--version", "v3", "--wait",
		"--address", env.Stack.Address(), "--local-env", env.LocalURL())
	if code != cli.ExitOutcome || !strings.Contains(out, "rolled_back") || !strings.Contains(stderr, "[watching]") {
		t.Fatalf("bad deploy: exit %d, want %d with the result on stdout and progress on stderr\n%s\n%s", code, cli.ExitOutcome, out, stderr)
	}
}
