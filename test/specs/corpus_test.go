package specs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/drillship/drillship/cli"
	"github.com/drillship/drillship/localenv"
	"github.com/drillship/drillship/test/harness"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

// badSpec is one file of the corpus: bad/<kind>/<name>.yaml, whose header
// holds the exact error lines expected ("# want: FILE:12: field: ...").
type badSpec struct {
	kind, path string
	want       string // the whole of stderr
}

func corpus(t *testing.T) []badSpec {
	t.Helper()
	var out []badSpec
	for _, kind := range []string{"deploy", "drill"} {
		paths, err := filepath.Glob(filepath.Join("bad", kind, "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, l := range strings.Split(string(data), "\n") {
				if w, ok := strings.CutPrefix(l, "# want: "); ok {
					want = append(want, strings.Replace(w, "FILE", p, 1))
				}
			}
			if len(want) == 0 {
				t.Fatalf("%s: no '# want:' line", p)
			}
			out = append(out, badSpec{kind, p, "drillship: " + strings.Join(want, "\n") + "\n"})
		}
	}
	var deploys, drills int
	for _, b := range out {
		if b.kind == "deploy" {
			deploys++
		} else {
			drills++
		}
	}
	if len(out) < 40 || deploys < 15 || drills < 15 {
		t.Fatalf("the corpus has %d deploy and %d drill specs; it promises at least 40, of both kinds", deploys, drills)
	}
	return out
}

// Each bad spec is refused offline with exit 2 and exactly the expected
// error (file:line, the field as written, what was given, what is allowed).
func TestBadSpecsOffline(t *testing.T) {
	for _, b := range corpus(t) {
		t.Run(b.path, func(t *testing.T) {
			code, _, stderr := harness.RunCLI(b.kind, "validate", b.path)
			if code != cli.ExitUsage || stderr != b.want {
				t.Fatalf("exit %d (want %d)\ngot:  %q\nwant: %q", code, cli.ExitUsage, stderr, b.want)
			}
		})
	}
}

// world is everything a bad spec must leave alone in the local
// environment: weights, versions, artifacts, faults (every one ever put
// in), shedding, load.
type world struct {
	State  localenv.State
	Faults []localenv.FaultRecord
}

func snapshot(t *testing.T, url string) world {
	t.Helper()
	var w world
	w.State = harness.StateAt(t, url)
	w.State.Instances = nil // health flips on its own; not something a spec changes
	harness.GetJSON(t, url+"/api/faults", &w.Faults)
	return w
}

// Against the real stack, validate (online), deploy start and drill run
// refuse every bad spec with exit 2 and the same error, and nothing was
// started or changed: no workflow, the local environment's state equal.
func TestBadSpecsStartNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the embedded Temporal server")
	}
	env := harness.Start(t, false)
	url := env.LocalURL()
	conn := []string{"--address", env.Stack.Address(), "--local-env", url}
	before := snapshot(t, url)
	for _, b := range corpus(t) {
		t.Run(b.path, func(t *testing.T) {
			start := []string{"deploy", "start", b.path, "--version", "v2"}
			if b.kind == "drill" {
				start = []string{"drill", "run", b.path}
			}
			for _, args := range [][]string{{b.kind, "validate", b.path, "--local-env", url}, append(start, conn...)} {
				code, _, stderr := harness.RunCLI(args...)
				if code != cli.ExitUsage || stderr != b.want {
					t.Errorf("%s: exit %d (want %d)\ngot:  %q\nwant: %q", strings.Join(args[:2], " "), code, cli.ExitUsage, stderr, b.want)
				}
			}
		})
	}
	resp, err := env.Client.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(resp.Executions); n != 0 {
		t.Fatalf("%d workflows were started by bad specs", n)
	}
	if after := snapshot(t, url); !reflect.DeepEqual(before, after) {
		t.Fatalf("the local environment changed:\nbefore %+v\nafter  %+v", before, after)
	}
}

// Online checks read the world and say which ran; what only the world can
// refuse (deploying the stable version) is refused before anything starts.
func TestOnlineChecks(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the embedded Temporal server")
	}
	env := harness.Start(t, false)
	url := env.LocalURL()
	before := snapshot(t, url)
	code, out, stderr := harness.RunCLI("drill", "validate", "region-failover", "--local-env", url)
	for _, w := range []string{"region-failover: ok", "online, reading the local environment at " + url,
		"ran: providers.traffic: read the weights (east=50 west=50)", "ran: steadyState[1] (east-up): 1 now",
		"ran: load: the runner reads the load", "not checked: inject[0].fault: not tried"} {
		if code != 0 || !strings.Contains(out, w) {
			t.Fatalf("drill validate online: exit %d, output lacks %q\n%s\n%s", code, w, out, stderr)
		}
	}
	code, out, stderr = harness.RunCLI("deploy", "validate", "web-canary", "--version", "v2", "--local-env", url)
	for _, w := range []string{"web-canary: ok", "ran: release: read the state (stable v1, running v1)", "ran: analysis.metrics[0] (error-rate):"} {
		if code != 0 || !strings.Contains(out, w) {
			t.Fatalf("deploy validate online: exit %d, output lacks %q\n%s\n%s", code, w, out, stderr)
		}
	}
	code, out, _ = harness.RunCLI("deploy", "validate", "web-canary")
	if code != 0 || !strings.Contains(out, "online: not run") {
		t.Fatalf("offline validate must say the online checks did not run: %d\n%s", code, out)
	}
	shipped, err := os.ReadFile("../../deploys/web-canary.yaml")
	if err != nil {
		t.Fatal(err)
	}
	line := 1 + strings.Count(string(shipped[:strings.Index(string(shipped), "\nrelease:")+1]), "\n")
	want := fmt.Sprintf("drillship: deploys/web-canary.yaml:%d: release: --version v1 is already the stable version: nothing to deploy\n", line)
	for _, args := range [][]string{
		{"deploy", "validate", "web-canary", "--version", "v1", "--local-env", url},
		{"deploy", "start", "web-canary", "--version", "v1", "--address", env.Stack.Address(), "--local-env", url},
	} {
		if code, _, stderr := harness.RunCLI(args...); code != cli.ExitUsage || stderr != want {
			t.Fatalf("%v: exit %d\ngot:  %q\nwant: %q", args, code, stderr, want)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"deploy", "start", "web-canary"}, "drillship: deploy start: --version is required: the version to deploy (such as --version v2)\n"},
		{[]string{"deploy", "start", "web-canary", "--version"}, "drillship: --version: needs a value, the version to deploy (such as --version v2); got \"--\"\n"},
	} {
		if code, _, stderr := harness.RunCLI(tc.args...); code != cli.ExitUsage || stderr != tc.want {
			t.Fatalf("%v: exit %d\ngot:  %q\nwant: %q", tc.args, code, stderr, tc.want)
		}
	}
	if after := snapshot(t, url); !reflect.DeepEqual(before, after) {
		t.Fatalf("online checks changed the local environment:\nbefore %+v\nafter  %+v", before, after)
	}
}
