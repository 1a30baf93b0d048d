package replay

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/drillship/drillship/devenv"
	"github.com/drillship/drillship/drills"
	"github.com/drillship/drillship/ledger"
	"github.com/drillship/drillship/test/harness"
	"github.com/drillship/drillship/workflows"
)

// Recorded histories of real runs are replayed against the current workflow
// code on every test run: a change that would break running workflows (an
// activity added, removed or reordered without workflow.GetVersion) fails
// here instead of in production.
//
// Every history in testdata is kept forever, so that a change must still
// replay what older code recorded (running workflows do exactly that). After
// an intended, versioned change, add a scenario under a new file name to
// recordedHistories and record the missing files with
//
//	go test ./test/replay -run TestRecordHistories -args -record
//
// (or DRILLSHIP_RECORD_HISTORIES=1). Files that exist are never re-recorded.

var record = flag.Bool("record", false, "record the missing test/replay/testdata/*.json histories from real runs on the embedded server")

// recordedHistories is how each history was recorded, by file; the replay
// test replays every file in testdata, these and older ones alike.
var recordedHistories = map[string]func(t *testing.T, env *devenv.Env) (id string){
	"deploy-promoted.json":       deployPromoted,
	"deploy-rolled-back.json":    deployRolledBack,
	"deploy-paused-resumed.json": deployPausedResumed,
	"drill-recovered.json":       drillRecovered,
	"drill-guardrail-abort.json": drillGuardrailAbort,
	"failover.json":              failover,
	// Recorded after "deploy-safety" and "drill-truth" (the new paths);
	// the files above replay the frozen v0 code.
	"deploy-safety-promoted.json":         deployPromoted,
	"deploy-safety-rolled-back.json":      deployRolledBack,
	"deploy-safety-paused-cancelled.json": deployPausedCancelled,
	"drill-truth-recovered.json":          drillRecovered,
	"drill-truth-guardrail-abort.json":    drillGuardrailAbort,
	// Recorded after "preflight" (the providers' checks before anything
	// changes) and "inject-refusal".
	"preflight-deploy-promoted.json":    deployPromoted,
	"preflight-deploy-rolled-back.json": deployRolledBack,
	"preflight-drill-recovered.json":    drillRecovered,
}

func deployPromoted(t *testing.T, env *devenv.Env) string {
	res := recordDeploy(t, env, nil)
	if res.Outcome != workflows.OutcomePromoted {
		t.Fatalf("outcome %s: %s", res.Outcome, res.Reason)
	}
	return workflows.DeployID(res.Service, res.Version)
}

func deployRolledBack(t *testing.T, env *devenv.Env) string {
	harness.BadVersion(t, env, "v2", "0.1")
	res := recordDeploy(t, env, nil)
	if res.Outcome != workflows.OutcomeRolledBack {
		t.Fatalf("outcome %s: %s", res.Outcome, res.Reason)
	}
	return workflows.DeployID(res.Service, res.Version)
}

func deployPausedResumed(t *testing.T, env *devenv.Env) string {
	res := recordDeploy(t, env, func(id string) {
		harness.WaitPhase(t, env.Client, id, "watching")
		harness.Update(t, env.Client, id, workflows.UpdatePause, "replay-recording")
		harness.WaitPhase(t, env.Client, id, "paused")
		harness.Update(t, env.Client, id, workflows.UpdateResume, "replay-recording")
	})
	if res.Outcome != workflows.OutcomePromoted || len(res.Audit) != 2 || res.Audit[0].Action != "pause" || res.Audit[1].Action != "resume" {
		t.Fatalf("outcome %s (%s), audit %+v; want promoted after pause and resume", res.Outcome, res.Reason, res.Audit)
	}
	return workflows.DeployID(res.Service, res.Version)
}

// deployPausedCancelled: paused (the held canary watched), then cancelled
// through the Temporal API as the UI's Cancel does.
func deployPausedCancelled(t *testing.T, env *devenv.Env) string {
	res := recordDeploy(t, env, func(id string) {
		harness.WaitPhase(t, env.Client, id, "watching")
		harness.Update(t, env.Client, id, workflows.UpdatePause, "replay-recording")
		harness.WaitPhase(t, env.Client, id, "paused")
		time.Sleep(2 * time.Second)
		if err := env.Client.CancelWorkflow(context.Background(), id, ""); err != nil {
			t.Fatal(err)
		}
	})
	if res.Outcome != workflows.OutcomeAborted {
		t.Fatalf("outcome %s (%s); want aborted by the cancellation", res.Outcome, res.Reason)
	}
	return workflows.DeployID(res.Service, res.Version)
}

func drillRecovered(t *testing.T, env *devenv.Env) string {
	id, rec := recordDrill(t, env, harness.DrillSpec(t, env, "region-failover"), drills.ModeAutomated)
	if rec.Outcome != ledger.OutcomeRecovered {
		t.Fatalf("outcome %s: %s", rec.Outcome, rec.Reason)
	}
	return id
}

