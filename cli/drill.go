package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/drillship/drillship/drills"
	"github.com/drillship/drillship/lease"
	"github.com/drillship/drillship/ledger"
	"github.com/drillship/drillship/report"
	"github.com/drillship/drillship/schedule"
	"github.com/drillship/drillship/workflows"
)

func drillCommand() *ucli.Command {
	idArg := func(name, usage, update string, noteFlag string) *ucli.Command {
		flags := []ucli.Flag{whoFlag, outputFlag}
		if noteFlag != "" {
			flags = append(flags, &ucli.StringFlag{Name: noteFlag, Usage: "what you found or why"})
		}
		return &ucli.Command{
			Name: name, Usage: usage, ArgsUsage: "<drill-id>", Flags: withClientFlags(flags...),
			Action: func(c *ucli.Context) error {
				id, err := oneArg(c, "drill id (see `drillship drill list`)")
				if err != nil {
					return err
				}
				return sendUpdate(c, id, update, workflows.Command{Who: c.String("who"), Reason: c.String(noteFlag)})
			},
		}
	}
	return &ucli.Command{
		Name:  "drill",
		Usage: "failover and DR drills: inject, measure, restore, report",
		Subcommands: []*ucli.Command{
			drillRun(),
			drillValidate(),
			drillInit(),
			idArg("ack", "acknowledge the incident (the engaged mark)", workflows.UpdateAck, "note"),
			idArg("diagnose", "record the diagnosis (the diagnosed mark)", workflows.UpdateDiagnose, "note"),
			idArg("mitigated", "say you mitigated (the mark itself comes from the SLO observed)", workflows.UpdateMitigated, "note"),
			idArg("approve", "approve injection in production", workflows.UpdateApprove, "reason"),
			idArg("abort", "abort the drill; restore runs", workflows.UpdateAbort, "reason"),
			drillList(),
			drillReport(),
			scheduleCommand(),
		},
	}
}

func drillRun() *ucli.Command {
	return &ucli.Command{
		Name: "run", Usage: "run a drill", ArgsUsage: "<spec.yaml | shipped name>",
		Flags: withClientFlags(
			&ucli.StringFlag{Name: "mode", Usage: "automated or gameday (default: the spec's)"},
			&ucli.BoolFlag{Name: "wait", Usage: "watch it live until it ends; exit 3 unless recovered and restored"},
			&ucli.StringFlag{Name: "report-dir", Usage: "directory the worker writes the reports to", EnvVars: []string{"DRILLSHIP_REPORT_DIR"}},
			whoFlag, outputFlag, localFlag, onlineFlag, policyFlag(),
		),
		Action: func(c *ucli.Context) error {
			path, err := oneArg(c, "drill spec")
			if err != nil {
				return err
			}
			asJSON, err := jsonOut(c)
			if err != nil {
				return err
			}
			mode := c.String("mode")
			if mode != "" && mode != drills.ModeAutomated && mode != drills.ModeGameday {
				return usageErr("--mode: %q is not allowed (allowed: automated, gameday)", mode)
			}
			// The same checks as drill validate, online ones included when
			// the world is reachable: nothing starts on a spec they refuse.
			spec, _, err := drills.LoadChecked(c.Context, path, registry(c), online(c))
			if err != nil {
				return specErr(err)
			}
			if mode == drills.ModeAutomated && len(spec.Mitigation.Steps) == 0 {
				return usageErr("--mode automated: %s has no mitigation.steps to run", path)
			}
			cl, err := dial(c)
			if err != nil {
				return err
			}
			defer cl.Close()
			in := workflows.DrillInput{Spec: *spec, Mode: mode, RequestedBy: c.String("who"), ReportDir: c.String("report-dir")}
			// A drill freeze in effect refuses it, recorded (cli/policy.go).
			if in.Policy, err = findPolicy(c); err != nil {
				return err
			}
			run, err := StartDrill(c.Context, cl, in)
			if err != nil {
				return err
			}
			return follow(c, cl, run, asJSON, "drillship drill report "+run.GetID()+" --format md", WaitDrill, printDrill,
				func(r ledger.Record) bool { return r.Outcome == ledger.OutcomeRecovered && r.Restored })
		},
	}
}

// StartDrill starts a drill workflow.
func StartDrill(ctx context.Context, cl client.Client, in workflows.DrillInput) (client.WorkflowRun, error) {
	id := workflows.DrillID(in.Spec.Name, time.Now())
	// A drill never shifts a traffic target (or deploys a service) that a
	// deploy or another drill is moving.
	keys := lease.DrillKeys(in.Spec)
	if err := takeLease(ctx, cl, lease.AcquireInput{Keys: keys, Holder: id, What: "drill " + in.Spec.Name}); err != nil {
		return nil, err
	}
	mode := in.Mode
	if mode == "" {
		mode = in.Spec.Mitigation.Mode
	}
	run, err := cl.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:            id,
		TaskQueue:     workflows.TaskQueue,
		StaticSummary: fmt.Sprintf("Drill %s (%s, %s)", in.Spec.Name, mode, in.Spec.Environment),
		StaticDetails: in.Spec.Description,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.AttrKind.ValueSet("drill"), workflows.AttrScenario.ValueSet(in.Spec.Name),
			workflows.AttrEnvironment.ValueSet(in.Spec.Environment)),
	}, "Drill", in)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		// Same drill started within the same second: that run holds the lease.
		return nil, ucli.Exit(fmt.Sprintf("%s is already running (%s)", in.Spec.Name, id), ExitUsage)
	}
	if err != nil {
		dropLease(ctx, cl, keys, id)
		return nil, fmt.Errorf("start drill: %w", err)
	}
	return run, nil
}

