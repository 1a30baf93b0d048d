package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	ucli "github.com/urfave/cli/v2"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/audit"
	"github.com/drillship/drillship/deploys"
	"github.com/drillship/drillship/dora"
	"github.com/drillship/drillship/lease"
	"github.com/drillship/drillship/workflows"
)

func deployCommand() *ucli.Command {
	idArg := func(name, usage string, update string, extra ...ucli.Flag) *ucli.Command {
		return &ucli.Command{
			Name: name, Usage: usage, ArgsUsage: "<deploy-id>",
			Flags: withClientFlags(append([]ucli.Flag{whoFlag, &ucli.StringFlag{Name: "reason", Usage: "why, for the audit record"}, outputFlag}, extra...)...),
			Action: func(c *ucli.Context) error {
				id, err := oneArg(c, "deploy id (see `drillship deploy list`)")
				if err != nil {
					return err
				}
				return sendUpdate(c, id, update, workflows.Command{Who: c.String("who"), Reason: c.String("reason"), Incident: c.String("incident")})
			},
		}
	}
	return &ucli.Command{
		Name:  "deploy",
		Usage: "canary deploys that watch SLIs before they promote",
		Subcommands: []*ucli.Command{
			deployStart(),
			deployValidate(),
			deployInit(),
			deployStatus(),
			idArg("approve", "approve the step or promotion a deploy waits for", workflows.UpdateApprove),
			idArg("pause", "hold a deploy at its current weight (the canary stays watched)", workflows.UpdatePause),
			idArg("resume", "resume a paused deploy", workflows.UpdateResume),
			idArg("abort", "abort: traffic back to stable, canary stopped", workflows.UpdateAbort),
			idArg("rollback", "fast-track a rollback: skip the remaining analysis and pauses", workflows.UpdateRollback),
			idArg("break-glass", "promote to 100% now, skipping analysis and approvals (needs --reason; a policy may require --incident)", workflows.UpdateBreakGlass,
				&ucli.StringFlag{Name: "incident", Usage: "the incident in progress this is for (verified open when the deploy's policy has an incident provider)"}),
			deployList(),
			deployStats(),
			deployMarkFailed(),
		},
	}
}

func oneArg(c *ucli.Context, what string) (string, error) {
	if c.NArg() != 1 {
		return "", usageErr("%s: expected one argument, the %s; got %d", c.Command.FullName(), what, c.NArg())
	}
	return c.Args().First(), nil
}

func deployStart() *ucli.Command {
	return &ucli.Command{
		Name: "start", Usage: "start a canary deploy from a spec", ArgsUsage: "<spec.yaml | shipped name>",
		Flags: withClientFlags(
			&ucli.StringFlag{Name: "version", Usage: "the version to deploy (required)"},
			&ucli.BoolFlag{Name: "wait", Usage: "watch it live until it ends; exit 3 unless promoted"},
			&ucli.StringFlag{Name: "commit-time", Usage: "RFC 3339 time of the commit, for lead time"},
			whoFlag, outputFlag, localFlag, onlineFlag,
			// Release policy (cli/policy.go).
			policyFlag(),
			&ucli.BoolFlag{Name: "hotfix", Usage: "a hotfix: passes freezes and budget thresholds that allow hotfixes; recorded"},
			&ucli.StringFlag{Name: "reason", Usage: "why (a hotfix's or a break-glass's justification, for the audit log)"},
			&ucli.StringFlag{Name: "incident", Usage: "incident ID: break glass past a policy refusal (needs --reason; the incident must be open)"},
		),
		Action: func(c *ucli.Context) error {
			version, err := versionFlagValue(c)
			if err != nil {
				return err
			}
			path, err := oneArg(c, "deploy spec")
			if err != nil {
				return err
			}
			asJSON, err := jsonOut(c)
			if err != nil {
				return err
			}
			// The same checks as deploy validate, online ones included when
			// the world is reachable: nothing starts on a spec they refuse.
			spec, _, err := deploys.LoadChecked(c.Context, path, registry(c), online(c), version)
			if err != nil {
				return specErr(err)
			}
			in := workflows.DeployInput{Spec: *spec, Version: version, RequestedBy: c.String("who"),
				Hotfix: c.Bool("hotfix"), Reason: c.String("reason"), Incident: c.String("incident")}
			pol, err := findPolicy(c)
			if err != nil {
				return err
			}
			if pol != nil {
				if err := policyGate(c, pol, spec, in.Hotfix); err != nil {
					return err
				}
				in.Policy = pol
			}
			if ct := c.String("commit-time"); ct != "" {
				t, err := time.Parse(time.RFC3339, ct)
				if err != nil {
					return usageErr("--commit-time: %q is not an RFC 3339 time (2026-11-23T10:00:00Z)", ct)
				}
				in.CommitTime = t.UnixMilli()
			}
			cl, err := dial(c)
			if err != nil {
				return err
			}
			defer cl.Close()
			run, err := StartDeploy(c.Context, cl, in)
			if err != nil {
				return err
			}
			return follow(c, cl, run, asJSON, "drillship deploy status "+run.GetID(), WaitDeploy, printDeployResult,
				func(r workflows.DeployResult) bool { return r.Outcome == workflows.OutcomePromoted })
		},
	}
}

