package drills

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/deploys"
	"github.com/drillship/drillship/specfile"
)

// CheckOnline checks a parsed drill against the world, reading only: the
// traffic targets' weights (and that every weight key and fault region
// exists there), every check answering, the runner's load readable. Faults
// are not tried: injecting is their only test, so their kinds and params
// are checked offline.
func (s *Spec) CheckOnline(ctx context.Context, c *specfile.Checker, o deploys.Online, reg Checker) deploys.Report {
	var r deploys.Report
	d, _ := reg.(deploys.Declarer)
	read := map[string]activities.Weights{} // by target, as read
	keyOf := func(t activities.Target) string { return t.Provider + fmt.Sprint(t.Config) }
	weightsOf := func(t activities.Target, path string) (activities.Weights, bool) {
		if w, ok := read[keyOf(t)]; ok {
			return w, true
		}
		if !o.Can(&r, path+" weights", t.Provider) {
			return nil, false
		}
		tr, err := o.World.Traffic(t)
		var w activities.Weights
		if err == nil {
			cctx, cancel := context.WithTimeout(ctx, timeoutOr(o))
			w, err = tr.Weights(cctx)
			cancel()
		}
		if err != nil {
			c.Fail(path, "cannot read the weights: %s", deploys.Why(err))
			return nil, false
		}
		read[keyOf(t)] = w
		r.Ran = append(r.Ran, fmt.Sprintf("%s: read the weights (%s)", path, deploys.FormatWeights(w)))
		return w, true
	}
	kindOf := func(t activities.Target) string {
		if d == nil {
			return ""
		}
		td, ok := d.Declared(t.Provider, activities.CapTraffic)
		if !ok || td.Backends == nil {
			return ""
		}
		return td.Backends(t.Config).Kind
	}
	var regions []string
	if t := s.Providers.Traffic; t != nil {
		if w, ok := weightsOf(*t, "providers.traffic"); ok && kindOf(*t) == "region" {
			regions = sortedKeys(w)
		}
	}
	sampled := map[string]bool{}
	var sig func(path string, cs []activities.Check)
	sig = func(path string, cs []activities.Check) {
		for i, ch := range cs {
			p := fmt.Sprintf("%s[%d]", path, i)
			t := s.Target(activities.CapSignals, ch.Target)
			key := keyOf(t) + fmt.Sprint(ch.Query)
			if sampled[key] {
				continue
			}
			sampled[key] = true
			if !o.Can(&r, p, t.Provider) {
				continue
			}
			cl, err := o.World.Signals(t)
			var smp activities.Sample
			if err == nil {
				cctx, cancel := context.WithTimeout(ctx, timeoutOr(o))
				smp, err = cl.Sample(cctx, ch.Query)
				cancel()
			}
			switch {
			case err != nil:
				c.Fail(p, "the signals provider refused the check: %s", deploys.Why(err))
			case smp.NoData:
				r.Ran = append(r.Ran, fmt.Sprintf("%s (%s): answered, no data now", p, ch.Name))
			default:
				r.Ran = append(r.Ran, fmt.Sprintf("%s (%s): %g now", p, ch.Name, smp.Value))
			}
		}
	}
	steps := func(path string, sts []Step) {
		for i, st := range sts {
			p := fmt.Sprintf("%s[%d]", path, i)
			if f := st.Fault; f != nil && regions != nil {
				t := s.Target(activities.CapFaults, st.Target)
				if reg, ok := f.Params["region"]; ok && s.Providers.Traffic != nil && t.Provider == s.Providers.Traffic.Provider && !slices.Contains(regions, reg) {
					c.Fail(p+".fault.params.region", "%q is not a region of the running environment (allowed: %s)", reg, strings.Join(regions, ", "))
				}
			}
			w, wp := st.Weights, p+".weights"
			if st.Failover != nil {
				w, wp = st.Failover.Weights, p+".failover.weights"
				sig(p+".failover.verify", st.Failover.Verify)
			}
			if len(w) == 0 {
				continue
			}
			t := s.Target(activities.CapTraffic, st.Target)
			have, ok := weightsOf(t, wp)
			if !ok || kindOf(t) == "version" {
				// Versions come and go with deploys: the world's list now
				// says nothing about the drill's time.
				continue
			}
			for _, k := range sortedKeys(w) {
				if _, ok := have[k]; !ok {
					c.Fail(wp+"."+k, "%q is not a backend of the running traffic target (it has: %s)", k, strings.Join(sortedKeys(have), ", "))
				}
			}
		}
	}
	sig("steadyState", s.SteadyState)
	steps("inject", s.Inject)
	sig("detection.signals", s.Detection.Signals)
	steps("mitigation.steps", s.Mitigation.Steps)
	sig("mitigation.slo", s.Mitigation.SLO)
	if c.Has("recovery.checks") {
		sig("recovery.checks", s.Recovery.Checks)
	}
	steps("restore", s.Restore)
	sig("guardrails.checks", s.Guardrails.Checks)
	if t := s.Providers.Runner; t != nil && s.Load > 0 && o.Can(&r, "load", t.Provider) {
		rn, err := o.World.Runner(*t)
		if err == nil {
			if lr, ok := rn.(activities.LoadReader); ok {
				cctx, cancel := context.WithTimeout(ctx, timeoutOr(o))
				var m float64
				m, err = lr.Load(cctx)
				cancel()
				if err == nil {
					r.Ran = append(r.Ran, fmt.Sprintf("load: the runner reads the load (%gx now)", m))
				}
			}
		}
		if err != nil {
			c.Fail("providers.runner", "cannot reach the runner: %s", deploys.Why(err))
		}
	}
	for i, st := range s.Inject {
		if st.Fault != nil {
			r.Skipped = append(r.Skipped, fmt.Sprintf("inject[%d].fault: not tried (injecting is the only test; kind and params checked offline)", i))
		}
	}
	sort.Strings(r.Skipped)
	return r
}

func timeoutOr(o deploys.Online) time.Duration {
	if o.Timeout > 0 {
		return o.Timeout
	}
	return 10 * time.Second
}

// LoadChecked reads, parses and checks a drill spec offline and, when o has
// a World, online.
func LoadChecked(ctx context.Context, path string, reg Checker, o deploys.Online) (*Spec, deploys.Report, error) {
	data, name, err := shelf.Read(path)
	if err != nil {
		return nil, deploys.Report{}, err
	}
	s, err := Parse(name, data, reg)
	if err != nil || o.World == nil {
		return s, deploys.Report{}, err
	}
	c := &specfile.Checker{File: name, Root: deploys.Root(data)}
	r := s.CheckOnline(ctx, c, o, reg)
	return s, r, c.Errs.Err()
}
