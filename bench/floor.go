package bench

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// Names the floor is registered under.
const (
	FloorWorkflow = "BenchFloor"
	FloorActivity = "BenchFloorStep"
)

// FloorInput lists the activities the floor runs, by the type of the
// activity each stands in for ("SetWeights", ...), in order.
type FloorInput struct {
	Kinds []string `json:"kinds"`
}

// Floor is the least a workflow can do to run the same activities as a
// deploy: one after another, with the deploy's activity options, each a
// no-op. A deploy's duration over the floor's is what drillship's own
// orchestration (phases, search attributes, queries, decisions) costs.
func Floor(ctx workflow.Context, in FloorInput) (int, error) {
	for _, kind := range in.Kinds {
		ao := workflow.ActivityOptions{
			// The same options as the deploy's activities (workflows.opts).
			StartToCloseTimeout: 2 * time.Minute,
			Summary:             "floor: " + kind,
			RetryPolicy: &temporal.RetryPolicy{
				InitialInterval: 200 * time.Millisecond, BackoffCoefficient: 2,
				MaximumInterval: 30 * time.Second, MaximumAttempts: 10,
			},
		}
		if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, ao), FloorActivity, kind).Get(ctx, nil); err != nil {
			return 0, err
		}
	}
	return len(in.Kinds), nil
}

// FloorStep does nothing but answer, as the real activities answer with a
// timestamp.
func FloorStep(_ context.Context, _ string) (int64, error) {
	return time.Now().UnixMilli(), nil
}

// RegisterFloor adds the floor workflow and its activity to w.
func RegisterFloor(w sdkworker.Registry) {
	w.RegisterWorkflowWithOptions(Floor, workflow.RegisterOptions{Name: FloorWorkflow})
	w.RegisterActivityWithOptions(FloorStep, activity.RegisterOptions{Name: FloorActivity})
}
