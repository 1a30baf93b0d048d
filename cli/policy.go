package cli

import (
	"fmt"
	"io"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/deploys"
	"github.com/drillship/drillship/drills"
	"github.com/drillship/drillship/policy"
)

// policyFlag is made anew per command: urfave/cli v2 writes an
// environment value into the flag it is given.
func policyFlag() *ucli.StringFlag {
	return &ucli.StringFlag{Name: "policy", EnvVars: []string{policy.EnvPolicy},
		Usage: "release policy file (freezes, error budget, break-glass); without one nothing is gated"}
}

func policyCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "policy",
		Usage: "release policy: freeze windows, error-budget gates, break-glass",
		Subcommands: []*ucli.Command{
			{
				Name: "check", Usage: "may this deploy (or drill) run now? if not: which rule, until when, how to proceed (exit 0 allowed, 3 refused, 2 bad input)",
				ArgsUsage: "<deploy or drill spec | shipped name>",
				Flags: []ucli.Flag{policyFlag(), localFlagNew(), outputFlag,
					&ucli.BoolFlag{Name: "hotfix", Usage: "ask for a hotfix (passes freezes and budget thresholds that allow hotfixes)"},
					&ucli.StringFlag{Name: "at", Usage: "RFC 3339 time to ask about instead of now (freezes only: the SLI is read now)"},
				},
				Action: policyCheck,
			},
			{
				Name: "validate", Usage: "check a policy file (exit 2 with file:line: field: what is allowed)", ArgsUsage: "<policy.yaml>",
				Flags: []ucli.Flag{localFlagNew()},
				Action: func(c *ucli.Context) error {
					path, err := oneArg(c, "policy file")
					if err != nil {
						return err
					}
					if _, err := loadPolicy(c, path); err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "%s: ok\n", path)
					return nil
				},
			},
		},
	}
}

func localFlagNew() *ucli.StringFlag {
	return &ucli.StringFlag{Name: "local-env", EnvVars: []string{"DRILLSHIP_LOCAL_ENV"}, Usage: localFlag.Usage}
}

// loadPolicy reads and checks a policy, its signals provider's settings
// included; a bad one is exit 2.
func loadPolicy(c *ucli.Context, path string) (*policy.Policy, error) {
	p, err := policy.Load(path)
	if err != nil {
		return nil, specErr(err)
	}
	if b := p.ErrorBudget; b != nil {
		if err := registry(c).Validate(activities.CapSignals, b.SLO.Signals); err != nil {
			return nil, usageErr("%s: errorBudget.slo.signals: %v", path, err)
		}
	}
	return p, nil
}

// findPolicy is the policy named by --policy or DRILLSHIP_POLICY; nil
// when none is.
func findPolicy(c *ucli.Context) (*policy.Policy, error) {
	if c.String("policy") == "" {
		return nil, nil
	}
	return loadPolicy(c, c.String("policy"))
}

func policyCheck(c *ucli.Context) error {
	path, err := oneArg(c, "deploy spec")
	if err != nil {
		return err
	}
	asJSON, err := jsonOut(c)
	if err != nil {
		return err
	}
	p, err := findPolicy(c)
	if err != nil {
		return err
	}
	if p == nil {
		return usageErr("policy check: no policy (--policy FILE or %s)", policy.EnvPolicy)
	}
	r := policy.Request{Kind: policy.KindDeploy, Hotfix: c.Bool("hotfix"), Now: time.Now()}
	spec, err := deploys.Load(path, registry(c))
	if err != nil {
		// A drill spec asks about drill freezes.
		ds, derr := drills.Load(path, registry(c))
		if derr != nil {
			return specErr(err)
		}
		r.Kind, r.Service, r.Environment, r.Hotfix = policy.KindDrill, ds.Name, ds.Environment, false
	} else {
		r.Service, r.Environment = spec.Service, spec.Environment
	}
	if at := c.String("at"); at != "" {
		t, err := time.Parse(time.RFC3339, at)
		if err != nil {
			return usageErr("--at: %q is not an RFC 3339 time (2026-12-24T18:00:00+01:00)", at)
		}
		r.Now = t
	}
	d, rd, err := p.Check(c.Context, registry(c), r)
	if err != nil {
		return err
	}
	if asJSON {
		if err := printJSON(c.App.Writer, map[string]any{"kind": r.Kind, "service": r.Service, "environment": r.Environment,
			"hotfix": r.Hotfix, "at": r.Now.UTC().Format(time.RFC3339), "decision": d, "readings": rd}); err != nil {
			return err
		}
	} else {
		printDecision(c.App.Writer, r.Service, r.Environment, r, d, rd)
	}
	if !d.Allowed {
		return ucli.Exit("", ExitOutcome)
	}
	return nil
}