// follow prints what was started, or with --wait waits with a live display,
// prints the result, and exits 3 unless ok says it went as hoped.
func follow[R any](c *ucli.Context, cl client.Client, run client.WorkflowRun, asJSON bool, hint string,
	wait func(context.Context, client.Client, client.WorkflowRun, io.Writer) (R, error), print func(io.Writer, R), ok func(R) bool) error {
	if !c.Bool("wait") {
		if asJSON {
			return printJSON(c.App.Writer, map[string]string{"id": run.GetID(), "runId": run.GetRunID()})
		}
		fmt.Fprintf(c.App.Writer, "started %s\n  next: %s\n", run.GetID(), hint)
		return nil
	}
	res, err := wait(c.Context, cl, run, progressWriter(c, asJSON))
	if err != nil {
		return err
	}
	if asJSON {
		if err := printJSON(c.App.Writer, res); err != nil {
			return err
		}
	} else {
		print(c.App.Writer, res)
	}
	if !ok(res) {
		return ucli.Exit("", ExitOutcome)
	}
	return nil
}

// StartDeploy starts a deploy workflow; a running deploy of the same version
// is an error rather than a second one.
func StartDeploy(ctx context.Context, cl client.Client, in workflows.DeployInput) (client.WorkflowRun, error) {
	id := workflows.DeployID(in.Spec.Service, in.Version)
	alreadyRunning := ucli.Exit(fmt.Sprintf("%s of %s is already being deployed (%s)", in.Version, in.Spec.Service, id), ExitUsage)
	if d, err := cl.DescribeWorkflowExecution(ctx, id, ""); err == nil &&
		d.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return nil, alreadyRunning
	}
	// One deploy per service and traffic target: the lease is taken for the
	// workflow id before the start (the workflow takes it again as its own).
	keys := lease.DeployKeys(in.Spec)
	if err := takeLease(ctx, cl, lease.AcquireInput{Keys: keys, Holder: id,
		What: fmt.Sprintf("deploy of %s %s", in.Spec.Service, in.Version)}); err != nil {
		return nil, err
	}
	run, err := cl.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       id,
		TaskQueue:                workflows.TaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		StaticSummary:            fmt.Sprintf("Deploy %s %s to %s", in.Spec.Service, in.Version, in.Spec.Environment),
		StaticDetails:            deployDetails(in),
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.AttrKind.ValueSet("deploy"), workflows.AttrService.ValueSet(in.Spec.Service),
			workflows.AttrVersion.ValueSet(in.Version), workflows.AttrEnvironment.ValueSet(in.Spec.Environment)),
	}, "Deploy", in)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		// The running one holds the lease: keep it.
		return nil, alreadyRunning
	}
	if err != nil {
		dropLease(ctx, cl, keys, id)
		return nil, fmt.Errorf("start deploy: %w", err)
	}
	return run, nil
}

func deployDetails(in workflows.DeployInput) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Canary deploy of **%s** version **%s** (%s).\n\n", in.Spec.Service, in.Version, in.Spec.Environment)
	for i, s := range in.Spec.Steps {
		fmt.Fprintf(&b, "%d. shift %d%%, watch %s", i+1, s.Weight, s.Pause)
		if s.Approval {
			b.WriteString(" (after approval)")
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "\nOn a failed judgement: %s. Bake at 100%%: %s. Artifacts kept: %d.", in.Spec.OnFailure, in.Spec.Bake, in.Spec.Artifacts.Keep)
	return b.String()
}

