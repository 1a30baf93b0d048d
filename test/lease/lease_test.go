// Package lease_test runs "one deploy per service" from outside, as people
// do: several `drillship deploy start` processes at once against the
// embedded server and the real local environment.
package lease_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/converter"

	"github.com/drillship/drillship/devenv"
	"github.com/drillship/drillship/lease"
	"github.com/drillship/drillship/localenv"
	"github.com/drillship/drillship/test/harness"
	"github.com/drillship/drillship/workflows"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

type cliRun struct {
	args   []string
	code   int
	stdout string
	stderr string
}

// drillship runs the binary against env and returns its exit code and output.
func drillship(t *testing.T, env *devenv.Env, args ...string) cliRun {
	t.Helper()
	args = append(args, "--address", env.Stack.Address(), "--local-env", env.LocalURL())
	cmd := exec.Command(harness.Binary(t), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := cliRun{args: args, stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Errorf("run %v: %v", args, err)
		r.code = -1
	}
	return r
}

// weightWatch polls the local environment's version weights until stopped
// and counts the polls whose weights do not sum to 100.
type weightWatch struct {
	polls, bad atomic.Int64
	firstBad   atomic.Value // string
	stop       chan struct{}
	done       chan struct{}
}

func watchWeights(env *devenv.Env) *weightWatch {
	w := &weightWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			var st localenv.State
			if harness.TryGetJSON(env.LocalURL()+"/api/state", &st) != nil {
				continue
			}
			w.polls.Add(1)
			sum := 0
			for _, v := range st.VersionWeights {
				sum += v
			}
			if sum != 100 {
				if w.bad.Add(1) == 1 {
					w.firstBad.Store(fmt.Sprint(st.VersionWeights))
				}
			}
		}
	}()
	return w
}

func (w *weightWatch) finish(t *testing.T) {
	t.Helper()
	close(w.stop)
	<-w.done
	if w.polls.Load() < 20 {
		t.Fatalf("only %d polls of the weights", w.polls.Load())
	}
	if n := w.bad.Load(); n > 0 {
		t.Fatalf("%d of %d polls had version weights not summing to 100, first %v", n, w.polls.Load(), w.firstBad.Load())
	}
	t.Logf("version weights summed to 100 at all %d polls", w.polls.Load())
}

// waitEnded waits for a workflow to close, whatever its result.
func waitEnded(t *testing.T, env *devenv.Env, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_ = env.Client.GetWorkflow(ctx, id, "").Get(ctx, nil)
	if ctx.Err() != nil {
		t.Fatalf("%s did not end", id)
	}
}

func TestConcurrentDeployStartsOneRuns(t *testing.T) {
	harness.Binary(t) // build before the clock matters
	env := harness.Start(t, false)
	watch := watchWeights(env)

	versions := []string{"v2", "v3", "v4", "v5", "v6"}
	runs := make([]cliRun, len(versions))
	var wg sync.WaitGroup
	for i, v := range versions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runs[i] = drillship(t, env, "deploy", "start", "web-canary", "--version", v)
		}()
	}
	wg.Wait()

	winner := ""
	for i, r := range runs {
		if r.code == 0 {
			if winner != "" {
				t.Fatalf("two deploys started: %s and %s\n%+v", winner, versions[i], runs)
			}
			winner = versions[i]
		}
	}
	if winner == "" {
		t.Fatalf("no deploy started: %+v", runs)
	}
	winnerID := workflows.DeployID("web", winner)
	refused := regexp.MustCompile(`web has a deploy in progress: ` + regexp.QuoteMeta(winnerID) + ` \((started \d\d:\d\d:\d\d UTC, phase [a-z_ -]+|not started yet)\)`)
	for i, r := range runs {
		if versions[i] == winner {
			if !strings.Contains(r.stdout, "started "+winnerID) {
				t.Errorf("winner's output: %q", r.stdout)
			}
			continue
		}
		if r.code != 2 || !refused.MatchString(r.stderr) {
			t.Errorf("%s: exit %d, stderr %q; want exit 2 naming %s", versions[i], r.code, r.stderr, winnerID)
		}
		// Nothing was started for a refused deploy.
		if _, err := env.Client.DescribeWorkflowExecution(context.Background(), workflows.DeployID("web", versions[i]), ""); err == nil {
			t.Errorf("%s was refused but its workflow exists", versions[i])
		}
	}
	t.Logf("winner %s; a refusal reads: %s", winnerID, strings.TrimSpace(runs[(indexOf(versions, winner)+1)%len(versions)].stderr))

	// Starting the running version again says so.
	again := drillship(t, env, "deploy", "start", "web-canary", "--version", winner)
	want := fmt.Sprintf("%s of web is already being deployed (%s)", winner, winnerID)
	if again.code != 2 || !strings.Contains(again.stderr, want) {
		t.Errorf("same version again: exit %d, stderr %q; want exit 2 and %q", again.code, again.stderr, want)
	}

	waitEnded(t, env, winnerID)
	watch.finish(t)

	// The lease is free once the deploy has ended: the next deploy starts.
	next := drillship(t, env, "deploy", "start", "web-canary", "--version", "v7")
	if next.code != 0 {
		t.Fatalf("deploy after the first ended: exit %d %s", next.code, next.stderr)
	}
	waitEnded(t, env, workflows.DeployID("web", "v7"))
}

