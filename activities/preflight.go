package activities

import (
	"context"
	"fmt"
)

// Use is one capability a run uses, with its target.
type Use struct {
	Capability string `json:"capability"`
	Target     Target `json:"target"`
}

// UseSet collects uses once each, in the order they are added.
type UseSet struct {
	list []Use
	seen map[string]bool
}

// Add records capability on t; a target without a provider is skipped
// (validation reports it).
func (u *UseSet) Add(capability string, t Target) {
	if t.Provider == "" {
		return
	}
	key := capability + "\x00" + t.Provider + "\x00" + fmt.Sprint(t.Config) // fmt sorts map keys
	if u.seen == nil {
		u.seen = map[string]bool{}
	}
	if u.seen[key] {
		return
	}
	u.seen[key] = true
	u.list = append(u.list, Use{Capability: capability, Target: t})
}

// List is the uses added.
func (u *UseSet) List() []Use { return u.list }

// PreflightInput lists the targets a deploy or drill is about to change.
type PreflightInput struct {
	Uses []Use `json:"uses"`
}

// PreflightResult holds every finding; Refused is set when one of them
// stops the run.
type PreflightResult struct {
	Findings []Finding `json:"findings,omitempty"`
	Refused  bool      `json:"refused,omitempty"`
	// CanaryScales: the release target sizes its canary for each share of
	// traffic (it is a CanaryScaler), so the deploy asks it to before each
	// larger shift.
	CanaryScales bool `json:"canaryScales,omitempty"`
}

// Preflight runs the checks of every target whose client has them. It only
// reads, so a retry is harmless.
func (a *Activities) Preflight(ctx context.Context, in PreflightInput) (PreflightResult, error) {
	var out PreflightResult
	for _, u := range in.Uses {
		c, err := a.clientFor(u)
		if err != nil {
			return out, wrap("preflight", err)
		}
		if _, ok := c.(CanaryScaler); ok && u.Capability == CapRelease {
			out.CanaryScales = true
		}
		p, ok := c.(Preflighter)
		if !ok {
			continue
		}
		fs, err := p.Preflight(ctx)
		if err != nil {
			return out, wrap(u.Capability+" "+u.Target.Provider+" preflight", err)
		}
		for _, f := range fs {
			f.Detail = u.Capability + " " + u.Target.Provider + ": " + f.Detail
			out.Findings = append(out.Findings, f)
			out.Refused = out.Refused || (!f.OK && f.Refuse)
		}
	}
	return out, nil
}

func (a *Activities) clientFor(u Use) (any, error) {
	switch u.Capability {
	case CapTraffic:
		return a.Reg.Traffic(u.Target)
	case CapRelease:
		return a.Reg.Release(u.Target)
	case CapSignals:
		return a.Reg.Signals(u.Target)
	case CapFaults:
		return a.Reg.Faults(u.Target)
	case CapDatabase:
		return a.Reg.Database(u.Target)
	case CapRunner:
		return a.Reg.Runner(u.Target)
	}
	return nil, Permanent(fmt.Errorf("preflight: unknown capability %q", u.Capability))
}