// progressWriter returns where live progress goes: stderr, so that stdout
// stays clean for --output json.
func progressWriter(c *ucli.Context, asJSON bool) io.Writer {
	if asJSON {
		return io.Discard
	}
	return c.App.ErrWriter
}

// WaitDeploy waits for a deploy to end, printing its progress to w.
func WaitDeploy(ctx context.Context, cl client.Client, run client.WorkflowRun, w io.Writer) (workflows.DeployResult, error) {
	return waitFor[workflows.DeployResult](ctx, cl, run, w, func(st workflows.DeployState) string {
		return progressLine(withLiveVerdicts(ctx, cl, run.GetID(), st))
	})
}

// withLiveVerdicts adds the verdicts of the window being watched now: the
// workflow learns them when the window ends, but the watch activity
// heartbeats each one as it is made.
func withLiveVerdicts(ctx context.Context, cl client.Client, id string, st workflows.DeployState) workflows.DeployState {
	desc, err := cl.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return st
	}
	for _, pa := range desc.PendingActivities {
		if pa.GetActivityType().GetName() != "Watch" || pa.HeartbeatDetails == nil {
			continue
		}
		var p activities.WatchProgress
		if converter.GetDefaultDataConverter().FromPayloads(pa.HeartbeatDetails, &p) == nil && len(p.Result.Last) > 0 {
			st.LastVerdicts = p.Result.Last
		}
	}
	return st
}

// waitFor waits for a workflow's result, printing a line from its state
// query to w whenever the line changes.
func waitFor[R, S any](ctx context.Context, cl client.Client, run client.WorkflowRun, w io.Writer, line func(S) string) (R, error) {
	done := make(chan error, 1)
	var res R
	go func() { done <- run.Get(ctx, &res) }()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	last := ""
	for {
		select {
		case err := <-done:
			// A run that did not end as hoped ends failed, its record in
			// the error's details.
			if err != nil && !workflows.RecordOf(err, &res) {
				return res, fmt.Errorf("%s: %w", run.GetID(), err)
			}
			return res, nil
		case <-tick.C:
			var st S
			v, err := cl.QueryWorkflow(ctx, run.GetID(), "", workflows.QueryState)
			if err != nil || v.Get(&st) != nil {
				continue
			}
			if l := line(st); l != last {
				fmt.Fprintln(w, l)
				last = l
			}
		}
	}
}

func queryDeploy(ctx context.Context, cl client.Client, id string) (workflows.DeployState, error) {
	var st workflows.DeployState
	v, err := cl.QueryWorkflow(ctx, id, "", workflows.QueryState)
	if err != nil {
		return st, err
	}
	return st, v.Get(&st)
}

func progressLine(st workflows.DeployState) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] step %d of %d  %s", st.Phase, st.Step, st.Steps, activities.FormatWeights(st.Weights))
	if st.WindowEndsAt > 0 {
		left := time.Until(time.UnixMilli(st.WindowEndsAt)).Round(time.Second)
		if left < 0 {
			left = 0
		}
		fmt.Fprintf(&b, "  window %s left", left)
	}
	if n := len(st.LastVerdicts); n > 0 {
		v := st.LastVerdicts[n-1]
		fmt.Fprintf(&b, "  last verdict %s", v.Outcome)
		for _, r := range v.Results {
			fmt.Fprintf(&b, " %s=%.4g", r.Name, r.Canary)
		}
	}
	if st.Waiting != "" {
		fmt.Fprintf(&b, "  waiting for %s", st.Waiting)
	}
	return b.String()
}

