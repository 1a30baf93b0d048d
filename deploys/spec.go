// Package deploys holds the deploy spec format (types, parsing, validation)
// and the shipped deploy specs.
package deploys

import (
	"embed"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/analysis"
	"github.com/drillship/drillship/specfile"
)

// Spec is one deploy spec file.
type Spec struct {
	// Service is the service being deployed ("web").
	Service string `yaml:"service" json:"service"`
	// Environment names where it runs ("local", "staging", "prod-us").
	Environment string `yaml:"environment" json:"environment"`
	// Production deploys wait for an explicit approval before 100%.
	Production bool `yaml:"production,omitempty" json:"production,omitempty"`

	Traffic activities.Target `yaml:"traffic" json:"traffic"`
	Release activities.Target `yaml:"release" json:"release"`
	// TrafficKeys says what traffic backends are called: "version" (each
	// version has its own backend: v1, v2) or "role" (fixed stable and
	// canary backends, as ECS services behind ALB target groups are).
	TrafficKeys string `yaml:"trafficKeys,omitempty" json:"trafficKeys,omitempty"`

	Analysis Analysis `yaml:"analysis" json:"analysis"`
	Steps    []Step   `yaml:"steps" json:"steps"`
	// OnFailure says what a failed judgement does: rollback (default) or pause.
	OnFailure string `yaml:"onFailure,omitempty" json:"onFailure,omitempty"`
	// Bake is how long the new version is watched at 100% before the old
	// one is retired.
	Bake specfile.Duration `yaml:"bake,omitempty" json:"bake,omitempty"`
	// Artifacts kept after a deploy: current, rollback target, one more.
	Artifacts Artifacts `yaml:"artifacts,omitempty" json:"artifacts,omitempty"`
}

// Analysis says how a canary is judged.
type Analysis struct {
	activities.Target `yaml:",inline" json:"target"`
	// Interval between two samples.
	Interval specfile.Duration `yaml:"interval,omitempty" json:"interval,omitempty"`
	// FailureLimit is how many failed samples a step tolerates; one more
	// fails the judgement.
	FailureLimit int `yaml:"failureLimit,omitempty" json:"failureLimit,omitempty"`
	// MinRequests below which a sample is inconclusive rather than judged.
	MinRequests int               `yaml:"minRequests,omitempty" json:"minRequests,omitempty"`
	Metrics     []analysis.Metric `yaml:"metrics" json:"metrics"`
}

// Step is one canary step: wait for approval (optional), set the weight,
// then watch for Pause.
type Step struct {
	Weight   int               `yaml:"weight" json:"weight"`
	Pause    specfile.Duration `yaml:"pause,omitempty" json:"pause,omitempty"`
	Approval bool              `yaml:"approval,omitempty" json:"approval,omitempty"`
}

// Artifacts says how many versions' artifacts to keep.
type Artifacts struct {
	Keep int `yaml:"keep,omitempty" json:"keep,omitempty"`
}

// Defaults.
const (
	DefaultInterval = 5_000_000_000 // 5s
	DefaultKeep     = 3
)

