package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/deploys"
	"github.com/drillship/drillship/devenv"
	"github.com/drillship/drillship/drills"
	"github.com/drillship/drillship/ledger"
	"github.com/drillship/drillship/workflows"
)

// DemoDeploy is one deploy in the demo's summary.
type DemoDeploy struct {
	Name             string `json:"name"`
	Version          string `json:"version"`
	Outcome          string `json:"outcome"`
	Expected         string `json:"expected"`
	DurationMs       int64  `json:"durationMs"`
	TimeToRollbackMs *int64 `json:"timeToRollbackMs,omitempty"`
	Reason           string `json:"reason,omitempty"`
	ID               string `json:"id"`
}

// DemoDrill is one drill in the demo's summary.
type DemoDrill struct {
	Name     string           `json:"name"`
	Outcome  string           `json:"outcome"`
	Restored bool             `json:"restored"`
	Reason   string           `json:"reason,omitempty"`
	Marks    map[string]int64 `json:"marks"`
	Scores   []ledger.Score   `json:"scores"`
	ID       string           `json:"id"`
}

// DemoSummary is what `demo --output json` prints.
type DemoSummary struct {
	TemporalUI string       `json:"temporalUI"`
	Deploys    []DemoDeploy `json:"deploys"`
	Drills     []DemoDrill  `json:"drills"`
	OK         bool         `json:"ok"`
}

func demoCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "demo",
		Usage: "start the embedded stack, run a good deploy, a bad deploy and a region failover drill, print a summary",
		Flags: []ucli.Flag{outputFlag,
			&ucli.BoolFlag{Name: "keep", Usage: "keep the stack running after the demo until Ctrl-C (to look around in the UI)"}},
		Action: func(c *ucli.Context) error {
			asJSON, err := jsonOut(c)
			if err != nil {
				return err
			}
			progress := progressWriter(c, asJSON)
			fmt.Fprintln(progress, "starting the embedded Temporal server, UI, worker and local environment...")
			env, err := devenv.Start(c.Context, devenv.Options{UI: true, Logger: quietLogger(c), ServerLogger: quietLogger(c)})
			if err != nil {
				return err
			}
			defer env.Close()
			fmt.Fprintf(progress, "Temporal UI: %s\n", env.Stack.UIURL())
			sum, err := RunDemo(c.Context, env, progress)
			if err != nil {
				return err
			}
			if asJSON {
				if err := printJSON(c.App.Writer, sum); err != nil {
					return err
				}
			} else {
				printDemo(c.App.Writer, sum)
			}
			if c.Bool("keep") {
				fmt.Fprintln(progress, "the stack keeps running; Ctrl-C stops it")
				<-c.Context.Done()
			}
			if !sum.OK {
				return ucli.Exit("the demo did not end as expected", ExitOutcome)
			}
			return nil
		},
	}
}