func printDeployResult(w io.Writer, r workflows.DeployResult) {
	fmt.Fprintf(w, "%s %s: %s in %s", r.Service, r.Version, r.Outcome, time.Duration(r.DurationMs)*time.Millisecond)
	if r.TimeToRollbackMs != nil {
		fmt.Fprintf(w, " (time to rollback %dms)", *r.TimeToRollbackMs)
	}
	fmt.Fprintln(w)
	if r.Reason != "" {
		fmt.Fprintf(w, "  reason: %s\n", r.Reason)
	}
	for _, s := range r.Steps {
		what := fmt.Sprintf("step %d", s.Step)
		if s.Kind == workflows.WatchBake {
			what = "bake"
		}
		fmt.Fprintf(w, "  %-7s %-6s %3d%%  %-12s  samples %d (%d conclusive), failed %d", what, s.Kind, s.Weight, s.Verdict, s.Samples, s.Conclusive, s.Failures)
		if s.UnobservedMs > 0 {
			fmt.Fprintf(w, ", unobserved %s (not counted)", time.Duration(s.UnobservedMs)*time.Millisecond)
		}
		fmt.Fprintln(w)
	}
	for _, f := range r.Findings {
		fmt.Fprintf(w, "  finding: %s\n", f)
	}
	fmt.Fprintf(w, "  final weights: %s\n", activities.FormatWeights(r.FinalWeights))
	for _, a := range r.Audit {
		fmt.Fprintf(w, "  audit: %s by %s at %s %s\n", a.Action, a.Who, time.UnixMilli(a.At).UTC().Format(time.RFC3339), a.Reason)
	}
	if len(r.Pruned) > 0 {
		fmt.Fprintf(w, "  pruned artifacts: %s\n", strings.Join(r.Pruned, ", "))
	}
}

func sendUpdate(c *ucli.Context, id, name string, cmd workflows.Command) error {
	cl, err := dial(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	h, err := cl.UpdateWorkflow(c.Context, client.UpdateWorkflowOptions{
		WorkflowID: id, UpdateName: name, Args: []any{cmd}, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			return ucli.Exit(fmt.Sprintf("%s: no running workflow with id %s", name, id), ExitUsage)
		}
		return ucli.Exit(fmt.Sprintf("%s refused: %v", name, err), ExitUsage)
	}
	var st any
	if err := h.Get(c.Context, &st); err != nil {
		return ucli.Exit(fmt.Sprintf("%s refused: %v", name, err), ExitUsage)
	}
	if asJSON, _ := jsonOut(c); asJSON {
		return printJSON(c.App.Writer, st)
	}
	fmt.Fprintf(c.App.Writer, "%s: %s accepted\n", id, name)
	return nil
}

func deployStatus() *ucli.Command {
	return &ucli.Command{
		Name: "status", Usage: "show a deploy's step, weights, last verdicts and outcome", ArgsUsage: "<deploy-id>",
		Flags: withClientFlags(outputFlag),
		Action: func(c *ucli.Context) error {
			id, err := oneArg(c, "deploy id")
			if err != nil {
				return err
			}
			asJSON, err := jsonOut(c)
			if err != nil {
				return err
			}
			cl, err := dial(c)
			if err != nil {
				return err
			}
			defer cl.Close()
			desc, err := cl.DescribeWorkflowExecution(c.Context, id, "")
			if err != nil {
				return ucli.Exit(fmt.Sprintf("deploy %s: %v", id, err), ExitUsage)
			}
			status := desc.WorkflowExecutionInfo.Status
			out := map[string]any{"id": id, "status": strings.ToLower(status.String())}
			if status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
				st, err := queryDeploy(c.Context, cl, id)
				if err != nil {
					return fmt.Errorf("query %s: %w", id, err)
				}
				st = withLiveVerdicts(c.Context, cl, id, st)
				out["state"] = st
				if asJSON {
					return printJSON(c.App.Writer, out)
				}
				fmt.Fprintf(c.App.Writer, "%s: running\n  %s\n", id, progressLine(st))
				if st.Reason != "" {
					fmt.Fprintf(c.App.Writer, "  reason: %s\n", st.Reason)
				}
				return nil
			}
			var res workflows.DeployResult
			if err := cl.GetWorkflow(c.Context, id, "").Get(c.Context, &res); err != nil && !workflows.RecordOf(err, &res) {
				out["error"] = err.Error()
				if asJSON {
					return printJSON(c.App.Writer, out)
				}
				fmt.Fprintf(c.App.Writer, "%s: %s: %v\n", id, out["status"], err)
				return nil
			}
			out["result"] = res
			if asJSON {
				return printJSON(c.App.Writer, out)
			}
			printDeployResult(c.App.Writer, res)
			return nil
		},
	}
}

