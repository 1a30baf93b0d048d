package drills

import "github.com/drillship/drillship/activities"

// Uses lists what a drill touches: its default providers, every step's and
// check's own target, and the database the workload writes to
// (`drillship iam-policy`, `drillship rbac`, the preflight checks).
func (s *Spec) Uses() []activities.Use {
	var u activities.UseSet
	p := s.Providers
	for _, d := range []struct {
		capability string
		t          *activities.Target
	}{
		{activities.CapTraffic, p.Traffic}, {activities.CapSignals, p.Signals}, {activities.CapFaults, p.Faults},
		{activities.CapRunner, p.Runner}, {activities.CapDatabase, p.Database},
	} {
		if d.t != nil {
			u.Add(d.capability, *d.t)
		}
	}
	checks := func(cs []activities.Check) {
		for _, c := range cs {
			u.Add(activities.CapSignals, s.Target(activities.CapSignals, c.Target))
		}
	}
	steps := func(ss []Step) {
		for _, st := range ss {
			capability := st.Capability()
			u.Add(capability, s.Target(capability, st.Target))
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
		u.Add(activities.CapDatabase, s.Target(activities.CapDatabase, nil))
	}
	// Load changes go to the default runner.
	if s.Load > 0 && p.Runner != nil {
		u.Add(activities.CapRunner, *p.Runner)
	}
	return u.List()
}
