package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/analysis"
	"github.com/drillship/drillship/bench/noop"
	"github.com/drillship/drillship/deploys"
	"github.com/drillship/drillship/devenv"
	"github.com/drillship/drillship/lease"
	"github.com/drillship/drillship/specfile"
	"github.com/drillship/drillship/worker"
	"github.com/drillship/drillship/workflows"
)

var quiet = slog.New(slog.DiscardHandler)

// noopStack is the embedded server with the bench's own worker: the real
// Deploy, Drill and Failover workflows and activities over a registry of only
// the bench no-op provider, plus the floor.
type noopStack struct {
	env   *devenv.Env
	w     sdkworker.Worker
	store *noop.Store
}

func startNoopStack(ctx context.Context) (*noopStack, error) {
	env, err := devenv.Start(ctx, devenv.Options{NoWorker: true, NoLocal: true})
	if err != nil {
		return nil, err
	}
	s := &noopStack{env: env, store: noop.NewStore()}
	s.w = sdkworker.New(env.Client, workflows.TaskQueue, sdkworker.Options{})
	worker.Register(s.w, activities.New(activities.NewRegistry(s.store.Provider()), quiet))
	lease.Register(s.w, env.Client) // deploys take their lease
	RegisterFloor(s.w)
	if err := s.w.Start(); err != nil {
		env.Close()
		return nil, fmt.Errorf("start bench worker: %w", err)
	}
	return s, nil
}

func (s *noopStack) Close() {
	s.w.Stop()
	s.env.Close()
}

// noopDeploySpec is a deploy on the bench provider in scope: steps at the
// given weights each watched for window, a bake of window, sampled every
// interval. The signals answer 0 for every metric, so it promotes.
func noopDeploySpec(scope string, weights []int, window, interval time.Duration) (deploys.Spec, error) {
	cfg := map[string]any{"scope": scope}
	maxErr := 0.05
	s := deploys.Spec{
		Service: "bench", Environment: "bench",
		Traffic: activities.Target{Provider: noop.Name, Config: cfg},
		Release: activities.Target{Provider: noop.Name, Config: cfg},
		Analysis: deploys.Analysis{
			Target:   activities.Target{Provider: noop.Name},
			Interval: specfile.Duration(interval),
			Metrics:  []analysis.Metric{{Name: "error-rate", Metric: activities.MetricErrorRate, Window: specfile.Duration(time.Second), Max: &maxErr}},
		},
		Bake: specfile.Duration(window),
	}
	for _, w := range weights {
		s.Steps = append(s.Steps, deploys.Step{Weight: w, Pause: specfile.Duration(window)})
	}
	err := s.Validate(activities.NewRegistry(noop.Provider()))
	return s, err
}

// startDeploy starts a Deploy as `drillship deploy start` does (cli.StartDeploy:
// same id, task queue and search attributes); bench cannot import cli, which
// imports bench.
func startDeploy(ctx context.Context, c client.Client, in workflows.DeployInput) (client.WorkflowRun, error) {
	return c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       workflows.DeployID(in.Spec.Service, in.Version),
		TaskQueue:                workflows.TaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		StaticSummary:            fmt.Sprintf("Deploy %s %s to %s", in.Spec.Service, in.Version, in.Spec.Environment),
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.AttrKind.ValueSet("deploy"), workflows.AttrService.ValueSet(in.Spec.Service),
			workflows.AttrVersion.ValueSet(in.Version), workflows.AttrEnvironment.ValueSet(in.Spec.Environment)),
	}, "Deploy", in)
}

// startDrill starts a Drill as cli.StartDrill does, with an id of its own so
// that two drills in the same second do not collide.
func startDrill(ctx context.Context, c client.Client, id string, in workflows.DrillInput) (client.WorkflowRun, error) {
	return c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:            id,
		TaskQueue:     workflows.TaskQueue,
		StaticSummary: fmt.Sprintf("Drill %s (%s, %s)", in.Spec.Name, in.Mode, in.Spec.Environment),
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.AttrKind.ValueSet("drill"), workflows.AttrScenario.ValueSet(in.Spec.Name),
			workflows.AttrEnvironment.ValueSet(in.Spec.Environment)),
	}, "Drill", in)
}

// historyCount is what one workflow's history holds.
type historyCount struct {
	Events     int      `json:"events"`
	Activities []string `json:"activities"` // activity types scheduled, in order
	Timers     int      `json:"timers"`
	Children   []string `json:"children,omitempty"` // child workflow ids
	childRuns  []client.WorkflowRun
}

// countHistory reads a closed workflow's history and counts its events.
func countHistory(ctx context.Context, c client.Client, id, runID string) (historyCount, error) {
	var h historyCount
	it := c.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return h, fmt.Errorf("history of %s: %w", id, err)
		}
		h.Events++
		switch e.EventType {
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			h.Activities = append(h.Activities, e.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName())
		case enumspb.EVENT_TYPE_TIMER_STARTED:
			h.Timers++
		case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
			ex := e.GetChildWorkflowExecutionStartedEventAttributes().GetWorkflowExecution()
			h.Children = append(h.Children, ex.GetWorkflowId())
			h.childRuns = append(h.childRuns, c.GetWorkflow(ctx, ex.GetWorkflowId(), ex.GetRunId()))
		}
	}
	return h, nil
}

// countWithChildren adds the children's events to the parent's.
func countWithChildren(ctx context.Context, c client.Client, id, runID string) (parent historyCount, total int, err error) {
	parent, err = countHistory(ctx, c, id, runID)
	if err != nil {
		return parent, 0, err
	}
	total = parent.Events
	for _, run := range parent.childRuns {
		ch, err := countHistory(ctx, c, run.GetID(), run.GetRunID())
		if err != nil {
			return parent, 0, err
		}
		total += ch.Events
	}
	return parent, total, nil
}

// localPost and localGet talk to the local environment's control API.
func localPost(ctx context.Context, url string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return doJSON(req, out)
}

func localGet(ctx context.Context, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	return doJSON(req, out)
}

func doJSON(req *http.Request, out any) error {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return fmt.Errorf("%s %s: %s: %s", req.Method, req.URL, resp.Status, e.Error)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", req.Method, req.URL, err)
	}
	return nil
}
