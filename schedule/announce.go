package schedule

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/drillship/drillship/drills"
	"github.com/drillship/drillship/policy"
	"github.com/drillship/drillship/workflows"
)

// announce starts (or replaces) the announcer of schedule id when the
// policy's notifications give lead times; without them, an announcer left
// from an earlier `schedule create` is stopped. The announcer ends by
// itself once the schedule is deleted.
func announce(ctx context.Context, c client.Client, id string, spec *drills.Spec, zone string, pol *policy.Policy) error {
	wid := workflows.AnnouncerID(id)
	if pol == nil || pol.Notifications == nil || len(pol.Notifications.Announce) == 0 {
		return stopAnnouncer(ctx, c, id, "the schedule was re-created without announcements")
	}
	_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: wid, TaskQueue: workflows.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_TERMINATE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		StaticSummary:            "Announces the drills of " + id + " ahead of time",
	}, "DrillAnnouncer", workflows.AnnounceInput{ScheduleID: id, Drill: spec.Name, Environment: spec.Environment,
		Description: spec.Description, Zone: zone, Config: *pol.Notifications})
	if err != nil {
		return fmt.Errorf("start the announcer of %s: %w", id, err)
	}
	return nil
}

// stopAnnouncer ends the announcer of schedule id, if one runs.
func stopAnnouncer(ctx context.Context, c client.Client, id, why string) error {
	err := c.TerminateWorkflow(ctx, workflows.AnnouncerID(id), "", why)
	var nf *serviceerror.NotFound
	if err != nil && !errors.As(err, &nf) {
		return fmt.Errorf("stop the announcer of %s: %w", id, err)
	}
	return nil
}
