package worker

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
)

// selfBeating activities record their own heartbeats, with progress that a
// retry resumes from; a keepalive would overwrite it.
var selfBeating = map[string]bool{"Watch": true, "WaitFor": true, "Guard": true, "Workload": true}

// keepalive heartbeats every other activity while it runs. Provider calls
// may block for minutes in an SDK waiter (ECS steady state, Route 53
// INSYNC); with a heartbeat their start-to-close timeout can be long while a
// crashed worker is still noticed within the heartbeat timeout.
type keepalive struct {
	interceptor.WorkerInterceptorBase
}

func (*keepalive) InterceptActivity(ctx context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	a := &keepaliveActivity{}
	a.Next = next
	return a
}

type keepaliveActivity struct {
	interceptor.ActivityInboundInterceptorBase
}

func (a *keepaliveActivity) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	info := activity.GetInfo(ctx)
	if info.HeartbeatTimeout <= 0 || selfBeating[info.ActivityType.Name] {
		return a.Next.ExecuteActivity(ctx, in)
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(max(info.HeartbeatTimeout/3, 100*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx)
			}
		}
	}()
	return a.Next.ExecuteActivity(ctx, in)
}
