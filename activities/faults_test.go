package activities

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// startedThenFailed is a provider whose fault was created and then did not
// take effect: it returns the handle with the error.
type startedThenFailed struct{}

func (startedThenFailed) Inject(context.Context, Fault) (string, error) {
	return "exp-1", Permanent(errors.New("experiment exp-1 failed: targets not found"))
}

func (startedThenFailed) Stop(context.Context, Fault, string) (StopResult, error) {
	return StopResult{}, nil
}

// A workflow gets the handle of a failed inject back from the activity's
// error, through Temporal's failure conversion (before, InjectFault returned
// an empty result with the error and the handle was lost).
func TestHandleOfFailedInjectReachesWorkflow(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	a := New(NewRegistry(Provider{Name: "p", Faults: func(map[string]any) (Faults, error) { return startedThenFailed{}, nil }}), nil)
	env.RegisterActivity(a)
	injectOnce := func(ctx workflow.Context) (string, error) {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute,
			RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 3}})
		err := workflow.ExecuteActivity(ctx, a.InjectFault, FaultInput{Target: Target{Provider: "p"}, Fault: Fault{Kind: "experiment", Owner: "wf"}}).Get(ctx, nil)
		if err == nil {
			return "", errors.New("inject succeeded")
		}
		return HandleOf(err), nil
	}
	env.RegisterWorkflow(injectOnce)
	env.ExecuteWorkflow(injectOnce)
	var h string
	if err := env.GetWorkflowResult(&h); err != nil {
		t.Fatal(err)
	}
	if h != "exp-1" {
		t.Fatalf("handle from the failed inject = %q, want exp-1", h)
	}
	if HandleOf(errors.New("other")) != "" || HandleOf(nil) != "" {
		t.Fatal("HandleOf of an error without a handle is not empty")
	}
}
