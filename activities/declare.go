package activities

import "sort"

// Declarations say what a provider accepts, so that a spec can be checked
// before anything runs and so that the JSON Schema and the reference are
// generated from one source (they cannot drift from what the code accepts).

// Field types, as declarations and messages spell them.
const (
	TypeString   = "string"
	TypeInt      = "int"
	TypeNumber   = "number"
	TypeBool     = "bool"
	TypeDuration = "duration"
	TypeMap      = "map"
	TypeList     = "list"
	TypeObject   = "object"
)

// Field is one setting: a config key, a fault or action parameter.
type Field struct {
	Name string `json:"name"`
	// Type is one of string|int|number|bool|duration|map|list|object.
	Type    string `json:"type"`
	Doc     string `json:"doc,omitempty"`
	Default string `json:"default,omitempty"`
	// Required fields must be given; the others take Default.
	Required bool     `json:"required,omitempty"`
	Enum     []string `json:"enum,omitempty"`
	// Min and Max bound numbers (for durations: seconds), inclusive.
	Min *float64 `json:"min,omitempty"`
	Max *float64 `json:"max,omitempty"`
	// Secret values must be given as a ${NAME} reference, expanded in the
	// worker, so that no secret reaches a workflow's history.
	Secret bool `json:"secret,omitempty"`
	// Fields of an object (Type object), or of each element of a list or
	// each value of a map whose elements are objects.
	Fields []Field `json:"fields,omitempty"`
	// Format refines a string or map: "url", "dsn" (a password in it must
	// be a ${NAME} reference), "headers" (credential headers must be
	// references), "abspath".
	Format string `json:"format,omitempty"`
}

// MetricDecl is one metric a signals provider answers for by name.
type MetricDecl struct {
	Name string `json:"name"`
	Unit string `json:"unit"` // "ratio 0..1", "seconds", "requests/s", "1|0"
	Doc  string `json:"doc,omitempty"`
	// Scopes are the scope keys the metric can be narrowed by (version,
	// region).
	Scopes []string `json:"scopes,omitempty"`
	// Min and Max bound the thresholds a check may set on it (a rate is
	// 0..1): a threshold outside can never fail or never pass.
	Min *float64 `json:"min,omitempty"`
	Max *float64 `json:"max,omitempty"`
}

// FaultDecl is one fault kind a faults provider injects.
type FaultDecl struct {
	Kind   string  `json:"kind"`
	Doc    string  `json:"doc,omitempty"`
	Params []Field `json:"params,omitempty"`
}

// ActionDecl is one action a runner runs.
type ActionDecl struct {
	Name   string  `json:"name"`
	Doc    string  `json:"doc,omitempty"`
	Params []Field `json:"params,omitempty"`
	// SafeToRetry: running it twice is the same as once.
	SafeToRetry bool `json:"safeToRetry,omitempty"`
}

// Declaration is what a provider accepts for one capability.
type Declaration struct {
	Config  []Field      `json:"config,omitempty"`
	Metrics []MetricDecl `json:"metrics,omitempty"`
	Faults  []FaultDecl  `json:"faults,omitempty"`
	Actions []ActionDecl `json:"actions,omitempty"`
	// WeightKeys says how backends are named for a traffic provider, e.g.
	// "versions" or "regions listed in config.regions".
	WeightKeys string `json:"weightKeys,omitempty"`
	// AnyMetric: the provider also takes metric names it does not list
	// (a Prometheus expr, a CloudWatch metric), so unknown names are not an
	// error; Expr says whether an expr is accepted instead.
	AnyMetric bool `json:"anyMetric,omitempty"`
	Expr      bool `json:"expr,omitempty"`
	// ExprOnly: every check needs an expr (the metric name is a label).
	ExprOnly bool `json:"exprOnly,omitempty"`
	// QueryParams are the params a check or analysis metric may pass to a
	// signals provider.
	QueryParams []Field `json:"queryParams,omitempty"`
	// AnyAction: the runner takes any action name (exec runs argv).
	AnyAction bool `json:"anyAction,omitempty"`
	// AnyFault: fault kinds are not listed (checked by the provider).
	AnyFault bool `json:"anyFault,omitempty"`
	// Backends says, for traffic settings, what the weight keys are and,
	// when the settings list them, which ones exist. Nil: not declared.
	Backends func(cfg map[string]any) Backends `json:"-"`
	// FaultsAllowed says which of Faults a target's settings let it inject
	// (a narrower grant than the provider's, such as config.kinds) and
	// where the settings say so; nil kinds, or a nil func: all of them.
	FaultsAllowed func(cfg map[string]any) (kinds []string, where string) `json:"-"`
}

// Backends is what a traffic provider's weight keys are.
type Backends struct {
	// Kind: "region", "version" or "backend" (a name the settings map).
	Kind string
	// Known are the keys that exist as far as the settings say; nil when
	// only the world knows (versions come and go with deploys).
	Known []string
	// Where says where Known comes from, for messages ("config.servers").
	Where string
	// Regions the provider knows of when Kind is not region, so that a
	// region named on a version-level target is called what it is.
	Regions []string
}

// Num returns a pointer to v, for Field.Min and Field.Max.
func Num(v float64) *float64 { return &v }

// Declared returns the declaration of provider name for capability, and
// whether the provider declares anything for it.
func (r *Registry) Declared(name, capability string) (Declaration, bool) {
	p, ok := r.providers[name]
	if !ok || p.Declare == nil || !p.has(capability) {
		return Declaration{}, false
	}
	return p.Declare(capability), true
}

// Providers returns every registered provider, sorted by name (the schema
// and reference generators walk them).
func (r *Registry) Providers() []Provider {
	out := make([]Provider, 0, len(r.providers))
	for _, p := range r.providers {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Has reports whether the provider offers capability.
func (p Provider) Has(capability string) bool { return p.has(capability) }

// Portable metrics, with the ranges their thresholds must lie in. A check
// on one of these names is bounded even on a provider that answers by expr.
var Portable = []MetricDecl{
	{Name: MetricErrorRate, Unit: "ratio 0..1", Doc: "share of requests that failed (5xx) in the window", Min: Num(0), Max: Num(1)},
	{Name: MetricLatencyP99, Unit: "seconds", Doc: "99th percentile of request latency in the window, in seconds (0.5 = 500ms)", Min: Num(0), Max: Num(3600)},
	{Name: MetricRequests, Unit: "requests/s", Doc: "requests per second in the window", Min: Num(0)},
	{Name: MetricUp, Unit: "1|0", Doc: "1 when the probed target answers healthy, else 0", Min: Num(0), Max: Num(1)},
	{Name: MetricAlarm, Unit: "1|0", Doc: "1 when the alarm is firing, else 0", Min: Num(0), Max: Num(1)},
}

// PortableMetric returns the portable metric named name.
func PortableMetric(name string) (MetricDecl, bool) {
	for _, m := range Portable {
		if m.Name == name {
			return m, true
		}
	}
	return MetricDecl{}, false
}

// WithScopes returns the portable metric with the given scope keys.
func WithScopes(name string, scopes ...string) MetricDecl {
	m, _ := PortableMetric(name)
	m.Scopes = scopes
	return m
}
