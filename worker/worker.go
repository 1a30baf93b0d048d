// Package worker builds drillship's Temporal worker: the workflows, the
// activities over a provider registry, and the client it polls with.
package worker

import (
	"time"

	"log/slog"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/lease"
	"github.com/drillship/drillship/notify"
	"github.com/drillship/drillship/workflows"
)

// Options tune a worker.
type Options struct {
	TaskQueue string // default workflows.TaskQueue
	// Concurrency limits; zero keeps the SDK defaults.
	MaxActivities int
	MaxWorkflows  int
	// Interceptors are added after drillship's own (pipeline metrics).
	Interceptors []interceptor.WorkerInterceptor
	// LocalEnvURL is the local environment's control URL, where the
	// policy's `local` incident provider asks.
	LocalEnvURL string
}

// Register adds every workflow and the activities over reg to w.
func Register(w sdkworker.Registry, acts *activities.Activities) {
	w.RegisterWorkflowWithOptions(workflows.Deploy, workflow.RegisterOptions{Name: "Deploy"})
	w.RegisterWorkflowWithOptions(workflows.Drill, workflow.RegisterOptions{Name: "Drill"})
	w.RegisterWorkflowWithOptions(workflows.Failover, workflow.RegisterOptions{Name: "Failover"})
	w.RegisterActivityWithOptions(acts, activity.RegisterOptions{})
	// Notifications: sent by the workflows without waiting on them.
	w.RegisterActivityWithOptions(&notify.Activities{}, activity.RegisterOptions{})
	w.RegisterWorkflowWithOptions(workflows.DrillAnnouncer, workflow.RegisterOptions{Name: "DrillAnnouncer"})
}

// New returns a worker for c over the providers in reg; start it with Run
// or Start.
func New(c client.Client, reg *activities.Registry, logger *slog.Logger, o Options) (sdkworker.Worker, *activities.Activities) {
	if o.TaskQueue == "" {
		o.TaskQueue = workflows.TaskQueue
	}
	wo := sdkworker.Options{
		MaxConcurrentActivityExecutionSize:     o.MaxActivities,
		MaxConcurrentWorkflowTaskExecutionSize: o.MaxWorkflows,
		Interceptors:                           append([]interceptor.WorkerInterceptor{&keepalive{}}, o.Interceptors...),
		// Heartbeats carry the watch's samples and bring cancellations back:
		// sent at most a second apart, a crash loses at most a second of
		// samples and a held canary's watch stops within a second of the
		// hold ending.
		DefaultHeartbeatThrottleInterval: time.Second,
		MaxHeartbeatThrottleInterval:     time.Second,
	}
	w := sdkworker.New(c, o.TaskQueue, wo)
	acts := activities.New(reg, logger)
	acts.LocalEnvURL = o.LocalEnvURL
	Register(w, acts)
	// The lock workflows behind "one deploy per target" and the activities
	// the deploy and drill workflows take their leases with.
	lease.Register(w, c)
	// The drill announcer reads the schedules' next run times.
	w.RegisterActivity(&notify.Schedules{Client: c})
	return w, acts
}