var (
	nameRe    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	versionRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$`)
)

// ValidateVersion checks a version label given on the command line.
func ValidateVersion(v string) error {
	if !versionRe.MatchString(v) {
		return fmt.Errorf("--version: %q is not a version label (letters, digits, '.', '_', '+', '-'; up to 128)", v)
	}
	return nil
}

// Checker validates provider settings; the worker's activities.Registry is one.
type Checker interface {
	Validate(capability string, t activities.Target) error
}

// Declarer is a Checker that knows what each provider declares (the
// activities.Registry is one): specs are then checked against the
// declarations (metric names, fault kinds, actions, weight keys, settings
// and their types, secrets), not only by the providers' constructors.
type Declarer interface {
	Checker
	CheckTarget(capability string, t activities.Target) []activities.Problem
	Declared(name, capability string) (activities.Declaration, bool)
}

// CheckTarget reports t's problems at path ("traffic", "analysis"):
// against the declarations when reg is a Declarer, else the constructor's.
func CheckTarget(c *specfile.Checker, reg Checker, path, capability string, t activities.Target) {
	if reg == nil {
		return
	}
	d, ok := reg.(Declarer)
	if !ok {
		c.Check(path, reg.Validate(capability, t))
		return
	}
	for _, p := range d.CheckTarget(capability, t) {
		c.Fail(joinPath(path, p.Path), "%s", p.Msg)
	}
}

func joinPath(prefix, p string) string {
	if prefix == "" {
		return p
	}
	if p == "" {
		return prefix
	}
	return prefix + "." + p
}

// Problems records declaration problems under path.
func Problems(c *specfile.Checker, path string, ps []activities.Problem) {
	for _, p := range ps {
		c.Fail(joinPath(path, p.Path), "%s", p.Msg)
	}
}

// drillKeys are top-level fields only a drill spec has.
var drillKeys = []string{"inject", "steadyState", "detection", "mitigation", "recovery"}

// OtherKind says "this is a drill spec" when data is one, so that a spec
// given to the wrong command gets one line instead of a dozen unknown
// fields.
func OtherKind(file string, data []byte) error {
	keys := specfile.TopKeys(data)
	if keys == nil || keys["service"] > 0 || keys["analysis"] > 0 {
		return nil
	}
	for _, k := range drillKeys {
		if line := keys[k]; line > 0 {
			return specfile.Errors{{File: file, Line: line, Field: k, Msg: "this is a drill spec, not a deploy spec (check it with `drillship drill validate`, run it with `drillship drill run`)"}}
		}
	}
	return nil
}

// Parse decodes and validates a spec. file names it in errors.
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
	c.WrittenZero("analysis.interval", s.Analysis.Interval.D(), specfile.MinAnalysisInterval, specfile.MaxInterval)
	s.applyDefaults()
	s.validate(c, reg)
	if err := c.Errs.Err(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Load reads a spec from a path; a bare name ("web-canary") is looked up
// among the shipped specs.
func Load(path string, reg Checker) (*Spec, error) {
	data, name, err := shelf.Read(path)
	if err != nil {
		return nil, err
	}
	return Parse(name, data, reg)
}

//go:embed *.yaml
var files embed.FS

var shelf = specfile.Shelf{FS: files, Dir: "deploys", Kind: "deploy spec"}

// Shipped lists the names of the specs built into the binary.
func Shipped() []string { return shelf.Names() }

// Traffic key kinds.
const (
	KeysVersion = "version"
	KeysRole    = "role"
	RoleStable  = "stable"
	RoleCanary  = "canary"
)

func (s *Spec) applyDefaults() {
	if s.TrafficKeys == "" {
		s.TrafficKeys = KeysVersion
	}
	if s.OnFailure == "" {
		s.OnFailure = "rollback"
	}
	if s.Analysis.Interval == 0 {
		s.Analysis.Interval = DefaultInterval
	}
	if s.Artifacts.Keep == 0 {
		s.Artifacts.Keep = DefaultKeep
	}
	if s.Environment == "" {
		s.Environment = "local"
	}
}

func (s *Spec) validate(c *specfile.Checker, reg Checker) {
	if !nameRe.MatchString(s.Service) {
		c.Fail("service", "%q is not a service name (lower-case letters, digits and '-', up to 63)", s.Service)
	}
	if !nameRe.MatchString(s.Environment) {
		c.Fail("environment", "%q is not an environment name (lower-case letters, digits and '-', up to 63)", s.Environment)
	}
	CheckTarget(c, reg, "traffic", activities.CapTraffic, s.Traffic)
	CheckTarget(c, reg, "release", activities.CapRelease, s.Release)
	CheckTarget(c, reg, "analysis", activities.CapSignals, s.Analysis.Target)
	switch s.TrafficKeys {
	case KeysVersion, KeysRole:
	default:
		c.Fail("trafficKeys", "%q is not allowed (allowed: version, role)", s.TrafficKeys)
	}
	d, _ := reg.(Declarer)
	if d != nil {
		if td, ok := d.Declared(s.Traffic.Provider, activities.CapTraffic); ok && td.Backends != nil {
			if b := td.Backends(s.Traffic.Config); b.Kind == "region" {
				c.Fail("traffic.config.level", "region: a deploy moves traffic between versions (write level: version, or leave it out)")
			}
		}
	}
	switch s.OnFailure {
	case "rollback", "pause":
	default:
		c.Fail("onFailure", "%q is not allowed (allowed: rollback, pause)", s.OnFailure)
	}
	c.Range("bake", s.Bake.D(), 0, specfile.MaxDuration, true)
	if s.Artifacts.Keep < 2 || s.Artifacts.Keep > specfile.MaxCount {
		c.Fail("artifacts.keep", "%d is out of range (allowed: 2..%d: the current version and the rollback target at least)", s.Artifacts.Keep, specfile.MaxCount)
	}
	a := s.Analysis
	c.Range("analysis.interval", a.Interval.D(), specfile.MinAnalysisInterval, specfile.MaxInterval, false)
	c.Count("analysis.failureLimit", a.FailureLimit, 0, specfile.MaxCount)
	c.Count("analysis.minRequests", a.MinRequests, 0, 1_000_000)
	if len(a.Metrics) == 0 {
		c.Fail("analysis.metrics", "at least one metric is needed: a deploy that watches nothing must not promote")
	}
	var sd activities.Declaration
	declared := false
	if d != nil {
		sd, declared = d.Declared(a.Provider, activities.CapSignals)
	}
	seen := map[string]bool{}
	for i, m := range a.Metrics {
		p := fmt.Sprintf("analysis.metrics[%d]", i)
		if m.Name == "" {
			c.Fail(p+".name", "missing")
		} else if seen[m.Name] {
			c.Fail(p+".name", "%q is used twice", m.Name)
		}
		seen[m.Name] = true
		if m.Metric == "" && m.Expr == "" {
			c.Fail(p+".metric", "missing (error_rate, latency_p99, request_rate, or a provider expression in expr)")
		}
		if m.Max == nil && m.MaxVsBaseline == nil {
			c.Fail(p, "needs max, maxVsBaseline or both")
		}
		if m.MaxVsBaseline != nil && (*m.MaxVsBaseline < 1 || *m.MaxVsBaseline > 1000) {
			c.Fail(p+".maxVsBaseline", "%g is out of range (allowed: 1..1000, a ratio to the stable version)", *m.MaxVsBaseline)
		}
		c.Range(p+".window", m.Window.D(), specfile.MinWindow, specfile.MaxWindow, true)
		if m.IgnoreBelow < 0 {
			c.Fail(p+".ignoreBelow", "%g is out of range (allowed: 0 or more)", m.IgnoreBelow)
		}
		if declared {
			q := activities.Query{Metric: m.Metric, Expr: m.Expr, Params: m.Params}
			scopes := map[string]map[string]string{"canaryScope": m.CanaryScope, "baselineScope": m.BaselineScope}
			ig := m.IgnoreBelow
			Problems(c, p, activities.CheckQuery(a.Provider, sd, q, scopes,
				activities.Threshold{Name: "max", V: m.Max}, activities.Threshold{Name: "ignoreBelow", V: &ig}))
			// A canary is judged by version unless the scopes say otherwise.
			if md, ok := sd.Metric(m.Metric); ok && m.Expr == "" && m.CanaryScope == nil && !slices.Contains(md.Scopes, "version") {
				if len(md.Scopes) == 0 {
					c.Fail(p+".metric", "%s of provider %s cannot tell the canary from stable (it takes no scope): judge the canary with a provider whose metrics take a version scope (local, lab, prometheus with expr)", m.Metric, a.Provider)
				} else {
					c.Fail(p+".canaryScope", "missing: %s of provider %s cannot be narrowed by version, which is how a canary is told from stable (set canaryScope and baselineScope: %s)", m.Metric, a.Provider, strings.Join(md.Scopes, ", "))
				}
			}
		}
	}
	if len(s.Steps) == 0 {
		c.Fail("steps", "at least one step is needed, such as {weight: 10, pause: 1m}")
	}
	prev := 0
	for i, st := range s.Steps {
		p := fmt.Sprintf("steps[%d]", i)
		switch {
		case st.Weight < 1 || st.Weight > 100:
			c.Fail(p+".weight", "%d is out of range (allowed: 1..100)", st.Weight)
		case st.Weight <= prev:
			c.Fail(p+".weight", "weights must increase from step to step: %d follows %d", st.Weight, prev)
		}
		c.Range(p+".pause", st.Pause.D(), 0, specfile.MaxDuration, true)
		if st.Pause > 0 && st.Pause < a.Interval && !c.Failed("analysis.interval") {
			c.Fail(p+".pause", "%s is shorter than analysis.interval %s: no sample would be taken", st.Pause, a.Interval)
		}
		prev = st.Weight
	}
}

// Validate checks a spec built in code (tests, benchmarks).
func (s *Spec) Validate(reg Checker) error {
	s.applyDefaults()
	c := &specfile.Checker{File: "<spec>"}
	s.validate(c, reg)
	return c.Errs.Err()
}

// Uses lists what a deploy touches: traffic, release and the analysis
// signals (`drillship iam-policy`, `drillship rbac`, the preflight checks).
func (s *Spec) Uses() []activities.Use {
	var u activities.UseSet
	u.Add(activities.CapTraffic, s.Traffic)
	u.Add(activities.CapRelease, s.Release)
	u.Add(activities.CapSignals, s.Analysis.Target)
	return u.List()
}
