package cli_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drillship/drillship/devenv"
	"github.com/drillship/drillship/localenv"
)

func startLocalEnv(t *testing.T) *localenv.Env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := localenv.Start(ctx, localenv.Options{RPS: 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func envState(t *testing.T, e *localenv.Env) localenv.State {
	t.Helper()
	cl, err := localenv.NewClient(e.URL())
	if err != nil {
		t.Fatal(err)
	}
	s, err := cl.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func allFaults(t *testing.T, e *localenv.Env) []localenv.FaultRecord {
	t.Helper()
	cl, _ := localenv.NewClient(e.URL())
	fs, err := cl.Faults(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// envCLI runs `drillship env ARGS --local-env URL`.
func envCLI(e *localenv.Env, args ...string) (int, string, string) {
	return runCLI(append(append([]string{"env"}, args...), "--local-env", e.URL())...)
}

// Each env command acts on a real environment and says what changed; the
// state read back through the control API is the judge, and a fault put in
// from the command line hurts real requests through the front proxy.
func TestEnvCommands(t *testing.T) {
	e := startLocalEnv(t)

	code, out, stderr := envCLI(e, "status")
	if code != 0 || !strings.Contains(out, "stable v1; running v1") || !strings.Contains(out, "regions:  east 50, west 50") ||
		!strings.Contains(out, "faults     none in effect") || !strings.Contains(out, "load       x1 (20 requests/s)") {
		t.Fatalf("status: exit %d\n%s%s", code, out, stderr)
	}

	// bad_version with flags, as the README shows it.
	code, out, stderr = envCLI(e, "fault", "add", "bad_version", "--version", "v3", "--rate", "0.2")
	if code != 0 || !strings.Contains(out, "in effect: bad_version rate=0.2 version=v3 (owner cli:") {
		t.Fatalf("fault add: exit %d\n%s%s", code, out, stderr)
	}
	active := envState(t, e).Faults
	if len(active) != 1 || active[0].Kind != "bad_version" || active[0].Params["version"] != "v3" || active[0].Params["rate"] != "0.2" ||
		!strings.HasPrefix(active[0].Owner, "cli:") {
		t.Fatalf("faults in effect after add: %+v", active)
	}
	mine := active[0]
	// The same again changes nothing and says so.
	code, out, _ = envCLI(e, "fault", "add", "bad_version", "--version", "v3", "--rate", "0.2")
	if code != 0 || !strings.Contains(out, "fault "+mine.ID+" was already in effect") || !strings.Contains(out, "nothing changed") {
		t.Errorf("repeated fault add: exit %d\n%s", code, out)
	}
	if n := len(allFaults(t, e)); n != 1 {
		t.Errorf("repeated fault add made %d faults, want 1", n)
	}

	// latency takes a duration; the environment gets whole milliseconds.
	code, out, stderr = envCLI(e, "fault", "add", "latency", "--latency", "300ms", "--region", "east", "--output", "json")
	var lat localenv.FaultRecord
	if code != 0 || json.Unmarshal([]byte(out), &lat) != nil || lat.Params["ms"] != "300" || lat.Params["region"] != "east" || !lat.Active {
		t.Fatalf("fault add latency: exit %d, %+v\n%s%s", code, lat, out, stderr)
	}

	code, out, _ = envCLI(e, "fault", "list", "--output", "json")
	var listed []localenv.FaultRecord
	if code != 0 || json.Unmarshal([]byte(out), &listed) != nil || len(listed) != 2 {
		t.Fatalf("fault list: exit %d\n%s", code, out)
	}
	code, out, _ = envCLI(e, "status", "--output", "json")
	var st localenv.State
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || len(st.Faults) != 2 || st.Stable != "v1" || st.RegionWeights["east"] != 50 {
		t.Fatalf("status json: exit %d\n%s", code, out)
	}

	// A drill's fault is not a person's to end, unless forced.
	cl, _ := localenv.NewClient(e.URL())
	theirs, err := cl.Inject(context.Background(), localenv.FaultRequest{Kind: "dependency_down", Params: map[string]string{"dependency": "recs"}, Owner: "drill/region-failover/1"})
	if err != nil {
		t.Fatal(err)
	}
	code, _, stderr = envCLI(e, "fault", "stop", theirs.ID)
	if code != 2 || !strings.Contains(stderr, "belongs to drill/region-failover/1") || !strings.Contains(stderr, "--force") {
		t.Errorf("stop of a drill's fault: exit %d, %s", code, stderr)
	}
	if !faultActive(t, e, theirs.ID) {
		t.Fatalf("a refused stop ended %s", theirs.ID)
	}
	code, out, stderr = envCLI(e, "fault", "stop", theirs.ID, "--force")
	if code != 0 || !strings.Contains(out, "fault "+theirs.ID+" ended at") || faultActive(t, e, theirs.ID) {
		t.Errorf("forced stop: exit %d\n%s%s", code, out, stderr)
	}

	// One's own fault ends; ending it again says nothing changed.
	code, out, stderr = envCLI(e, "fault", "stop", mine.ID)
	if code != 0 || !strings.Contains(out, "fault "+mine.ID+" ended at") || faultActive(t, e, mine.ID) {
		t.Errorf("stop: exit %d\n%s%s", code, out, stderr)
	}
	code, out, _ = envCLI(e, "fault", "stop", mine.ID)
	if code != 0 || !strings.Contains(out, "had already ended") || !strings.Contains(out, "nothing changed") {
		t.Errorf("second stop: exit %d\n%s", code, out)
	}
	code, out, _ = envCLI(e, "fault", "list", "--all")
	if code != 0 || strings.Count(out, "\n") != 4 || !strings.Contains(out, "in effect") {
		t.Errorf("fault list --all: exit %d\n%s", code, out)
	}

	// Load.
	code, out, _ = envCLI(e, "load", "2")
	if code != 0 || !strings.Contains(out, "load x1 -> x2 (40 requests/s)") || envState(t, e).Load.Multiplier != 2 {
		t.Errorf("load 2: exit %d\n%s", code, out)
	}
	code, out, _ = envCLI(e, "load", "2")
	if code != 0 || !strings.Contains(out, "nothing changed") {
		t.Errorf("load 2 again: exit %d\n%s", code, out)
	}

	// Weights: regions named, the one left out set to 0.
	code, out, stderr = envCLI(e, "weights", "west=100")
	if s := envState(t, e); code != 0 || s.RegionWeights["east"] != 0 || s.RegionWeights["west"] != 100 ||
		!strings.Contains(out, "region weights east 50, west 50 -> east 0, west 100") {
		t.Errorf("weights west=100: exit %d, %v\n%s%s", code, s.RegionWeights, out, stderr)
	}
	code, out, _ = envCLI(e, "weights", "web", "v1=100")
	if code != 0 || !strings.Contains(out, "version weights were already v1 100: nothing changed") {
		t.Errorf("weights web v1=100: exit %d\n%s", code, out)
	}

	// The real effect: all traffic to east, where every request now fails.
	if code, out, stderr = envCLI(e, "weights", "east=100", "west=0"); code != 0 {
		t.Fatalf("weights east=100 west=0: exit %d\n%s%s", code, out, stderr)
	}
	if code, out, stderr = envCLI(e, "fault", "add", "error_rate", "--rate", "1", "--region", "east"); code != 0 {
		t.Fatalf("fault add error_rate: exit %d\n%s%s", code, out, stderr)
	}
	for i := range 5 {
		resp, err := http.Get(e.FrontURL())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusInternalServerError {
			t.Fatalf("request %d through the front proxy: %d, want 500 from the error_rate fault", i, resp.StatusCode)
		}
	}
	code, out, _ = envCLI(e, "weights")
	if code != 0 || !strings.Contains(out, "regions:  east 100, west 0") {
		t.Errorf("weights: exit %d\n%s", code, out)
	}
}

func faultActive(t *testing.T, e *localenv.Env, id string) bool {
	t.Helper()
	return slices.ContainsFunc(envState(t, e).Faults, func(f localenv.FaultRecord) bool { return f.ID == id })
}

// Every bad input exits 2 with a message in the command's own terms, and the
// environment is the same afterwards (state and every fault ever put in).
func TestEnvBadInputChangesNothing(t *testing.T) {
	e := startLocalEnv(t)
	cl, _ := localenv.NewClient(e.URL())
	if _, err := cl.Inject(context.Background(), localenv.FaultRequest{Kind: "latency", Params: map[string]string{"ms": "5"}, Owner: "drill/x/1", ID: "theirs"}); err != nil {
		t.Fatal(err)
	}
	snapshot := func() string {
		s := envState(t, e)
		s.Instances = nil // health flickers on its own schedule
		b, _ := json.Marshal(struct {
			S localenv.State
			F []localenv.FaultRecord
		}{s, allFaults(t, e)})
		return string(b)
	}
	before := snapshot()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"fault", "add"}, "expected one argument, the fault kind; got 0; kinds:"},
		{[]string{"fault", "add", "meteor"}, `"meteor" is not a fault kind of the local environment; kinds:`},
		{[]string{"fault", "add", "bad_version"}, "env fault add bad_version: --version is required"},
		{[]string{"fault", "add", "bad_version", "--version", "v3", "--rate", "1.5"}, `--rate "1.5": allowed a number 0.001..1`},
		{[]string{"fault", "add", "bad_version", "--version", "v3", "--rate", "lots"}, `--rate "lots": allowed a number`},
		{[]string{"fault", "add", "region_down", "--region", "east", "--rate", "0.2"}, "--rate is not a parameter of region_down"},
		{[]string{"fault", "add", "region_down", "--region", "north"}, `params.region "north": allowed east, west`},
		{[]string{"fault", "add", "latency"}, "--latency is required"},
		{[]string{"fault", "add", "latency", "--latency", "2m"}, `--latency "2m": allowed a duration 1ms..1m`},
		{[]string{"fault", "add", "latency", "--latency", "300"}, `--latency "300": allowed a duration`},
		{[]string{"fault", "add", "dependency_down", "--dependency", "db"}, `--dependency "db": allowed recs`},
		{[]string{"fault", "add", "error_rate", "--rate", "0.5", "--version", "no/such"}, `params.version "no/such"`},
		{[]string{"fault", "add", "bad_version", "--version", "v3", "--output", "yaml"}, `--output: "yaml" is not allowed`},
		{[]string{"fault", "add", "bad_version", "--version", "v3", "--owner", " "}, "--owner needs a value"},
		{[]string{"fault", "stop"}, "expected one argument, the fault id"},
		{[]string{"fault", "stop", "f-nope"}, `no fault "f-nope" in this environment`},
		{[]string{"fault", "stop", "theirs"}, "belongs to drill/x/1"},
		{[]string{"fault", "list", "extra"}, "takes no arguments"},
		{[]string{"load"}, "expected one argument, the load multiplier"},
		{[]string{"load", "101"}, `"101": allowed a number 0..100`},
		{[]string{"load", "lots"}, `"lots": allowed a number 0..100`},
		{[]string{"weights", "east=60", "west=60"}, "east=60 west=60 add up to 120; they must add up to 100"},
		{[]string{"weights", "east=99"}, "east=99 add up to 99"},
		{[]string{"weights", "east=50", "v1=50"}, "give regions (east) or versions (v1), not both"},
		{[]string{"weights", "north=100"}, "north: neither a region (east, west) nor a version of this environment (v1)"},
		{[]string{"weights", "east=half"}, `"east=half": write NAME=WEIGHT`},
		{[]string{"weights", "east=100", "east=0"}, "east is given twice"},
		{[]string{"weights", "api", "east=100"}, `service "api": this local environment runs "web"`},
		{[]string{"status", "now"}, "takes no arguments"},
	}
	for _, tc := range cases {
		code, out, stderr := envCLI(e, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("env %s: exit %d, want 2 and %q\nstdout: %s\nstderr: %s", strings.Join(tc.args, " "), code, tc.want, out, stderr)
		}
		if after := snapshot(); after != before {
			t.Fatalf("env %s changed the environment:\nbefore %s\nafter  %s", strings.Join(tc.args, " "), before, after)
		}
	}

	// Which environment: none named, or not an URL.
	t.Setenv("DRILLSHIP_LOCAL_ENV", "")
	if code, _, stderr := runCLI("env", "status"); code != 2 || !strings.Contains(stderr, "pass --local-env URL or set DRILLSHIP_LOCAL_ENV") {
		t.Errorf("env status without an environment: exit %d, %s", code, stderr)
	}
	if code, _, stderr := runCLI("env", "status", "--local-env", "ftp://x"); code != 2 || !strings.Contains(stderr, "is not the URL of a local environment's control API") {
		t.Errorf("env status --local-env ftp://x: exit %d, %s", code, stderr)
	}
	// DRILLSHIP_LOCAL_ENV is read, like `drillship worker` reads it.
	t.Setenv("DRILLSHIP_LOCAL_ENV", strings.TrimPrefix(e.URL(), "http://"))
	if code, out, stderr := runCLI("env", "status"); code != 0 || !strings.Contains(out, "stable v1") {
		t.Errorf("env status from DRILLSHIP_LOCAL_ENV: exit %d\n%s%s", code, out, stderr)
	}
}

// The README's bad deploy: a version made bad with `env fault add
// bad_version` is rolled back by the canary's analysis (exit 3, traffic back
// on the stable version, the canary stopped), and the person's fault is
// still in afterwards: the deploy does not own it.
func TestEnvBadDeployRollsBack(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a deploy on the embedded server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env, err := devenv.Start(ctx, devenv.Options{Local: localenv.Options{RPS: 100}})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	local := []string{"--local-env", env.LocalURL()}
	code, out, stderr := runCLI(append([]string{"env", "fault", "add", "bad_version", "--version", "v3", "--rate", "0.2", "--output", "json"}, local...)...)
	var f localenv.FaultRecord
	if code != 0 || json.Unmarshal([]byte(out), &f) != nil {
		t.Fatalf("env fault add: exit %d\n%s%s", code, out, stderr)
	}
	start := time.Now()
	code, out, stderr = runCLI(append([]string{"deploy", "start", "web-canary", "--version", "v3", "--wait", "--output", "json", "--address", env.Stack.Address()}, local...)...)
	var res struct {
		Outcome string `json:"outcome"`
	}
	if code != 3 || json.Unmarshal([]byte(out), &res) != nil || res.Outcome != "rolled_back" {
		t.Fatalf("deploy v3: exit %d (want 3), outcome %q (want rolled_back)\n%s%s", code, res.Outcome, out, stderr)
	}
	t.Logf("bad deploy rolled back in %s", time.Since(start).Round(time.Millisecond))
	s := envState(t, env.Local)
	if s.Stable != "v1" || s.VersionWeights["v1"] != 100 || s.VersionWeights["v3"] != 0 || slices.Contains(s.Running, "v3") {
		t.Errorf("after the rollback: stable %s, weights %v, running %v; want v1 at 100, v3 stopped", s.Stable, s.VersionWeights, s.Running)
	}
	if !faultActive(t, env.Local, f.ID) {
		t.Errorf("the person's fault %s ended with the deploy", f.ID)
	}
}