func listWorkflows(ctx context.Context, cl client.Client, query string) ([]*listRow, error) {
	var rows []*listRow
	var token []byte
	for {
		resp, err := cl.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, NextPageToken: token, PageSize: 1000})
		if err != nil {
			return nil, err
		}
		for _, e := range resp.Executions {
			r := &listRow{ID: e.Execution.WorkflowId, RunID: e.Execution.RunId, Status: strings.ToLower(strings.TrimPrefix(e.Status.String(), "WORKFLOW_EXECUTION_STATUS_"))}
			if e.StartTime != nil {
				r.Start = e.StartTime.AsTime()
			}
			if e.CloseTime != nil {
				r.Close = e.CloseTime.AsTime()
			}
			r.Attrs = decodeAttrs(e.SearchAttributes)
			rows = append(rows, r)
		}
		token = resp.NextPageToken
		if len(token) == 0 {
			return rows, nil
		}
	}
}

func deployList() *ucli.Command {
	return listCommand("deploy", &ucli.StringFlag{Name: "service", Usage: "only this service"}, func(c *ucli.Context) string {
		if s := c.String("service"); s != "" {
			return serviceQuery(s)
		}
		return ""
	})
}

// listCommand lists the workflows of a kind through visibility.
func listCommand(kind string, filter ucli.Flag, extra func(*ucli.Context) string) *ucli.Command {
	flags := []ucli.Flag{outputFlag}
	if filter != nil {
		flags = append(flags, filter)
	}
	return &ucli.Command{
		Name: "list", Usage: "list " + kind + "s Temporal knows", Flags: withClientFlags(flags...),
		Action: func(c *ucli.Context) error {
			asJSON, err := jsonOut(c)
			if err != nil {
				return err
			}
			cl, err := dial(c)
			if err != nil {
				return err
			}
			defer cl.Close()
			q := kindQuery(kind)
			if extra != nil {
				q += extra(c)
			}
			rows, err := listWorkflows(c.Context, cl, q)
			if err != nil {
				return fmt.Errorf("list %ss: %w", kind, err)
			}
			if asJSON {
				return printJSON(c.App.Writer, rows)
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATUS\tOUTCOME\tPHASE\tSTARTED")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.ID, r.Status, r.Attrs[workflows.AttrOutcome.GetName()], r.Attrs[workflows.AttrPhase.GetName()], r.Start.Local().Format(time.DateTime))
			}
			return tw.Flush()
		},
	}
}

func deployStats() *ucli.Command {
	return &ucli.Command{
		Name: "stats", Usage: "DORA figures from the deploys Temporal knows",
		Flags: withClientFlags(outputFlag, &ucli.DurationFlag{Name: "window", Value: 30 * 24 * time.Hour, Usage: "how far back to look"}),
		Action: func(c *ucli.Context) error {
			asJSON, err := jsonOut(c)
			if err != nil {
				return err
			}
			cl, err := dial(c)
			if err != nil {
				return err
			}
			defer cl.Close()
			since := time.Now().Add(-c.Duration("window"))
			q := kindQuery("deploy") + fmt.Sprintf(" AND ExecutionStatus != 'Running' AND StartTime > '%s'", since.UTC().Format(time.RFC3339))
			rows, err := listWorkflows(c.Context, cl, q)
			if err != nil {
				return fmt.Errorf("list deploys: %w", err)
			}
			var results []workflows.DeployResult
			for _, r := range rows {
				var res workflows.DeployResult
				// Deploys that did not promote end failed, their record in the error.
				if err := cl.GetWorkflow(c.Context, r.ID, r.RunID).Get(c.Context, &res); err == nil || workflows.RecordOf(err, &res) {
					results = append(results, res)
				}
			}
			marks, err := dora.MarksFromAudit(audit.Path(""))
			if err != nil {
				fmt.Fprintf(c.App.ErrWriter, "failure marks not read: %v\n", err)
			}
			s := dora.Compute(results, dora.Options{Window: c.Duration("window"), Marks: marks})
			if asJSON {
				return printJSON(c.App.Writer, s)
			}
			s.Print(c.App.Writer)
			return nil
		},
	}
}
