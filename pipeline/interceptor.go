package pipeline

import (
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/workflow"

	"github.com/drillship/drillship/ledger"
	"github.com/drillship/drillship/workflows"
)

// Interceptor records each deploy and drill as its workflow returns (see
// the package comment for why here). Add it to the worker's interceptors.
func (m *Metrics) Interceptor() interceptor.WorkerInterceptor { return &recorder{m: m} }

type recorder struct {
	interceptor.WorkerInterceptorBase
	m *Metrics
}

func (r *recorder) InterceptWorkflow(ctx workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	w := &workflowRecorder{m: r.m}
	w.Next = next
	return w
}

type workflowRecorder struct {
	interceptor.WorkflowInboundInterceptorBase
	m *Metrics
}

func (w *workflowRecorder) ExecuteWorkflow(ctx workflow.Context, in *interceptor.ExecuteWorkflowInput) (any, error) {
	if workflow.GetInfo(ctx).WorkflowType.Name == "Deploy" && len(in.Args) == 1 {
		if di, ok := in.Args[0].(workflows.DeployInput); ok {
			// Zero series before the first observation: increase() over a
			// window cannot see a series' first sample, so without them a
			// service's first rollback would never reach the quantiles.
			w.m.touch(di.Spec.Service, di.Spec.Environment)
		}
	}
	res, err := w.Next.ExecuteWorkflow(ctx, in)
	// A replay returns what the first execution already recorded. The
	// record is read from the returned value, or from the error's details
	// for runs that ended failed (rolled back, aborted, refused).
	if workflow.IsReplaying(ctx) {
		return res, err
	}
	switch workflow.GetInfo(ctx).WorkflowType.Name {
	case "Deploy":
		if rec, ok := recordOf[workflows.DeployResult](res, err); ok {
			w.m.ObserveDeploy(rec)
		}
	case "Drill":
		if rec, ok := recordOf[ledger.Record](res, err); ok {
			w.m.ObserveDrill(rec)
		}
	}
	return res, err
}

// recordOf is the run's record: the result when it completed, else the
// details of the error it failed with; false when it has none (a panic, a
// continue-as-new, a cancellation before any record).
func recordOf[T any](res any, err error) (T, bool) {
	var rec T
	if err != nil {
		return rec, workflows.RecordOf(err, &rec)
	}
	switch v := res.(type) {
	case T:
		return v, true
	case *T:
		if v != nil {
			return *v, true
		}
	}
	return rec, false
}
