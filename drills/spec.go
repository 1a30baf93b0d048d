// Package drills holds the drill spec format (types, parsing, validation)
// and the shipped drill files.
package drills

import (
	"embed"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/deploys"
	"github.com/drillship/drillship/ledger"
	"github.com/drillship/drillship/specfile"
)

// Spec is one drill.
type Spec struct {
	Name        string `yaml:"name" json:"name"`
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	Owner       string `yaml:"owner,omitempty" json:"owner,omitempty"`
	Environment string `yaml:"environment,omitempty" json:"environment,omitempty"`
	// Production drills wait for an explicit approval before injecting.
	Production bool `yaml:"production,omitempty" json:"production,omitempty"`

	// Providers are the default targets per capability.
	Providers Providers `yaml:"providers" json:"providers"`
	// Load during the drill as a multiple of normal (2 = drill at 2x load).
	Load float64 `yaml:"load,omitempty" json:"load,omitempty"`
	// MinRequests is the default minRequests of the request checks
	// (error_rate, latency_p99) that say something holds: steadyState,
	// mitigation.slo, recovery.checks. Below it a reading is inconclusive,
	// never passing. 0: only a reading with no data is inconclusive.
	MinRequests float64 `yaml:"minRequests,omitempty" json:"minRequests,omitempty"`

	// SteadyState must hold before injection and after restore.
	SteadyState []activities.Check `yaml:"steadyState" json:"steadyState"`
	Inject      []Step             `yaml:"inject" json:"inject"`
	Detection   Detection          `yaml:"detection" json:"detection"`
	Mitigation  Mitigation         `yaml:"mitigation" json:"mitigation"`
	Recovery    Recovery           `yaml:"recovery" json:"recovery"`
	Restore     []Step             `yaml:"restore,omitempty" json:"restore,omitempty"`
	Guardrails  Guardrails         `yaml:"guardrails,omitempty" json:"guardrails,omitempty"`
	Targets     ledger.Targets     `yaml:"targets,omitempty" json:"targets,omitempty"`
	Schedule    *Schedule          `yaml:"schedule,omitempty" json:"schedule,omitempty"`
	// Workload runs on the database provider from before injection until
	// writes have recovered, to measure RTO and RPO.
	Workload *Workload `yaml:"workload,omitempty" json:"workload,omitempty"`
}

// Workload is a database writer that measures RTO and RPO.
type Workload struct {
	Interval specfile.Duration `yaml:"interval,omitempty" json:"interval,omitempty"`
	HoldFor  specfile.Duration `yaml:"holdFor,omitempty" json:"holdFor,omitempty"`
}

// Providers are the default targets of a drill's steps and checks.
type Providers struct {
	Traffic  *activities.Target `yaml:"traffic,omitempty" json:"traffic,omitempty"`
	Signals  *activities.Target `yaml:"signals,omitempty" json:"signals,omitempty"`
	Faults   *activities.Target `yaml:"faults,omitempty" json:"faults,omitempty"`
	Runner   *activities.Target `yaml:"runner,omitempty" json:"runner,omitempty"`
	Database *activities.Target `yaml:"database,omitempty" json:"database,omitempty"`
}

// Step is one inject, mitigation or restore step: exactly one of the kinds.
type Step struct {
	Name string `yaml:"name" json:"name"`
	// Target overrides the provider of the step's capability.
	Target *activities.Target `yaml:"target,omitempty" json:"target,omitempty"`

	Fault    *activities.Fault  `yaml:"fault,omitempty" json:"fault,omitempty"`
	Weights  activities.Weights `yaml:"weights,omitempty" json:"weights,omitempty"`
	Failover *Failover          `yaml:"failover,omitempty" json:"failover,omitempty"`
	Action   *activities.Action `yaml:"action,omitempty" json:"action,omitempty"`
	Database *DatabaseStep      `yaml:"database,omitempty" json:"database,omitempty"`
	// Deploy (inject only) runs a deploy of a version as a child workflow:
	// the drill then measures the deploy's own detection and rollback.
	Deploy *DeployStep `yaml:"deploy,omitempty" json:"deploy,omitempty"`
}