// A drill that shifts what a running deploy shifts is refused, and the
// reverse; the drill's own child deploy is let in.
func TestDrillAndDeployNeverFight(t *testing.T) {
	harness.Binary(t)
	env := harness.Start(t, false)

	dep := drillship(t, env, "deploy", "start", "web-canary", "--version", "v2")
	if dep.code != 0 {
		t.Fatalf("deploy: exit %d %s", dep.code, dep.stderr)
	}
	drill := drillship(t, env, "drill", "run", "rollback-drill")
	if drill.code != 2 || !strings.Contains(drill.stderr, "web has a deploy in progress: deploy/web/v2") {
		t.Fatalf("drill during a deploy: exit %d, stderr %q", drill.code, drill.stderr)
	}
	waitEnded(t, env, workflows.DeployID("web", "v2"))

	drill = drillship(t, env, "drill", "run", "rollback-drill", "--output", "json")
	if drill.code != 0 {
		t.Fatalf("drill: exit %d %s", drill.code, drill.stderr)
	}
	m := regexp.MustCompile(`"id":\s*"([^"]+)"`).FindStringSubmatch(drill.stdout)
	if m == nil {
		t.Fatalf("drill output %q", drill.stdout)
	}
	drillID := m[1]
	blocked := drillship(t, env, "deploy", "start", "web-canary", "--version", "v3")
	if blocked.code != 2 || !strings.Contains(blocked.stderr, "web has a drill in progress: "+drillID) {
		t.Errorf("deploy during the drill: exit %d, stderr %q", blocked.code, blocked.stderr)
	}
	waitEnded(t, env, drillID)
	// The drill's own deploy of v9 was let in through its parent: it took
	// traffic and was judged (rolled back for its errors), not refused.
	child, err := harness.DeployResultOf(t, env.Client.GetWorkflow(context.Background(), drillID+"/deploy/v9", ""), time.Minute)
	if child.Outcome != workflows.OutcomeRolledBack || len(child.Steps) == 0 || strings.Contains(child.Reason, "held by") {
		t.Fatalf("the drill's deploy: outcome %s, %d steps, reason %q (%v)", child.Outcome, len(child.Steps), child.Reason, err)
	}
	if in, res := leaseCall(t, env, drillID+"/deploy/v9"); in.Parent != drillID || !res.Granted {
		t.Fatalf("the drill's deploy asked %+v, got %+v; want a grant through parent %s", in, res, drillID)
	}
	t.Logf("the drill's own deploy: %s (%s)", child.Outcome, child.Reason)
	// Both leases are free again: a deploy starts.
	after := drillship(t, env, "deploy", "start", "web-canary", "--version", "v4")
	if after.code != 0 {
		t.Fatalf("deploy after the drill: exit %d %s", after.code, after.stderr)
	}
	waitEnded(t, env, workflows.DeployID("web", "v4"))
}

// leaseCall reads the AcquireLease call of a workflow from its history.
func leaseCall(t *testing.T, env *devenv.Env, id string) (in lease.AcquireInput, res lease.AcquireResult) {
	t.Helper()
	dc := converter.GetDefaultDataConverter()
	var scheduled int64
	it := env.Client.GetWorkflowHistory(context.Background(), id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() == "AcquireLease" {
			scheduled = ev.GetEventId()
			if err := dc.FromPayloads(a.GetInput(), &in); err != nil {
				t.Fatal(err)
			}
		}
		if a := ev.GetActivityTaskCompletedEventAttributes(); a != nil && scheduled != 0 && a.GetScheduledEventId() == scheduled {
			if err := dc.FromPayloads(a.GetResult(), &res); err != nil {
				t.Fatal(err)
			}
		}
	}
	if scheduled == 0 {
		t.Fatalf("%s never called AcquireLease", id)
	}
	return in, res
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}