func drillGuardrailAbort(t *testing.T, env *devenv.Env) string {
	spec := harness.DrillSpec(t, env, "region-failover")
	spec.Guardrails.Checks[0].Max = harness.Ptr(0.2)
	spec.Guardrails.Checks[0].For = time.Second
	id, rec := recordDrill(t, env, spec, drills.ModeGameday)
	if rec.Outcome != ledger.OutcomeAborted || !strings.Contains(rec.Reason, "guardrail") {
		t.Fatalf("outcome %s: %s", rec.Outcome, rec.Reason)
	}
	return id
}

func failover(t *testing.T, env *devenv.Env) string {
	id, rec := recordDrill(t, env, harness.DrillSpec(t, env, "region-failover"), drills.ModeAutomated)
	if rec.Outcome != ledger.OutcomeRecovered {
		t.Fatalf("outcome %s: %s", rec.Outcome, rec.Reason)
	}
	_, children, err := harness.TreeCompletions(context.Background(), env.Client, id)
	if err != nil || len(children) == 0 {
		t.Fatalf("the drill ran no Failover child (%v)", err)
	}
	return children[0] // the evacuation
}

func recordDeploy(t *testing.T, env *devenv.Env, during func(id string)) workflows.DeployResult {
	t.Helper()
	run := harness.StartDeploy(t, env, harness.DeploySpec(t, env), "v2", "replay-recording")
	if during != nil {
		during(run.GetID())
	}
	res, _ := harness.DeployResultOf(t, run, 3*time.Minute)
	return res
}

func recordDrill(t *testing.T, env *devenv.Env, spec drills.Spec, mode string) (string, ledger.Record) {
	t.Helper()
	run := harness.StartDrill(t, env, spec, mode, "replay-recording")
	rec, _ := harness.DrillRecordOf(t, run, 3*time.Minute)
	return run.GetID(), rec
}

// TestRecordHistories records the missing testdata/*.json; it only runs
// when asked to.
func TestRecordHistories(t *testing.T) {
	if !*record && os.Getenv("DRILLSHIP_RECORD_HISTORIES") != "1" {
		t.Skip("re-record with -record or DRILLSHIP_RECORD_HISTORIES=1")
	}
	for file, run := range recordedHistories {
		t.Run(file, func(t *testing.T) {
			if _, err := os.Stat(filepath.Join("testdata", file)); err == nil {
				t.Skipf("testdata/%s exists: recorded histories are kept, not re-recorded", file)
			}
			env := harness.Start(t, false)
			id := run(t, env)
			writeHistory(t, env.Client, id, filepath.Join("testdata", file))
		})
	}
}

func writeHistory(t *testing.T, c client.Client, id, path string) {
	t.Helper()
	h := &historypb.History{}
	it := c.GetWorkflowHistory(context.Background(), id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		h.Events = append(h.Events, ev)
	}
	last := h.Events[len(h.Events)-1].GetEventType()
	// A run that did not end as hoped ends failed with its record (a
	// rollback, an abort): as much a history to keep as a completed one.
	if last != enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED && last != enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED {
		t.Fatalf("%s ended with %s; only finished runs are recorded", id, last)
	}
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded %s: %d events", path, len(h.Events))
}

// newReplayer registers the workflows under the names the worker uses
// (worker.Register).
func newReplayer() sdkworker.WorkflowReplayer {
	r := sdkworker.NewWorkflowReplayer()
	r.RegisterWorkflowWithOptions(workflows.Deploy, workflow.RegisterOptions{Name: "Deploy"})
	r.RegisterWorkflowWithOptions(workflows.Drill, workflow.RegisterOptions{Name: "Drill"})
	r.RegisterWorkflowWithOptions(workflows.Failover, workflow.RegisterOptions{Name: "Failover"})
	return r
}

func TestReplayRecordedHistories(t *testing.T) {
	logger := sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for name := range recordedHistories {
		if !slices.Contains(files, filepath.Join("testdata", name)) {
			t.Errorf("testdata/%s missing (record it with: go test ./test/replay -run TestRecordHistories -args -record)", name)
		}
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			h, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if len(h.Events) < 10 {
				t.Fatalf("%s holds %d events; a real run has many more", path, len(h.Events))
			}
			// The drill names its children after its own workflow id, so the
			// replay runs under the recorded id rather than the default one.
			started := h.Events[0].GetWorkflowExecutionStartedEventAttributes()
			opts := sdkworker.ReplayWorkflowHistoryOptions{OriginalExecution: workflow.Execution{
				ID: started.GetWorkflowId(), RunID: started.GetOriginalExecutionRunId(),
			}}
			if opts.OriginalExecution.ID == "" {
				t.Fatalf("%s: the first event does not name the workflow id", path)
			}
			if err := newReplayer().ReplayWorkflowHistoryWithOptions(logger, h, opts); err != nil {
				t.Fatalf("replaying %s against the current workflow code: %v", path, err)
			}
		})
	}
}
