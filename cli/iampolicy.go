package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	ucli "github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/deploys"
	"github.com/drillship/drillship/drills"
	"github.com/drillship/drillship/iampolicy"
)

func iamPolicyCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "iam-policy",
		Usage:     "print the least-privilege IAM policy a deploy or drill spec needs",
		ArgsUsage: "<spec.yaml | shipped name>",
		Description: "Reads a deploy spec (top-level service:) or a drill spec (top-level name:), collects every\n" +
			"provider target it uses and prints one IAM policy document (JSON) granting exactly the\n" +
			"actions those providers call, on the resources named in their settings. Providers that\n" +
			"call no cloud API add nothing. Nothing is contacted.",
		Flags: []ucli.Flag{localFlag},
		Action: func(c *ucli.Context) error {
			path, err := oneArg(c, "deploy or drill spec (a path or a shipped name)")
			if err != nil {
				return err
			}
			reg := registry(c)
			uses, err := SpecUses(path, reg)
			if err != nil {
				return specErr(err)
			}
			out, err := iampolicy.JSON(reg.Provider, uses)
			if err != nil {
				return specErr(fmt.Errorf("%s: %w", path, err))
			}
			_, err = c.App.Writer.Write(out)
			return err
		},
	}
}

// Spec kinds as iam-policy tells them apart.
const (
	kindDeploy = "deploy"
	kindDrill  = "drill"
)

// SpecUses loads the deploy or drill spec at path (or the shipped spec of
// that name), validates it against reg and lists every capability and
// target it uses, without duplicates, in the order the spec names them.
func SpecUses(path string, reg *activities.Registry) ([]iampolicy.Use, error) {
	kind, err := specKind(path)
	if err != nil {
		return nil, err
	}
	if kind == kindDeploy {
		s, err := deploys.Load(path, reg)
		if err != nil {
			return nil, err
		}
		return DeployUses(s), nil
	}
	s, err := drills.Load(path, reg)
	if err != nil {
		return nil, err
	}
	return DrillUses(s), nil
}

// specKind tells a drill spec (top-level name:) from a deploy spec
// (top-level service:). Shipped names are known by the shelf they are on.
func specKind(path string) (string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !strings.ContainsAny(path, `/\`) {
		name := strings.TrimSuffix(path, ".yaml")
		switch {
		case slices.Contains(drills.Shipped(), name):
			return kindDrill, nil
		case slices.Contains(deploys.Shipped(), name):
			return kindDeploy, nil
		}
		return "", fmt.Errorf("%s: no such file and no shipped spec of that name (shipped deploys: %s; drills: %s)",
			path, strings.Join(deploys.Shipped(), ", "), strings.Join(drills.Shipped(), ", "))
	}
	if err != nil {
		return "", fmt.Errorf("%s: cannot read spec: %w", path, err)
	}
	var top map[string]yaml.Node
	if err := yaml.Unmarshal(data, &top); err != nil {
		return "", fmt.Errorf("%s: not a YAML mapping: %w", path, err)
	}
	_, hasName := top["name"]
	_, hasService := top["service"]
	switch {
	case hasName && hasService:
		return "", fmt.Errorf("%s: has both name: (drill) and service: (deploy) at the top level; a spec is one or the other", path)
	case hasName:
		return kindDrill, nil
	case hasService:
		return kindDeploy, nil
	}
	return "", fmt.Errorf("%s: neither a drill spec (top-level name:) nor a deploy spec (top-level service:)", path)
}

// DeployUses lists what a deploy touches: traffic, release and the
// analysis signals.
func DeployUses(s *deploys.Spec) []iampolicy.Use {
	var u uses
	u.add(activities.CapTraffic, s.Traffic)
	u.add(activities.CapRelease, s.Release)
	u.add(activities.CapSignals, s.Analysis.Target)
	return u.list
}

// DrillUses lists what a drill touches: its default providers, every step's
// and check's own target, and the database the workload writes to.
func DrillUses(s *drills.Spec) []iampolicy.Use {
	var u uses
	p := s.Providers
	for _, d := range []struct {
		capability string
		t          *activities.Target
	}{
		{activities.CapTraffic, p.Traffic}, {activities.CapSignals, p.Signals}, {activities.CapFaults, p.Faults},
		{activities.CapRunner, p.Runner}, {activities.CapDatabase, p.Database},
	} {
		if d.t != nil {
			u.add(d.capability, *d.t)
		}
	}
	checks := func(cs []activities.Check) {
		for _, c := range cs {
			u.add(activities.CapSignals, s.Target(activities.CapSignals, c.Target))
		}
	}
	steps := func(ss []drills.Step) {
		for _, st := range ss {
			capability := st.Capability()
			u.add(capability, s.Target(capability, st.Target))
			if st.Failover != nil {
				checks(st.Failover.Verify)
			}
		}
	}
	checks(s.SteadyState)
	steps(s.Inject)
	checks(s.Detection.Signals)
	steps(s.Mitigation.Steps)
	checks(s.Mitigation.SLO)
	checks(s.Recovery.Checks)
	steps(s.Restore)
	checks(s.Guardrails.Checks)
	if s.Workload != nil {
		u.add(activities.CapDatabase, s.Target(activities.CapDatabase, nil))
	}
	// Load changes go to the default runner.
	if s.Load > 0 && p.Runner != nil {
		u.add(activities.CapRunner, *p.Runner)
	}
	return u.list
}

// uses collects (capability, target) pairs once each.
type uses struct {
	list []iampolicy.Use
	seen map[string]bool
}

func (u *uses) add(capability string, t activities.Target) {
	if t.Provider == "" {
		return // a check or step without a target of its own and no default: validation reports it
	}
	key := capability + "\x00" + t.Provider + "\x00" + fmt.Sprint(t.Config) // fmt sorts map keys
	if u.seen == nil {
		u.seen = map[string]bool{}
	}
	if u.seen[key] {
		return
	}
	u.seen[key] = true
	u.list = append(u.list, iampolicy.Use{Capability: capability, Target: t})
}