func printDecision(w io.Writer, service, env string, r policy.Request, d policy.Decision, rd policy.Readings) {
	what := "a deploy"
	if r.Hotfix {
		what = "a hotfix"
	}
	if r.Kind == policy.KindDrill {
		fmt.Fprintf(w, "the drill %s in %s at %s: ", service, env, r.Now.UTC().Format(time.RFC3339))
	} else {
		fmt.Fprintf(w, "%s of %s to %s at %s: ", what, service, env, r.Now.UTC().Format(time.RFC3339))
	}
	if d.Allowed {
		fmt.Fprintln(w, d.String())
	} else {
		fmt.Fprintf(w, "refused\n  rule:   %s\n  why:    %s\n", d.Rule, d.Reason)
		if d.Until > 0 {
			fmt.Fprintf(w, "  until:  %s\n", time.UnixMilli(d.Until).UTC().Format(time.RFC3339))
		}
		fmt.Fprintf(w, "  how:    %s\n", d.HowTo)
	}
	if rd.Budget != nil {
		fmt.Fprintf(w, "  budget: error ratio %.4g over %s (%s)\n", rd.Budget.Value, rd.Budget.Window, rd.Budget.Detail)
	}
	for _, b := range rd.Burns {
		if b.NoData {
			fmt.Fprintf(w, "  burn:   %s: no data\n", b.Rule)
			continue
		}
		fmt.Fprintf(w, "  burn:   %s\n", b)
	}
}

// policyGate is deploy start's check: refused is exit 2 naming the rule
// and until when; with --incident and --reason a refusal is overridden
// when the policy lets this person break glass and the incident is open
// (the workflow checks both again and records the override).
func policyGate(c *ucli.Context, p *policy.Policy, spec *deploys.Spec, hotfix bool) error {
	r := policy.Request{Kind: policy.KindDeploy, Service: spec.Service, Environment: spec.Environment, Hotfix: hotfix, Now: time.Now()}
	d, _, err := p.Check(c.Context, registry(c), r)
	if err != nil {
		return err
	}
	if d.Allowed {
		if d.Hotfix {
			fmt.Fprintf(c.App.ErrWriter, "policy: %s\n", d)
		}
		return nil
	}
	incident := c.String("incident")
	if incident == "" {
		return usageErr("policy %s: %s", p.File, d)
	}
	if err := p.MayBreakGlass(c.String("who"), c.String("reason"), incident); err != nil {
		return usageErr("policy %s: %s; break-glass refused: %v", p.File, d, err)
	}
	if in := p.Incident(incident); in != nil {
		at, err := in.AtLocal(c.String("local-env"))
		if err != nil {
			return usageErr("policy %s: %v", p.File, err)
		}
		st, err := activities.CheckIncident(c.Context, at)
		if err != nil {
			return fmt.Errorf("policy: incident %s could not be verified: %w", incident, err)
		}
		if !st.Open {
			return usageErr("policy %s: %s; break-glass refused: incident %s is not open (%s)", p.File, d, incident, st.Status)
		}
	}
	fmt.Fprintf(c.App.ErrWriter, "policy: %s is overridden by break-glass (incident %s); recorded in the audit log\n", d.Rule, incident)
	return nil
}