// DeployStep names a deploy spec and the version to deploy.
type DeployStep struct {
	Spec    string `yaml:"spec" json:"spec"`
	Version string `yaml:"version" json:"version"`
	// Resolved is the deploy spec, loaded and validated with the drill so
	// that the workflow carries it.
	Resolved *deploys.Spec `yaml:"-" json:"resolved,omitempty"`
}

// Failover evacuates a region (or fails back) through the Failover child
// workflow: set the weights, then verify the checks hold.
type Failover struct {
	Weights activities.Weights `yaml:"weights" json:"weights"`
	Verify  []activities.Check `yaml:"verify,omitempty" json:"verify,omitempty"`
	Timeout specfile.Duration  `yaml:"timeout,omitempty" json:"timeout,omitempty"`
}

// DatabaseStep is one database operation.
type DatabaseStep struct {
	Op   string `yaml:"op" json:"op"` // promote | fence | rebuild
	Node string `yaml:"node" json:"node"`
}

// Kind names what a step does.
func (s Step) Kind() string {
	var kinds []string
	if s.Fault != nil {
		kinds = append(kinds, "fault")
	}
	if len(s.Weights) > 0 {
		kinds = append(kinds, "weights")
	}
	if s.Failover != nil {
		kinds = append(kinds, "failover")
	}
	if s.Action != nil {
		kinds = append(kinds, "action")
	}
	if s.Database != nil {
		kinds = append(kinds, "database")
	}
	if s.Deploy != nil {
		kinds = append(kinds, "deploy")
	}
	return strings.Join(kinds, "+")
}

// Detection says what signals a fault.
type Detection struct {
	Interval specfile.Duration  `yaml:"interval,omitempty" json:"interval,omitempty"`
	Timeout  specfile.Duration  `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	Signals  []activities.Check `yaml:"signals" json:"signals"`
}

// Mitigation modes.
const (
	ModeAutomated = "automated"
	ModeGameday   = "gameday"
)

// Mitigation is what stops the customer impact.
type Mitigation struct {
	Mode  string `yaml:"mode,omitempty" json:"mode,omitempty"`
	Steps []Step `yaml:"steps,omitempty" json:"steps,omitempty"`
	// SelfHealing: the platform mitigates on its own (a scheduler moving
	// pods off a lost zone, a controller replacing killed pods); the drill
	// runs no steps and measures how long the SLO takes to hold again.
	SelfHealing bool `yaml:"selfHealing,omitempty" json:"selfHealing,omitempty"`
	// SLO: the checks that say customer impact has stopped.
	SLO     []activities.Check `yaml:"slo" json:"slo"`
	Timeout specfile.Duration  `yaml:"timeout,omitempty" json:"timeout,omitempty"`
}

// Recovery is when the service is fully back (before failback).
type Recovery struct {
	Checks   []activities.Check `yaml:"checks,omitempty" json:"checks,omitempty"` // default: the mitigation SLO
	HoldFor  specfile.Duration  `yaml:"holdFor,omitempty" json:"holdFor,omitempty"`
	Timeout  specfile.Duration  `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	Interval specfile.Duration  `yaml:"interval,omitempty" json:"interval,omitempty"`
}

// Guardrails abort the drill and restore.
type Guardrails struct {
	MaxDuration specfile.Duration  `yaml:"maxDuration,omitempty" json:"maxDuration,omitempty"`
	Checks      []activities.Check `yaml:"checks,omitempty" json:"checks,omitempty"`
	Interval    specfile.Duration  `yaml:"interval,omitempty" json:"interval,omitempty"`
}

// Schedule is the drill's default calendar.
type Schedule struct {
	Calendar string `yaml:"calendar" json:"calendar"`
}

var nameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Checker validates provider settings; the activities.Registry is one (and
// a deploys.Declarer: specs are then checked against the declarations).
type Checker = deploys.Checker

// CalendarCheck validates a calendar expression (set by the schedule package
// to avoid an import cycle; nil skips the check).
var CalendarCheck func(string) error

// deployKeys are top-level fields only a deploy spec has.
var deployKeys = []string{"service", "analysis", "steps", "release", "trafficKeys", "bake"}

// OtherKind says "this is a deploy spec" when data is one.
func OtherKind(file string, data []byte) error {
	keys := specfile.TopKeys(data)
	if keys == nil || keys["inject"] > 0 || keys["steadyState"] > 0 {
		return nil
	}
	for _, k := range deployKeys {
		if line := keys[k]; line > 0 {
			return specfile.Errors{{File: file, Line: line, Field: k, Msg: "this is a deploy spec, not a drill spec (check it with `drillship deploy validate`, start it with `drillship deploy start --version V`)"}}
		}
	}
	return nil
}

// Parse decodes and validates a drill spec; file names it in errors.
func Parse(file string, data []byte, reg Checker) (*Spec, error) {
	if err := OtherKind(file, data); err != nil {
		return nil, err
	}
	var s Spec
	root, err := specfile.Decode(file, data, &s)
	if err != nil {
		return nil, err
	}
	c := &specfile.Checker{File: file, Root: root}
	s.writtenZeros(c)
	s.applyDefaults()
	s.validate(c, reg)
	if err := c.Errs.Err(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Validate checks a spec built in code.
func (s *Spec) Validate(reg Checker) error {
	s.applyDefaults()
	c := &specfile.Checker{File: "<spec>"}
	s.validate(c, reg)
	return c.Errs.Err()
}

// Load reads a drill spec from a path; a bare name ("region-failover") is
// looked up among the shipped drills.
func Load(path string, reg Checker) (*Spec, error) {
	data, name, err := shelf.Read(path)
	if err != nil {
		return nil, err
	}
	return Parse(name, data, reg)
}

//go:embed *.yaml
var files embed.FS

var shelf = specfile.Shelf{FS: files, Dir: "drills", Kind: "drill spec"}

// Shipped lists the names of the specs built into the binary.
func Shipped() []string { return shelf.Names() }

func (s *Spec) applyDefaults() {
	if s.Environment == "" {
		s.Environment = "local"
	}
	if s.Mitigation.Mode == "" {
		s.Mitigation.Mode = ModeAutomated
	}
	d := ledger.DefaultTargets()
	if s.Targets.Detection == 0 {
		s.Targets.Detection = d.Detection
	}
	if s.Targets.Engagement == 0 {
		s.Targets.Engagement = d.Engagement
	}
	if s.Targets.Diagnosis == 0 {
		s.Targets.Diagnosis = d.Diagnosis
	}
	if s.Targets.Mitigation == 0 {
		s.Targets.Mitigation = d.Mitigation
	}
	if s.Detection.Interval == 0 {
		s.Detection.Interval = specfile.Duration(time.Second)
	}
	// Derived timeouts come from a usable target only: a negative target is
	// reported on targets.*, not on a timeout the user never wrote.
	if s.Detection.Timeout == 0 {
		s.Detection.Timeout = specfile.Duration(5 * positiveOr(s.Targets.Detection, d.Detection))
	}
	if s.Mitigation.Timeout == 0 {
		s.Mitigation.Timeout = specfile.Duration(2 * positiveOr(s.Targets.Mitigation, d.Mitigation))
	}
	if s.Recovery.Interval == 0 {
		s.Recovery.Interval = s.Detection.Interval
	}
	if s.Recovery.Timeout == 0 {
		s.Recovery.Timeout = specfile.Duration(10 * time.Minute)
	}
	if len(s.Recovery.Checks) == 0 {
		s.Recovery.Checks = s.Mitigation.SLO
	}
	if s.MinRequests > 0 {
		for _, cs := range [][]activities.Check{s.SteadyState, s.Mitigation.SLO, s.Recovery.Checks} {
			for i := range cs {
				if m := cs[i].Metric; cs[i].MinRequests == 0 && (m == activities.MetricErrorRate || m == activities.MetricLatencyP99) {
					cs[i].MinRequests = s.MinRequests
				}
			}
		}
	}
	if s.Guardrails.Interval == 0 {
		s.Guardrails.Interval = s.Detection.Interval
	}
	if s.Guardrails.MaxDuration == 0 {
		s.Guardrails.MaxDuration = specfile.Duration(time.Hour)
	}
}

// writtenZeros refuses durations written as 0 that defaults would replace.
func (s *Spec) writtenZeros(c *specfile.Checker) {
	for _, z := range []struct {
		path   string
		d      time.Duration
		lo, hi time.Duration
	}{
		{"detection.interval", s.Detection.Interval.D(), specfile.MinDrillInterval, specfile.MaxInterval},
		{"detection.timeout", s.Detection.Timeout.D(), time.Second, specfile.MaxDuration},
		{"mitigation.timeout", s.Mitigation.Timeout.D(), time.Second, specfile.MaxDuration},
		{"recovery.interval", s.Recovery.Interval.D(), specfile.MinDrillInterval, specfile.MaxInterval},
		{"recovery.timeout", s.Recovery.Timeout.D(), time.Second, specfile.MaxDuration},
		{"guardrails.interval", s.Guardrails.Interval.D(), specfile.MinDrillInterval, specfile.MaxInterval},
		{"guardrails.maxDuration", s.Guardrails.MaxDuration.D(), time.Second, specfile.MaxDuration},
		{"targets.detection", s.Targets.Detection, time.Second, specfile.MaxDuration},
		{"targets.engagement", s.Targets.Engagement, time.Second, specfile.MaxDuration},
		{"targets.diagnosis", s.Targets.Diagnosis, time.Second, specfile.MaxDuration},
		{"targets.mitigation", s.Targets.Mitigation, time.Second, specfile.MaxDuration},
	} {
		c.WrittenZero(z.path, z.d, z.lo, z.hi)
	}
}

func positiveOr(v, def time.Duration) time.Duration {
	if v > 0 {
		return v
	}
	return def
}

// Target returns the target for a capability: the step's own, else the
// spec's default.
func (s *Spec) Target(capability string, override *activities.Target) activities.Target {
	if override != nil {
		return *override
	}
	var t *activities.Target
	switch capability {
	case activities.CapTraffic:
		t = s.Providers.Traffic
	case activities.CapSignals:
		t = s.Providers.Signals
	case activities.CapFaults:
		t = s.Providers.Faults
	case activities.CapRunner:
		t = s.Providers.Runner
	case activities.CapDatabase:
		t = s.Providers.Database
	}
	if t == nil {
		return activities.Target{}
	}
	return *t
}

// DeployInjected reports whether the drill injects a deploy: the deploy's
// own analysis detects and its rollback mitigates.
func (s *Spec) DeployInjected() bool {
	for _, st := range s.Inject {
		if st.Deploy != nil {
			return true
		}
	}
	return false
}

// Capability is what a step needs.
func (s Step) Capability() string {
	switch {
	case s.Fault != nil:
		return activities.CapFaults
	case len(s.Weights) > 0, s.Failover != nil:
		return activities.CapTraffic
	case s.Action != nil:
		return activities.CapRunner
	case s.Database != nil:
		return activities.CapDatabase
	case s.Deploy != nil:
		return activities.CapRelease
	}
	return ""
}

func (s *Spec) validate(c *specfile.Checker, reg Checker) {
	if !nameRe.MatchString(s.Name) {
		c.Fail("name", "%q is not a drill name (lower-case letters, digits and '-', up to 63)", s.Name)
	}
	if !nameRe.MatchString(s.Environment) {
		c.Fail("environment", "%q is not an environment name (lower-case letters, digits and '-', up to 63)", s.Environment)
	}
	if s.MinRequests < 0 || s.MinRequests > 1_000_000 {
		c.Fail("minRequests", "%g is out of range (allowed: 0..1000000)", s.MinRequests)
	}
	if s.Load < 0 || s.Load > 10 {
		c.Fail("load", "%g is out of range (allowed: 0..10, a multiple of normal load)", s.Load)
	}
	for _, pt := range []struct {
		path, capability string
		t                *activities.Target
	}{
		{"providers.traffic", activities.CapTraffic, s.Providers.Traffic},
		{"providers.signals", activities.CapSignals, s.Providers.Signals},
		{"providers.faults", activities.CapFaults, s.Providers.Faults},
		{"providers.runner", activities.CapRunner, s.Providers.Runner},
		{"providers.database", activities.CapDatabase, s.Providers.Database},
	} {
		if pt.t != nil {
			deploys.CheckTarget(c, reg, pt.path, pt.capability, *pt.t)
		}
	}
	s.checkLoad(c, reg)
	if len(s.SteadyState) == 0 {
		c.Fail("steadyState", "at least one check is needed: a drill must know what normal looks like before it breaks anything")
	}
	s.checks(c, reg, "steadyState", s.SteadyState, false)
	if len(s.Inject) == 0 {
		c.Fail("inject", "at least one step is needed")
	}
	s.steps(c, reg, "inject", s.Inject)
	for i, st := range s.Inject {
		if st.Fault == nil && st.Deploy == nil {
			c.Fail(fmt.Sprintf("inject[%d]", i), "inject steps inject faults (fault: {kind: ..., params: ...}) or run a deploy (deploy: {spec: ..., version: ...})")
		}
	}
	if len(s.Detection.Signals) == 0 && !s.DeployInjected() {
		c.Fail("detection.signals", "at least one signal is needed")
	}
	s.checks(c, reg, "detection.signals", s.Detection.Signals, false)
	c.Range("detection.interval", s.Detection.Interval.D(), specfile.MinDrillInterval, specfile.MaxInterval, false)
	c.Range("detection.timeout", s.Detection.Timeout.D(), time.Second, specfile.MaxDuration, false)
	switch s.Mitigation.Mode {
	case ModeAutomated:
		switch {
		case s.Mitigation.SelfHealing && len(s.Mitigation.Steps) > 0:
			c.Fail("mitigation.steps", "selfHealing means the platform mitigates on its own: no steps (remove them, or selfHealing)")
		case len(s.Mitigation.Steps) == 0 && !s.DeployInjected() && !s.Mitigation.SelfHealing:
			c.Fail("mitigation.steps", "automated mode needs runbook steps to run (or selfHealing: true when the platform mitigates on its own)")
		}
	case ModeGameday:
	default:
		c.Fail("mitigation.mode", "%q is not allowed (allowed: automated, gameday)", s.Mitigation.Mode)
	}
	s.steps(c, reg, "mitigation.steps", s.Mitigation.Steps)
	if len(s.Mitigation.SLO) == 0 {
		c.Fail("mitigation.slo", "at least one check is needed: it says when customer impact has stopped")
	}
	s.checks(c, reg, "mitigation.slo", s.Mitigation.SLO, false)
	c.Range("mitigation.timeout", s.Mitigation.Timeout.D(), time.Second, specfile.MaxDuration, false)
	if c.Has("recovery.checks") {
		s.checks(c, reg, "recovery.checks", s.Recovery.Checks, false)
	}
	c.Range("recovery.timeout", s.Recovery.Timeout.D(), time.Second, specfile.MaxDuration, false)
	c.Range("recovery.interval", s.Recovery.Interval.D(), specfile.MinDrillInterval, specfile.MaxInterval, false)
	c.Range("recovery.holdFor", s.Recovery.HoldFor.D(), 0, specfile.MaxDuration, true)
	s.steps(c, reg, "restore", s.Restore)
	for i, st := range s.Restore {
		if st.Fault != nil {
			c.Fail(fmt.Sprintf("restore[%d].fault", i), "restore does not inject faults; injected faults are stopped on their own")
		}
	}
	c.Range("guardrails.maxDuration", s.Guardrails.MaxDuration.D(), time.Second, specfile.MaxDuration, false)
	c.Range("guardrails.interval", s.Guardrails.Interval.D(), specfile.MinDrillInterval, specfile.MaxInterval, false)
	s.checks(c, reg, "guardrails.checks", s.Guardrails.Checks, true)
	for _, t := range []struct {
		name string
		d    time.Duration
	}{{"detection", s.Targets.Detection}, {"engagement", s.Targets.Engagement}, {"diagnosis", s.Targets.Diagnosis}, {"mitigation", s.Targets.Mitigation}, {"recovery", s.Targets.Recovery}} {
		c.Range("targets."+t.name, t.d, 0, specfile.MaxDuration, true)
	}
	if s.Workload != nil {
		if s.Providers.Database == nil {
			c.Fail("workload", "needs providers.database (the workload writes to it)")
		}
		c.Range("workload.interval", s.Workload.Interval.D(), 0, specfile.MaxInterval, true)
		c.Range("workload.holdFor", s.Workload.HoldFor.D(), 0, specfile.MaxDuration, true)
	}
	if s.Schedule != nil && CalendarCheck != nil {
		c.Check("schedule.calendar", CalendarCheck(s.Schedule.Calendar))
	}
}

// checkLoad: load is applied by the runner's load action; without one it
// would silently never be applied.
func (s *Spec) checkLoad(c *specfile.Checker, reg Checker) {
	if s.Load <= 0 {
		return
	}
	if s.Providers.Runner == nil {
		c.Fail("load", "%g needs providers.runner, a runner with a load action (such as {provider: local}): without one the load is never applied", s.Load)
		return
	}
	if d, ok := reg.(deploys.Declarer); ok {
		rd, ok := d.Declared(s.Providers.Runner.Provider, activities.CapRunner)
		if _, has := rd.Action("load"); ok && !has {
			c.Fail("load", "%g needs a runner with a load action; provider %s has none (the local provider has)", s.Load, s.Providers.Runner.Provider)
		}
	}
}

func (s *Spec) checks(c *specfile.Checker, reg Checker, path string, cs []activities.Check, guard bool) {
	d, _ := reg.(deploys.Declarer)
	seen := map[string]bool{}
	for i, ch := range cs {
		p := fmt.Sprintf("%s[%d]", path, i)
		if ch.Name == "" {
			c.Fail(p+".name", "missing")
		} else if seen[ch.Name] {
			c.Fail(p+".name", "%q is used twice", ch.Name)
		}
		seen[ch.Name] = true
		if ch.Metric == "" && ch.Expr == "" {
			c.Fail(p+".metric", "missing (error_rate, latency_p99, request_rate, up, alarm, or a provider expression in expr)")
		}
		if ch.Max == nil && ch.Min == nil {
			c.Fail(p, "needs max or min: a check without a threshold never fails")
		}
		if ch.Max != nil && ch.Min != nil && *ch.Min > *ch.Max {
			c.Fail(p+".min", "%g is above max %g: the check could never pass", *ch.Min, *ch.Max)
		}
		c.Range(p+".window", ch.Window, specfile.MinWindow, specfile.MaxWindow, true)
		c.Range(p+".for", ch.For, 0, specfile.MaxWindow, true)
		if ch.MinRequests < 0 || ch.MinRequests > 1_000_000 {
			c.Fail(p+".minRequests", "%g is out of range (allowed: 0..1000000)", ch.MinRequests)
		}
		if !guard && ch.For != 0 {
			c.Fail(p+".for", "only guardrail checks hold for a duration (use recovery.holdFor)")
		}
		t := s.Target(activities.CapSignals, ch.Target)
		switch {
		case reg == nil:
		case ch.Target != nil:
			deploys.CheckTarget(c, reg, p+".target", activities.CapSignals, t)
		case s.Providers.Signals == nil:
			if !c.Failed("providers.signals") {
				c.Fail("providers.signals", "missing: %s and the other checks without a target need a signals provider (such as {provider: local})", p)
			}
			continue
		}
		if d == nil {
			continue
		}
		if sd, ok := d.Declared(t.Provider, activities.CapSignals); ok {
			deploys.Problems(c, p, activities.CheckQuery(t.Provider, sd, ch.Query, map[string]map[string]string{"scope": ch.Scope},
				activities.Threshold{Name: "max", V: ch.Max}, activities.Threshold{Name: "min", V: ch.Min}))
		}
	}
}

func (s *Spec) steps(c *specfile.Checker, reg Checker, path string, steps []Step) {
	d, _ := reg.(deploys.Declarer)
	for i, st := range steps {
		p := fmt.Sprintf("%s[%d]", path, i)
		if st.Name == "" {
			c.Fail(p+".name", "missing")
		}
		kind := st.Kind()
		if kind == "" || strings.Contains(kind, "+") {
			c.Fail(p, "needs exactly one of fault, weights, failover, action, database, deploy (got %q)", kind)
			continue
		}
		if dp := st.Deploy; dp != nil {
			if !strings.HasPrefix(path, "inject") {
				c.Fail(p+".deploy", "deploy steps belong in inject")
			}
			if err := deploys.ValidateVersion(dp.Version); err != nil {
				c.Fail(p+".deploy.version", "%v", strings.TrimPrefix(err.Error(), "--version: "))
			}
			ds, err := deploys.Load(dp.Spec, reg)
			if err != nil {
				c.Fail(p+".deploy.spec", "%v", err)
			} else {
				dp.Resolved = ds
			}
			continue
		}
		capability := st.Capability()
		t := s.Target(capability, st.Target)
		if reg != nil {
			// providers.* are checked once, where they are written.
			if st.Target == nil && t.Provider == "" {
				c.Fail(p, "no %s provider: set providers.%s (or the step's target)", capability, capability)
				continue
			}
			if st.Target != nil {
				deploys.CheckTarget(c, reg, p+".target", capability, t)
			}
		}
		var decl activities.Declaration
		declared := false
		if d != nil {
			decl, declared = d.Declared(t.Provider, capability)
		}
		w, wp := st.Weights, p+".weights"
		if st.Failover != nil {
			w, wp = st.Failover.Weights, p+".failover.weights"
			s.checks(c, reg, p+".failover.verify", st.Failover.Verify, false)
			c.Range(p+".failover.timeout", st.Failover.Timeout.D(), 0, specfile.MaxDuration, true)
			if len(w) == 0 {
				c.Fail(p+".failover.weights", "missing")
			}
		}
		if len(w) > 0 {
			var b *activities.Backends
			if declared && decl.Backends != nil {
				bk := decl.Backends(t.Config)
				b = &bk
			}
			CheckWeights(c, wp, w, b, t)
		}
		if f := st.Fault; f != nil {
			if f.Kind == "" {
				c.Fail(p+".fault.kind", "missing")
			} else if declared {
				deploys.Problems(c, p+".fault", activities.CheckTargetFault(t, decl, *f, s.knownRegions(d, t.Provider)))
			}
		}
		if a := st.Action; a != nil {
			if a.Name == "" {
				c.Fail(p+".action.name", "missing")
			} else if declared {
				deploys.Problems(c, p+".action", activities.CheckAction(t.Provider, decl, *a))
			}
		}
		if db := st.Database; db != nil {
			switch db.Op {
			case "promote", "fence", "rebuild":
			default:
				c.Fail(p+".database.op", "%q is not allowed (allowed: promote, fence, rebuild)", db.Op)
			}
			if db.Node == "" {
				c.Fail(p+".database.node", "missing")
			}
		}
	}
}

// knownRegions are the regions a fault of provider may name, as far as the
// drill's region-level traffic target of the same provider declares them.
func (s *Spec) knownRegions(d deploys.Declarer, provider string) map[string][]string {
	t := s.Providers.Traffic
	if d == nil || t == nil || t.Provider != provider {
		return nil
	}
	td, ok := d.Declared(t.Provider, activities.CapTraffic)
	if !ok || td.Backends == nil {
		return nil
	}
	if b := td.Backends(t.Config); b.Kind == "region" && b.Known != nil {
		return map[string][]string{"region": b.Known, "where": {b.Where}}
	}
	return nil
}

// CheckWeights checks a weights step: each 0..100; keys the traffic target
// has (when its settings or the world say which); a region named on a
// version-level target called what it is; and a full set (every known key
// given) summing to 100, since that is the whole of the traffic.
func CheckWeights(c *specfile.Checker, path string, w activities.Weights, b *activities.Backends, t activities.Target) {
	sum := 0
	for _, k := range sortedKeys(w) {
		v := w[k]
		sum += v
		if v < 0 || v > 100 {
			c.Fail(path+"."+k, "%d is out of range (allowed: 0..100)", v)
		}
		if b == nil {
			continue
		}
		if b.Kind != "region" && slices.Contains(b.Regions, k) {
			c.Fail(path+"."+k, "%q is a region, but this traffic target (provider %s) moves %ss: set its config level: region (providers.traffic: {provider: %s, config: {level: region}})", k, t.Provider, b.Kind, t.Provider)
			continue
		}
		if b.Known != nil && !slices.Contains(b.Known, k) {
			c.Fail(path+"."+k, "%q is not a %s of %s (allowed: %s)", k, b.Kind, b.Where, strings.Join(b.Known, ", "))
		}
	}
	if b == nil || b.Known == nil {
		return
	}
	for _, k := range b.Known {
		if _, ok := w[k]; !ok {
			return
		}
	}
	if sum != 100 {
		c.Fail(path, "the weights of every %s (%s) add up to %d: a full set must add up to 100", b.Kind, strings.Join(b.Known, ", "), sum)
	}
}

func sortedKeys(w activities.Weights) []string {
	keys := make([]string, 0, len(w))
	for k := range w {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
