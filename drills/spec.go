// Package drills holds the drill spec format (types, parsing, validation)
// and the shipped drill files.
package drills

import (
	"embed"
	"fmt"
	"regexp"
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

// Checker validates provider settings; the activities.Registry is one.
type Checker interface {
	Validate(capability string, t activities.Target) error
}

// CalendarCheck validates a calendar expression (set by the schedule package
// to avoid an import cycle; nil skips the check).
var CalendarCheck func(string) error

// Parse decodes and validates a drill spec; file names it in errors.
func Parse(file string, data []byte, reg Checker) (*Spec, error) {
	var s Spec
	root, err := specfile.Decode(file, data, &s)
	if err != nil {
		return nil, err
	}
	s.applyDefaults()
	c := &specfile.Checker{File: file, Root: root}
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
	if s.Detection.Timeout == 0 {
		s.Detection.Timeout = specfile.Duration(5 * s.Targets.Detection)
	}
	if s.Mitigation.Timeout == 0 {
		s.Mitigation.Timeout = specfile.Duration(2 * s.Targets.Mitigation)
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
	if s.MinRequests < 0 {
		c.Fail("minRequests", "must not be negative, got %g", s.MinRequests)
	}
	if s.Load < 0 || s.Load > 10 {
		c.Fail("load", "must be 0..10 (a multiple of normal load), got %g", s.Load)
	}
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
	positive(c, "detection.interval", s.Detection.Interval)
	positive(c, "detection.timeout", s.Detection.Timeout)
	switch s.Mitigation.Mode {
	case ModeAutomated:
		if len(s.Mitigation.Steps) == 0 && !s.DeployInjected() {
			c.Fail("mitigation.steps", "automated mode needs runbook steps to run")
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
	positive(c, "mitigation.timeout", s.Mitigation.Timeout)
	s.checks(c, reg, "recovery.checks", s.Recovery.Checks, false)
	positive(c, "recovery.timeout", s.Recovery.Timeout)
	positive(c, "recovery.interval", s.Recovery.Interval)
	if s.Recovery.HoldFor < 0 {
		c.Fail("recovery.holdFor", "must not be negative, got %s", s.Recovery.HoldFor)
	}
	s.steps(c, reg, "restore", s.Restore)
	for i, st := range s.Restore {
		if st.Fault != nil {
			c.Fail(fmt.Sprintf("restore[%d].fault", i), "restore does not inject faults; injected faults are stopped on their own")
		}
	}
	positive(c, "guardrails.maxDuration", s.Guardrails.MaxDuration)
	positive(c, "guardrails.interval", s.Guardrails.Interval)
	s.checks(c, reg, "guardrails.checks", s.Guardrails.Checks, true)
	for _, t := range []struct {
		name string
		d    time.Duration
	}{{"detection", s.Targets.Detection}, {"engagement", s.Targets.Engagement}, {"diagnosis", s.Targets.Diagnosis}, {"mitigation", s.Targets.Mitigation}, {"recovery", s.Targets.Recovery}} {
		if t.d < 0 {
			c.Fail("targets."+t.name, "must not be negative, got %s", t.d)
		}
	}
	if s.Workload != nil {
		if s.Providers.Database == nil {
			c.Fail("workload", "needs providers.database (the workload writes to it)")
		}
		if s.Workload.Interval < 0 || s.Workload.HoldFor < 0 {
			c.Fail("workload", "interval and holdFor must not be negative")
		}
	}
	if s.Schedule != nil && CalendarCheck != nil {
		c.Check("schedule.calendar", CalendarCheck(s.Schedule.Calendar))
	}
}

func positive(c *specfile.Checker, path string, d specfile.Duration) {
	if d <= 0 {
		c.Fail(path, "must be positive, got %s", d)
	}
}

func (s *Spec) checks(c *specfile.Checker, reg Checker, path string, cs []activities.Check, guard bool) {
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
		if ch.Window < 0 {
			c.Fail(p+".window", "must not be negative, got %s", ch.Window)
		}
		if ch.For < 0 {
			c.Fail(p+".for", "must not be negative, got %s", ch.For)
		}
		if ch.MinRequests < 0 {
			c.Fail(p+".minRequests", "must not be negative, got %g", ch.MinRequests)
		}
		if !guard && ch.For != 0 {
			c.Fail(p+".for", "only guardrail checks hold for a duration (use recovery.holdFor)")
		}
		if reg != nil {
			t := s.Target(activities.CapSignals, ch.Target)
			if err := reg.Validate(activities.CapSignals, t); err != nil {
				c.Fail(p, "signals %s", err)
			}
		}
	}
}

func (s *Spec) steps(c *specfile.Checker, reg Checker, path string, steps []Step) {
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
		if d := st.Deploy; d != nil {
			if !strings.HasPrefix(path, "inject") {
				c.Fail(p+".deploy", "deploy steps belong in inject")
			}
			if err := deploys.ValidateVersion(d.Version); err != nil {
				c.Fail(p+".deploy.version", "%v", err)
			}
			ds, err := deploys.Load(d.Spec, reg)
			if err != nil {
				c.Fail(p+".deploy.spec", "%v", err)
			} else {
				d.Resolved = ds
			}
			continue
		}
		w, wp := st.Weights, p+".weights"
		if st.Failover != nil {
			w, wp = st.Failover.Weights, p+".failover.weights"
			s.checks(c, reg, p+".failover.verify", st.Failover.Verify, false)
			if len(w) == 0 {
				c.Fail(p+".failover.weights", "missing")
			}
		}
		for _, k := range sortedKeys(w) {
			if v := w[k]; v < 0 || v > 100 {
				c.Fail(wp+"."+k, "must be 0..100, got %d", v)
			}
		}
		if st.Fault != nil && st.Fault.Kind == "" {
			c.Fail(p+".fault.kind", "missing")
		}
		if st.Action != nil && st.Action.Name == "" {
			c.Fail(p+".action.name", "missing")
		}
		if d := st.Database; d != nil {
			switch d.Op {
			case "promote", "fence", "rebuild":
			default:
				c.Fail(p+".database.op", "%q is not allowed (allowed: promote, fence, rebuild)", d.Op)
			}
			if d.Node == "" {
				c.Fail(p+".database.node", "missing")
			}
		}
		if reg != nil {
			capability := st.Capability()
			if err := reg.Validate(capability, s.Target(capability, st.Target)); err != nil {
				c.Fail(p, "%s %s", capability, err)
			}
		}
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
