package test

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
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

	"github.com/drillship/drillship/cli"
	"github.com/drillship/drillship/devenv"
	"github.com/drillship/drillship/drills"
	"github.com/drillship/drillship/ledger"
	"github.com/drillship/drillship/workflows"
)

// Recorded histories of real runs are replayed against the current workflow
// code on every test run: a change that would break running workflows (an
// activity added, removed or reordered without workflow.GetVersion) fails
// here instead of in production.
//
// Re-record after an intended, versioned change with
//
//	go test ./test -run TestRecordHistories -args -record
//
// (or DRILLSHIP_RECORD_HISTORIES=1).

var record = flag.Bool("record", false, "re-record test/testdata/*.json histories from real runs on the embedded server")

// recordedHistories is every history the replay test expects, by file.
var recordedHistories = map[string]func(t *testing.T, env *devenv.Env) (id string){
	"deploy-promoted.json": func(t *testing.T, env *devenv.Env) string {
		res := recordDeploy(t, env, nil)
		if res.Outcome != workflows.OutcomePromoted {
			t.Fatalf("outcome %s: %s", res.Outcome, res.Reason)
		}
		return workflows.DeployID(res.Service, res.Version)
	},
	"deploy-rolled-back.json": func(t *testing.T, env *devenv.Env) string {
		postJSON(t, env.LocalURL()+"/api/faults", map[string]any{"kind": "bad_version", "params": map[string]string{"version": "v2", "rate": "0.1"}})
		res := recordDeploy(t, env, nil)
		if res.Outcome != workflows.OutcomeRolledBack {
			t.Fatalf("outcome %s: %s", res.Outcome, res.Reason)
		}
		return workflows.DeployID(res.Service, res.Version)
	},
	"deploy-paused-resumed.json": func(t *testing.T, env *devenv.Env) string {
		res := recordDeploy(t, env, func(id string) {
			waitPhase(t, env.Client, id, "watching")
			update(t, env.Client, id, workflows.UpdatePause)
			waitPhase(t, env.Client, id, "paused")
			update(t, env.Client, id, workflows.UpdateResume)
		})
		if res.Outcome != workflows.OutcomePromoted || len(res.Audit) != 2 || res.Audit[0].Action != "pause" || res.Audit[1].Action != "resume" {
			t.Fatalf("outcome %s (%s), audit %+v; want promoted after pause and resume", res.Outcome, res.Reason, res.Audit)
		}
		return workflows.DeployID(res.Service, res.Version)
	},
	"drill-recovered.json": func(t *testing.T, env *devenv.Env) string {
		id, rec := recordDrill(t, env, drillSpec(t, env), drills.ModeAutomated)
		if rec.Outcome != ledger.OutcomeRecovered {
			t.Fatalf("outcome %s: %s", rec.Outcome, rec.Reason)
		}
		return id
	},
	"drill-guardrail-abort.json": func(t *testing.T, env *devenv.Env) string {
		spec := drillSpec(t, env)
		spec.Guardrails.Checks[0].Max = ptr(0.2)
		spec.Guardrails.Checks[0].For = time.Second
		id, rec := recordDrill(t, env, spec, drills.ModeGameday)
		if rec.Outcome != ledger.OutcomeAborted || !strings.Contains(rec.Reason, "guardrail") {
			t.Fatalf("outcome %s: %s", rec.Outcome, rec.Reason)
		}
		return id
	},
	"failover.json": func(t *testing.T, env *devenv.Env) string {
		id, rec := recordDrill(t, env, drillSpec(t, env), drills.ModeAutomated)
		if rec.Outcome != ledger.OutcomeRecovered {
			t.Fatalf("outcome %s: %s", rec.Outcome, rec.Reason)
		}
		_, children, err := treeCompletions(context.Background(), env.Client, id)
		if err != nil || len(children) == 0 {
			t.Fatalf("the drill ran no Failover child (%v)", err)
		}
		return children[0] // the evacuation
	},
}

func recordDeploy(t *testing.T, env *devenv.Env, during func(id string)) workflows.DeployResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run, err := cli.StartDeploy(ctx, env.Client, workflows.DeployInput{Spec: deploySpec(t, env), Version: "v2", RequestedBy: "replay-recording"})
	if err != nil {
		t.Fatal(err)
	}
	if during != nil {
		during(run.GetID())
	}
	var res workflows.DeployResult
	if err := run.Get(ctx, &res); err != nil {
		t.Fatal(err)
	}
	return res
}

func recordDrill(t *testing.T, env *devenv.Env, spec drills.Spec, mode string) (string, ledger.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run, err := cli.StartDrill(ctx, env.Client, workflows.DrillInput{Spec: spec, Mode: mode, RequestedBy: "replay-recording"})
	if err != nil {
		t.Fatal(err)
	}
	var rec ledger.Record
	if err := run.Get(ctx, &rec); err != nil {
		t.Fatal(err)
	}
	return run.GetID(), rec
}

func update(t *testing.T, c client.Client, id, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: id, UpdateName: name, Args: []any{workflows.Command{Who: "replay-recording", Reason: "recording " + name}},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		t.Fatalf("update %s: %v", name, err)
	}
	if err := h.Get(ctx, nil); err != nil {
		t.Fatalf("update %s: %v", name, err)
	}
}

// TestRecordHistories re-records test/testdata/*.json; it only runs when
// asked to.
func TestRecordHistories(t *testing.T) {
	if !*record && os.Getenv("DRILLSHIP_RECORD_HISTORIES") != "1" {
		t.Skip("re-record with -record or DRILLSHIP_RECORD_HISTORIES=1")
	}
	for file, run := range recordedHistories {
		t.Run(file, func(t *testing.T) {
			env := start(t, false)
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
	if last != enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED {
		t.Fatalf("%s ended with %s; only completed runs are recorded", id, last)
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
	for file := range recordedHistories {
		t.Run(file, func(t *testing.T) {
			path := filepath.Join("testdata", file)
			f, err := os.Open(path)
			if err != nil {
				t.Fatalf("%v (record it with: go test ./test -run TestRecordHistories -args -record)", err)
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
