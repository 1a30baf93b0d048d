package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/drillship/drillship/activities"
)

// FailoverInput moves traffic between regions and verifies the result.
type FailoverInput struct {
	Traffic activities.Target  `json:"traffic"`
	Signals activities.Target  `json:"signals"`
	Weights activities.Weights `json:"weights"`
	Verify  []activities.Check `json:"verify,omitempty"`
	Timeout time.Duration      `json:"timeout,omitempty"`
	// Interval between verification samples.
	Interval time.Duration `json:"interval,omitempty"`
}

// FailoverResult says when traffic moved and when it was seen healthy.
type FailoverResult struct {
	StartedAt  int64              `json:"startedAt"`
	ShiftedAt  int64              `json:"shiftedAt"`
	VerifiedAt int64              `json:"verifiedAt,omitempty"`
	Weights    activities.Weights `json:"weights"`
	Attempts   int32              `json:"attempts"`
	Detail     string             `json:"detail,omitempty"`
	// Gaps: times no worker ran the verification (a crash).
	Gaps []activities.Gap `json:"gaps,omitempty"`
}

// Failover evacuates a region or fails back: it sets the weights and then
// waits until the verification checks hold. Drills run it as a child; a
// deploy pipeline can run it the same way to take a region out first.
func Failover(ctx workflow.Context, in FailoverInput) (FailoverResult, error) {
	var a *activities.Activities
	res := FailoverResult{StartedAt: workflow.Now(ctx).UnixMilli()}
	ao := opts("Set weights "+activities.FormatWeights(in.Weights), 20)
	ao.RetryPolicy.MaximumInterval = 10 * time.Second
	var wr activities.WeightsResult
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, ao), a.SetWeights,
		activities.WeightsInput{Target: in.Traffic, Weights: in.Weights}).Get(ctx, &wr)
	if err != nil {
		return res, err
	}
	res.ShiftedAt, res.Weights, res.Attempts = wr.At, wr.Weights, wr.Attempt
	if len(in.Verify) == 0 {
		return res, nil
	}
	timeout := in.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	wo := opts("Verify "+activities.FormatWeights(in.Weights), 3)
	wo.StartToCloseTimeout = timeout + time.Minute
	wo.HeartbeatTimeout = beatFor(in.Interval)
	var vr activities.WaitResult
	err = workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, wo), a.WaitFor, activities.WaitInput{
		ChecksInput: activities.ChecksInput{Signals: in.Signals, Checks: in.Verify},
		Until:       activities.UntilAllPass, Interval: in.Interval, Timeout: timeout,
	}).Get(ctx, &vr)
	res.Gaps = vr.Gaps
	if err != nil {
		return res, err
	}
	res.Detail = vr.Detail
	if !vr.Met {
		return res, temporal.NewApplicationError(fmt.Sprintf("weights %s set, but verification did not hold within %s: %s",
			activities.FormatWeights(in.Weights), timeout, vr.Detail), "VerifyFailed")
	}
	res.VerifiedAt = vr.At
	return res, nil
}