// RunDemo runs the demo's deploys and drill on env.
func RunDemo(ctx context.Context, env *devenv.Env, progress io.Writer) (DemoSummary, error) {
	sum := DemoSummary{TemporalUI: env.Stack.UIURL(), OK: true, Deploys: []DemoDeploy{}, Drills: []DemoDrill{}}
	spec, err := deploys.Load("web-canary", env.Registry)
	if err != nil {
		return sum, err
	}
	faults, err := env.Registry.Faults(activities.Target{Provider: "local"})
	if err != nil {
		return sum, err
	}
	type run struct {
		name, version, expected string
		bad                     bool
	}
	for _, r := range []run{
		{"good deploy", "v2", workflows.OutcomePromoted, false},
		{"bad deploy (20% errors)", "v3", workflows.OutcomeRolledBack, true},
	} {
		var fault activities.Fault
		var handle string
		if r.bad {
			// The bad version is made bad by the local environment's fault
			// API, so that its errors are real HTTP 500s.
			fault = activities.Fault{Kind: "bad_version", Params: map[string]string{"version": r.version, "rate": "0.2"}}
			if handle, err = faults.Inject(ctx, fault); err != nil {
				return sum, err
			}
		}
		fmt.Fprintf(progress, "\n== %s: %s %s\n", r.name, spec.Service, r.version)
		wr, err := StartDeploy(ctx, env.Client, workflows.DeployInput{Spec: *spec, Version: r.version, RequestedBy: "demo"})
		if err != nil {
			return sum, err
		}
		res, err := WaitDeploy(ctx, env.Client, wr, progress)
		if r.bad {
			_, _ = faults.Stop(ctx, fault, handle)
		}
		if err != nil {
			return sum, err
		}
		d := DemoDeploy{Name: r.name, Version: r.version, Outcome: res.Outcome, Expected: r.expected,
			DurationMs: res.DurationMs, TimeToRollbackMs: res.TimeToRollbackMs, Reason: res.Reason, ID: wr.GetID()}
		sum.OK = sum.OK && d.Outcome == d.Expected
		sum.Deploys = append(sum.Deploys, d)
	}

	dspec, err := drills.Load("region-failover", env.Registry)
	if err != nil {
		return sum, err
	}
	// The bad canary's errors are still inside the drill's steady-state
	// window right after its rollback; the drill would rightly refuse to
	// inject. Wait until the steady state holds, as a person would.
	if err := Settle(ctx, env, dspec.SteadyState, progress); err != nil {
		return sum, err
	}
	fmt.Fprintf(progress, "\n== drill %s (automated)\n", dspec.Name)
	dr, err := StartDrill(ctx, env.Client, workflows.DrillInput{Spec: *dspec, Mode: drills.ModeAutomated, RequestedBy: "demo"})
	if err != nil {
		return sum, err
	}
	rec, err := WaitDrill(ctx, env.Client, dr, progress)
	if err != nil {
		return sum, err
	}
	sum.Drills = append(sum.Drills, DemoDrill{Name: rec.Name, Outcome: rec.Outcome, Restored: rec.Restored, Reason: rec.Reason,
		Marks: rec.MarkMap(), Scores: rec.Scores, ID: rec.ID})
	sum.OK = sum.OK && rec.Outcome == ledger.OutcomeRecovered && rec.Restored
	return sum, nil
}

// Settle waits (up to a minute) until every check holds on the local
// environment: after a bad canary's rollback its errors stay inside a
// drill's steady-state window for a while, and the drill would rightly
// refuse to inject.
func Settle(ctx context.Context, env *devenv.Env, checks []activities.Check, progress io.Writer) error {
	sig, err := env.Registry.Signals(activities.Target{Provider: "local"})
	if err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		ok := true
		for _, c := range checks {
			s, err := sig.Sample(ctx, c.Query)
			if err != nil || !c.Eval(s).OK {
				ok = false
				break
			}
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the local environment did not return to its steady state within a minute")
		}
		fmt.Fprintln(progress, "waiting for the steady state to hold before the drill...")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func printDemo(w io.Writer, s DemoSummary) {
	fmt.Fprintf(w, "\ndrillship demo summary (Temporal UI: %s)\n\n", s.TemporalUI)
	for _, d := range s.Deploys {
		mark := "ok"
		if d.Outcome != d.Expected {
			mark = "UNEXPECTED (wanted " + d.Expected + ")"
		}
		fmt.Fprintf(w, "deploy  %-26s %-12s %6.1fs", d.Name, d.Outcome, float64(d.DurationMs)/1000)
		if d.TimeToRollbackMs != nil {
			fmt.Fprintf(w, "  time to rollback %dms", *d.TimeToRollbackMs)
		}
		fmt.Fprintf(w, "  %s\n", mark)
		if d.Reason != "" {
			fmt.Fprintf(w, "        reason: %s\n", d.Reason)
		}
	}
	for _, d := range s.Drills {
		fmt.Fprintf(w, "drill   %-26s %-12s restored=%v\n", d.Name, d.Outcome, d.Restored)
		if d.Reason != "" {
			fmt.Fprintf(w, "        reason: %s\n", d.Reason)
		}
		t0 := d.Marks[ledger.Injected]
		for _, m := range ledger.Order {
			if at, ok := d.Marks[m]; ok {
				fmt.Fprintf(w, "        %-10s +%6dms  %s\n", m, at-t0, time.UnixMilli(at).UTC().Format("15:04:05.000"))
			}
		}
		for _, sc := range d.Scores {
			if sc.Status != ledger.StatusMissing {
				fmt.Fprintf(w, "        %-10s %6dms of target %dms: %s\n", sc.Phase, sc.DurationMs, sc.TargetMs, sc.Status)
			}
		}
	}
	if s.OK {
		fmt.Fprintln(w, "\nall outcomes as expected")
	} else {
		fmt.Fprintln(w, "\nSOME OUTCOMES WERE NOT AS EXPECTED")
	}
}