// WaitDrill waits for a drill to end, printing its progress to w. A drill
// that did not recover and restore ends failed in Temporal terms with its
// record in the error; that record is returned like a completed one.
func WaitDrill(ctx context.Context, cl client.Client, run client.WorkflowRun, w io.Writer) (ledger.Record, error) {
	rec, err := waitFor[ledger.Record](ctx, cl, run, w, drillLine)
	if err != nil {
		var ended ledger.Record
		if workflows.RecordOf(err, &ended) {
			return ended, nil
		}
	}
	return rec, err
}

// drillRecord reads a finished drill's record, whether it completed or
// ended failed with the record in its error.
func drillRecord(ctx context.Context, cl client.Client, id string) (ledger.Record, error) {
	var rec ledger.Record
	err := cl.GetWorkflow(ctx, id, "").Get(ctx, &rec)
	if err != nil && workflows.RecordOf(err, &rec) {
		return rec, nil
	}
	return rec, err
}

func drillLine(st workflows.DrillState) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] %s", st.Phase, st.Name)
	var t0 int64
	for _, m := range st.Marks {
		if m.Name == ledger.Injected {
			t0 = m.At
		}
	}
	if t0 > 0 {
		fmt.Fprintf(&b, "  elapsed %s", time.Since(time.UnixMilli(t0)).Round(time.Second))
		if tgt := phaseTarget(st.Phase, st.Targets); tgt > 0 {
			fmt.Fprintf(&b, " (target %s)", tgt)
		}
	}
	for _, m := range st.Marks {
		fmt.Fprintf(&b, "  %s✓", m.Name)
	}
	g := "guardrails ok"
	if st.Guardrails.Tripped != "" {
		g = "guardrail TRIPPED: " + st.Guardrails.Tripped
	} else if !st.Guardrails.Active {
		g = "guardrails idle"
	}
	fmt.Fprintf(&b, "  [%s]", g)
	if st.Waiting != "" {
		fmt.Fprintf(&b, "  waiting for %s", st.Waiting)
	}
	return b.String()
}

func phaseTarget(phase string, t ledger.Targets) time.Duration {
	switch phase {
	case "detect":
		return t.Detection
	case "engage":
		return t.Engagement
	case "diagnose":
		return t.Diagnosis
	case "mitigate":
		return t.Mitigation
	}
	return 0
}

func printDrill(w io.Writer, r ledger.Record) {
	fmt.Fprintf(w, "drill %s: %s, restored: %v", r.Name, r.Outcome, r.Restored)
	if r.Reason != "" {
		fmt.Fprintf(w, " (%s)", r.Reason)
	}
	fmt.Fprintln(w)
	// Offsets count from the injection; a drill that injected nothing counts
	// from its start (never from the epoch).
	t0, from := r.MarkAt(ledger.Injected)
	base := "injection"
	if !from {
		t0, base = r.StartedAt, "start"
	}
	if len(r.Marks) > 0 {
		fmt.Fprintf(w, "  marks (from %s):\n", base)
	}
	for _, m := range r.Marks {
		delayed := ""
		if m.DelayedMs > 0 {
			delayed = fmt.Sprintf("  (delayed by a worker crash: up to %.1f s unobserved)", float64(m.DelayedMs)/1000)
		}
		fmt.Fprintf(w, "  %-10s +%7dms  %s%s\n", m.Name, m.At-t0, m.Source, delayed)
	}
	for _, b := range r.BlindSpots {
		fmt.Fprintf(w, "  blind      +%7dms  %s\n", b.From-t0, b.Describe())
	}
	for _, s := range r.Scores {
		if s.Status == ledger.StatusMissing {
			continue
		}
		fmt.Fprintf(w, "  %-10s %8dms of %8dms target  %s\n", s.Phase, s.DurationMs, s.TargetMs, s.Status)
	}
	if r.MitigationLatencyMs != nil {
		fmt.Fprintf(w, "  signal to mitigation action: %dms\n", *r.MitigationLatencyMs)
	}
	for _, f := range r.Findings {
		fmt.Fprintf(w, "  finding [%s] %s\n", f.Severity, f.Title)
	}
}

func drillList() *ucli.Command { return listCommand("drill", nil, nil) }

