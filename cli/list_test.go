package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/drillship/drillship/cli"
	"github.com/drillship/drillship/devenv"
	"github.com/drillship/drillship/localenv"
	"github.com/drillship/drillship/workflows"
)

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := cli.Run(context.Background(), append([]string{"drillship"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// deploy list finds runs by the prefixed search attributes and shows their
// outcome; --service narrows by DrillshipService; drill list sees no deploy.
func TestDeployListByPrefixedAttributes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a deploy on the embedded server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	env, err := devenv.Start(ctx, devenv.Options{Local: localenv.Options{RPS: 100}})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	addr := []string{"--address", env.Stack.Address(), "--local-env", env.LocalURL()}
	code, out, stderr := runCLI(append([]string{"deploy", "start", "web-canary", "--version", "v2", "--wait", "--output", "json"}, addr...)...)
	if code != 0 {
		t.Fatalf("deploy v2: exit %d\n%s\n%s", code, out, stderr)
	}
	type row struct {
		ID    string            `json:"id"`
		Attrs map[string]string `json:"attributes"`
	}
	// list retries until it sees want rows, the first one with its outcome:
	// visibility is eventually consistent.
	list := func(want int, args ...string) []row {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			var rows []row
			code, out, stderr := runCLI(append(append(args, "--output", "json"), addr[:2]...)...)
			if code != 0 {
				t.Fatalf("%v: exit %d %s", args, code, stderr)
			}
			if err := json.Unmarshal([]byte(out), &rows); err != nil {
				t.Fatalf("%v: %v\n%s", args, err, out)
			}
			if len(rows) == want && (want == 0 || rows[0].Attrs[workflows.AttrOutcome.GetName()] != "") || time.Now().After(deadline) {
				return rows
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	rows := list(1, "deploy", "list", "--service", "web")
	if len(rows) != 1 {
		t.Fatalf("deploy list --service web: %d rows %+v, want 1", len(rows), rows)
	}
	for name, want := range map[string]string{
		"DrillshipKind": "deploy", "DrillshipService": "web", "DrillshipVersion": "v2",
		"DrillshipOutcome": workflows.OutcomePromoted, "DrillshipPhase": "done",
	} {
		if got := rows[0].Attrs[name]; got != want {
			t.Errorf("%s = %q, want %q (attributes %v)", name, got, want, rows[0].Attrs)
		}
	}
	if rows := list(0, "deploy", "list", "--service", "checkout"); len(rows) != 0 {
		t.Errorf("deploy list --service checkout: %+v, want none", rows)
	}
	if rows := list(0, "drill", "list"); len(rows) != 0 {
		t.Errorf("drill list: %+v, want none", rows)
	}
	code, out, stderr = runCLI("deploy", "list", addr[0], addr[1])
	if code != 0 || !bytes.Contains([]byte(out), []byte(workflows.OutcomePromoted)) {
		t.Errorf("deploy list (table): exit %d, want the outcome shown\n%s\n%s", code, out, stderr)
	}
}
