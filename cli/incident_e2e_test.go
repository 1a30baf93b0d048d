package cli_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/drillship/drillship/devenv"
	"github.com/drillship/drillship/localenv"
)

// End to end on the local environment: a policy whose break-glass needs an
// incident the local environment has open (`incidents: {provider:
// local}`). During a freeze, `deploy start --reason --incident` is refused
// (exit 2) for an unknown and for a resolved incident, and starts for an
// open one, which the worker verifies again through its own local
// environment URL and records in the audit log as break-glass-start.
func TestPolicyBreakGlassLocalIncident(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a deploy on the embedded server and the local environment")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	env, err := devenv.Start(ctx, devenv.Options{Local: localenv.Options{RPS: 50}})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	log := writeFile(t, "audit.jsonl", "")
	today := time.Now().UTC()
	pol := writeFile(t, "policy.yaml", `freezes:
  - {name: all-day, blocks: all, dates: {from: "`+today.Add(-24*time.Hour).Format("2006-01-02")+`", to: "`+today.Add(24*time.Hour).Format("2006-01-02")+`"}}
breakGlass:
  requireIncident: true
  incidents: {provider: local}
audit: {file: `+log+`}
`)
	spec := writeFile(t, "quick.yaml", `service: web
environment: local
traffic: {provider: local, config: {level: version}}
release: {provider: local}
analysis:
  provider: local
  interval: 1s
  minRequests: 5
  metrics:
    - {name: error-rate, metric: error_rate, window: 2s, max: 0.2}
steps:
  - {weight: 50, pause: 2s}
onFailure: rollback
bake: 1s
`)
	local := []string{"--local-env", env.LocalURL()}
	cli := func(args ...string) (int, string, string) { return runCLI(append(args, local...)...) }
	for _, args := range [][]string{
		{"env", "incident", "open", "INC-1", "--title", "checkout down"},
		{"env", "incident", "open", "INC-2"},
		{"env", "incident", "resolve", "INC-2"},
	} {
		if code, out, stderr := cli(args...); code != 0 {
			t.Fatalf("%v: exit %d %s %s", args, code, out, stderr)
		}
	}
	if code, out, _ := cli("env", "incident", "list", "--output", "json"); code != 0 || !strings.Contains(out, `"status": "resolved"`) {
		t.Fatalf("incident list: exit %d\n%s", code, out)
	}
	// Bad input exits 2 and creates nothing.
	for _, args := range [][]string{{"env", "incident", "resolve", "INC-9"}, {"env", "incident", "open", "bad id"}, {"env", "incident", "open"}} {
		if code, out, stderr := cli(args...); code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s%s", args, code, out, stderr)
		}
	}

	start := func(incident string) (int, string, string) {
		return runCLI("deploy", "start", spec, "--version", "v2", "--output", "json", "--policy", pol,
			"--who", "ann", "--reason", "sev1 fix", "--incident", incident, "--address", env.Stack.Address(), "--local-env", env.LocalURL())
	}
	for incident, says := range map[string]string{"INC-9": "incident INC-9 is not open (not found)", "INC-2": "incident INC-2 is not open (resolved)"} {
		if code, out, stderr := start(incident); code != 2 || !strings.Contains(stderr, says) || !strings.Contains(stderr, "freeze all-day") {
			t.Fatalf("break-glass with %s: exit %d, want 2 saying %q\n%s\n%s", incident, code, says, out, stderr)
		}
	}
	if code, out, stderr := start("INC-1"); code != 0 {
		t.Fatalf("break-glass with open INC-1: exit %d\n%s\n%s", code, out, stderr)
	}
	// The workflow verifies the incident again through the worker's own
	// local environment URL before it records the override; the freeze
	// then holds the canary before its next shift (a documented choice),
	// which is no concern here.
	deadline := time.Now().Add(time.Minute)
	for {
		data, _ := os.ReadFile(log)
		if strings.Contains(string(data), `"action":"break-glass-start"`) && strings.Contains(string(data), `"incident":"INC-1"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no break-glass-start on INC-1 in the audit log after a minute:\n%s", data)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