func drillReport() *ucli.Command {
	return &ucli.Command{
		Name: "report", Usage: "print a finished drill's report", ArgsUsage: "<drill-id>",
		Flags: withClientFlags(
			&ucli.StringFlag{Name: "format", Value: "md", Usage: "json, md or html"},
			&ucli.StringFlag{Name: "report-dir", Usage: "also write all three formats to this directory"},
		),
		Action: func(c *ucli.Context) error {
			id, err := oneArg(c, "drill id")
			if err != nil {
				return err
			}
			format := c.String("format")
			if format != "json" && format != "md" && format != "html" {
				return usageErr("--format: %q is not allowed (allowed: json, md, html)", format)
			}
			cl, err := dial(c)
			if err != nil {
				return err
			}
			defer cl.Close()
			desc, err := cl.DescribeWorkflowExecution(c.Context, id, "")
			if err != nil {
				return ucli.Exit(fmt.Sprintf("drill %s: %v", id, err), ExitUsage)
			}
			if desc.WorkflowExecutionInfo.Status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
				return ucli.Exit(fmt.Sprintf("drill %s is still running; its report is written when it ends", id), ExitUsage)
			}
			rec, err := drillRecord(c.Context, cl, id)
			if err != nil {
				return fmt.Errorf("drill %s: %w", id, err)
			}
			if dir := c.String("report-dir"); dir != "" {
				files, err := report.WriteDir(dir, rec)
				if err != nil {
					return fmt.Errorf("write reports to %s: %w", dir, err)
				}
				fmt.Fprintln(c.App.ErrWriter, "wrote", strings.Join(files, ", "))
			}
			switch format {
			case "json":
				b, err := report.JSON(rec)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintln(c.App.Writer, string(b))
				return err
			case "html":
				_, err = c.App.Writer.Write(report.HTML(rec))
				return err
			default:
				_, err = c.App.Writer.Write(report.Markdown(rec))
				return err
			}
		},
	}
}

func scheduleCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "schedule",
		Usage: "run drills from a Temporal Schedule",
		Subcommands: []*ucli.Command{
			{
				Name: "create", Usage: "create (or replace) a drill's schedule", ArgsUsage: "<spec.yaml | shipped name>",
				Flags: withClientFlags(
					&ucli.StringFlag{Name: "calendar", Usage: `e.g. "first tuesday 10:00 America/New_York" (default: the spec's schedule.calendar)`},
					&ucli.StringFlag{Name: "report-dir", EnvVars: []string{"DRILLSHIP_REPORT_DIR"}},
					localFlag, outputFlag, policyFlag(),
				),
				Action: func(c *ucli.Context) error {
					path, err := oneArg(c, "drill spec")
					if err != nil {
						return err
					}
					spec, err := drills.Load(path, registry(c))
					if err != nil {
						return specErr(err)
					}
					cal := c.String("calendar")
					if cal == "" && spec.Schedule != nil {
						cal = spec.Schedule.Calendar
					}
					if cal == "" {
						return usageErr("--calendar: missing, and %s has no schedule.calendar", path)
					}
					if err := schedule.Validate(cal); err != nil {
						return usageErr("--calendar: %v", err)
					}
					cl, err := dial(c)
					if err != nil {
						return err
					}
					defer cl.Close()
					// Scheduled runs respect the policy's drill freezes.
					pol, err := findPolicy(c)
					if err != nil {
						return err
					}
					id, err := schedule.CreateWithPolicy(c.Context, cl, spec, cal, c.String("report-dir"), pol)
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "created %s (%s)\n", id, cal)
					return nil
				},
			},
			{
				Name: "list", Usage: "list drill schedules with their next runs", Flags: withClientFlags(outputFlag),
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
					es, err := schedule.List(c.Context, cl)
					if err != nil {
						return fmt.Errorf("list schedules: %w", err)
					}
					if asJSON {
						return printJSON(c.App.Writer, es)
					}
					for _, e := range es {
						fmt.Fprintf(c.App.Writer, "%s  %q (%s)\n", e.ID, e.Calendar, e.Zone)
						loc, _ := time.LoadLocation(e.Zone)
						for _, t := range e.Next {
							if loc != nil {
								t = t.In(loc)
							}
							fmt.Fprintf(c.App.Writer, "  next: %s\n", t.Format("Mon 2006-01-02 15:04 MST"))
						}
					}
					return nil
				},
			},
			{
				Name: "delete", Usage: "delete a drill's schedule", ArgsUsage: "<drill-name>", Flags: withClientFlags(),
				Action: func(c *ucli.Context) error { return scheduleOp(c, schedule.Delete, "deleted") },
			},
			{
				Name: "trigger", Usage: "run a drill's schedule now", ArgsUsage: "<drill-name>", Flags: withClientFlags(),
				Action: func(c *ucli.Context) error { return scheduleOp(c, schedule.Trigger, "triggered") },
			},
		},
	}
}

func scheduleOp(c *ucli.Context, op func(context.Context, client.Client, string) error, did string) error {
	name, err := oneArg(c, "drill name")
	if err != nil {
		return err
	}
	cl, err := dial(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := op(c.Context, cl, name); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "%s %s\n", did, schedule.ID(name))
	return nil
}
