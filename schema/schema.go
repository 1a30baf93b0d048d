// Package schema generates the JSON Schema (draft 2020-12) and the reference
// documents of the deploy and drill spec formats. Both come from one source:
// the Go spec types (walked by reflection over their yaml tags), the field
// documentation in fields.go, and the declarations of the providers in a
// registry, so that neither can drift from what the parser accepts.
package schema

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/deploys"
	"github.com/drillship/drillship/drills"
	"github.com/drillship/drillship/specfile"
)

// Spec kinds.
const (
	Deploy = "deploy"
	Drill  = "drill"
)

var allCapabilities = []string{activities.CapTraffic, activities.CapRelease, activities.CapSignals, activities.CapFaults, activities.CapDatabase, activities.CapRunner}

// Kinds lists the spec kinds, in the order the CLI and the docs name them.
var Kinds = []string{Deploy, Drill}

// ID is the $id of a kind's schema: its path in the repository, so that a
// shipped spec's yaml-language-server line and the schema agree.
func ID(kind string) string {
	return "https://github.com/drillship/drillship/docs/schema/" + kind + ".json"
}

// Generate returns the JSON Schema of a spec kind, indented, ending in a
// newline.
func Generate(kind string, reg *activities.Registry) ([]byte, error) {
	g, root, err := build(kind, reg)
	if err != nil {
		return nil, err
	}
	s := obj{
		"$schema": "https://json-schema.org/draft/2020-12/schema",
		"$id":     ID(kind),
		"title":   "drillship " + kind + " spec",
		"$defs":   g.defs,
	}
	for k, v := range root {
		s[k] = v
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

type obj = map[string]any

// row is one field as the reference lists it.
type row struct {
	Field, Type, Default string
	Required             bool
	Doc                  string
}

// section is one struct type of a spec, as the reference lists it.
type section struct {
	Name, Title string
	Rows        []row
}

type gen struct {
	reg      *activities.Registry
	kind     string
	defs     obj
	sections []section
	done     map[reflect.Type]string
	// fieldSchema replaces the reflected schema of a field ("drills.Providers.traffic").
	fieldSchema map[string]obj
	// extend adds provider-dependent rules to a struct's schema.
	extend  map[string]func(obj)
	missing []string
	// used records the documented fields the walk met.
	used map[string]bool
}

var (
	specDuration = reflect.TypeOf(specfile.Duration(0))
	goDuration   = reflect.TypeOf(time.Duration(0))
)

func build(kind string, reg *activities.Registry) (*gen, obj, error) {
	g := &gen{reg: reg, kind: kind, defs: obj{}, done: map[reflect.Type]string{}, fieldSchema: map[string]obj{}, extend: map[string]func(obj){}}
	g.defs["duration"] = obj{
		"description": "a duration: a number with a unit (ns, us, ms, s, m, h), such as 30s, 5m, 1h30m; 0 for none",
		"anyOf": []any{
			obj{"type": "string", "pattern": durationPattern},
			obj{"const": 0},
		},
	}
	for _, c := range allCapabilities {
		g.defs["target."+c] = g.targetDef(c)
	}
	g.defs["target"] = obj{
		"type":                 "object",
		"additionalProperties": false,
		"required":             []any{"provider"},
		"properties": obj{
			"provider": obj{"description": "a provider that serves the step's capability", "enum": strs(g.allProviders())},
			"config":   obj{"type": "object", "description": "the provider's settings (see the provider's section for this capability)"},
		},
	}
	g.extend["activities.Check"] = g.checkRules
	g.extend["analysis.Metric"] = g.metricRules
	var t reflect.Type
	switch kind {
	case Deploy:
		t = reflect.TypeOf(deploys.Spec{})
		g.fieldSchema["deploys.Spec.traffic"] = ref("target.traffic")
		g.fieldSchema["deploys.Spec.release"] = ref("target.release")
		g.extend["deploys.Analysis"] = g.analysisRules
	case Drill:
		t = reflect.TypeOf(drills.Spec{})
		for _, c := range []string{activities.CapTraffic, activities.CapSignals, activities.CapFaults, activities.CapRunner, activities.CapDatabase} {
			g.fieldSchema["drills.Providers."+c] = ref("target." + c)
		}
		g.fieldSchema["drills.Step.target"] = ref("target")
		g.extend["drills.Step"] = g.stepRules
		g.extend["drills.Spec"] = g.drillRules
	default:
		return nil, nil, fmt.Errorf("%q is not a spec kind (allowed: %s)", kind, strings.Join(Kinds, ", "))
	}
	g.fieldSchema["activities.Check.target"] = ref("target.signals")
	rootName := g.typ(t)
	if len(g.missing) > 0 {
		sort.Strings(g.missing)
		return nil, nil, fmt.Errorf("schema: fields without documentation in schema/fields.go: %s", strings.Join(g.missing, ", "))
	}
	root := obj{"$ref": "#/$defs/" + rootName}
	return g, root, nil
}

// zeroDuration matches durations of length zero ("0", "0s", "0h0m").
const zeroDuration = `^0$|^([0.]+(ns|us|µs|ms|s|m|h))+$`

// durationPattern is what time.ParseDuration accepts, without a sign: no
// duration in a spec may be negative.
const durationPattern = `^(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h))+$|^0$`

func ref(name string) obj { return obj{"$ref": "#/$defs/" + name} }

func strs(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// typeName is how the reference spells a Go type.
func (g *gen) typeName(t reflect.Type) string {
	if t == specDuration || t == goDuration {
		return "duration"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return g.typeName(t.Elem())
	case reflect.Slice:
		return "list of " + g.typeName(t.Elem())
	case reflect.Map:
		if t.Elem().Kind() == reflect.Interface {
			return "mapping"
		}
		return "mapping of " + g.typeName(t.Elem())
	case reflect.Struct:
		return "[" + t.Name() + "](#" + strings.ToLower(t.Name()) + ")"
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int64:
		return "integer"
	case reflect.Float64:
		return "number"
	}
	return t.String()
}

// schemaOf returns the schema of a Go type, adding struct types to $defs.
func (g *gen) schemaOf(t reflect.Type) obj {
	if t == specDuration || t == goDuration {
		return ref("duration")
	}
	switch t.Kind() {
	case reflect.Pointer:
		return g.schemaOf(t.Elem())
	case reflect.Slice:
		return obj{"type": "array", "items": g.schemaOf(t.Elem())}
	case reflect.Map:
		if t.Elem().Kind() == reflect.Interface {
			return obj{"type": "object"}
		}
		return obj{"type": "object", "additionalProperties": g.schemaOf(t.Elem())}
	case reflect.Struct:
		return ref(g.typ(t))
	case reflect.String:
		return obj{"type": "string"}
	case reflect.Bool:
		return obj{"type": "boolean"}
	case reflect.Int, reflect.Int64:
		return obj{"type": "integer"}
	case reflect.Float64:
		return obj{"type": "number"}
	}
	panic("schema: no JSON Schema for Go type " + t.String())
}

func typeKey(t reflect.Type) string {
	pkg := t.PkgPath()
	return pkg[strings.LastIndex(pkg, "/")+1:] + "." + t.Name()
}

// typ builds the definition of a struct type once and returns its name.
func (g *gen) typ(t reflect.Type) string {
	if name, ok := g.done[t]; ok {
		return name
	}
	name := typeKey(t)
	g.done[t] = name
	props := obj{}
	var required []any
	sec := section{Name: t.Name(), Title: typeDocs[name]}
	if sec.Title == "" {
		g.missing = append(g.missing, name)
	}
	idx := len(g.sections)
	g.sections = append(g.sections, sec)
	g.fields(t, name, props, &required, &sec.Rows)
	g.sections[idx] = sec
	d := obj{"type": "object", "additionalProperties": false, "properties": props, "description": sec.Title}
	if len(required) > 0 {
		d["required"] = required
	}
	if ext := g.extend[name]; ext != nil {
		ext(d)
	}
	g.defs[name] = d
	return name
}

func (g *gen) fields(t reflect.Type, owner string, props obj, required *[]any, rows *[]row) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if strings.Contains(opts, "inline") {
			// An inlined struct's fields are the owner's, documented
			// under the inlined type.
			g.fields(f.Type, typeKey(f.Type), props, required, rows)
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		key := owner + "." + name
		if g.used == nil {
			g.used = map[string]bool{}
		}
		g.used[key] = true
		m, ok := fieldDocs[key]
		if !ok {
			g.missing = append(g.missing, key)
		}
		s := g.fieldSchema[key]
		if s == nil {
			s = g.schemaOf(f.Type)
		}
		s = copyObj(s)
		s["description"] = m.Doc
		if m.Limit != "" {
			s["description"] = m.Doc + " (" + m.Limit + ")"
		}
		if m.Default != "" {
			s["default"] = jsonValue(m.Default)
		}
		if m.Min != nil {
			s["minimum"] = *m.Min
		}
		if m.Max != nil {
			s["maximum"] = *m.Max
		}
		if len(m.Enum) > 0 {
			s["enum"] = strs(m.Enum)
		}
		if m.NoZero {
			s["not"] = obj{"description": "0 is refused here: leave the field out for the default", "anyOf": []any{obj{"const": 0}, obj{"type": "string", "pattern": zeroDuration}}}
		}
		if m.NonEmpty {
			s["minItems"] = 1
		}
		if m.Map != nil {
			s["additionalProperties"] = m.Map
		}
		props[name] = s
		if m.Required {
			*required = append(*required, name)
		}
		typ := g.typeName(f.Type)
		if len(m.Enum) > 0 {
			typ = "`" + strings.Join(m.Enum, "` \\| `") + "`"
		}
		if m.Limit != "" {
			typ += ", " + m.Limit
		}
		if m.Min != nil || m.Max != nil {
			typ += ", " + bounds(m.Min, m.Max)
		}
		*rows = append(*rows, row{Field: name, Type: typ, Default: m.Default, Required: m.Required, Doc: m.Doc})
	}
}

func copyObj(s obj) obj {
	out := make(obj, len(s)+2)
	for k, v := range s {
		out[k] = v
	}
	return out
}

// jsonValue turns a documented default into the JSON value a YAML parser
// would read from it.
func jsonValue(s string) any {
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		return n
	}
	if b, err := strconv.ParseBool(s); err == nil {
		return b
	}
	return s
}

func (g *gen) allProviders() []string {
	var out []string
	for _, p := range g.reg.Providers() {
		out = append(out, p.Name)
	}
	return out
}

// whenProvider is the condition "the target here names provider p".
func whenProvider(p string) obj {
	return obj{"properties": obj{"provider": obj{"const": p}}, "required": []any{"provider"}}
}

// targetDef is a target of one capability: the provider names it may take
// and, per provider, its declared settings.
func (g *gen) targetDef(capability string) obj {
	var rules []any
	for _, p := range g.reg.Names(capability) {
		rules = append(rules, obj{"if": whenProvider(p), "then": obj{"properties": obj{"config": g.configSchema(p, capability)}}})
	}
	d := obj{
		"type":                 "object",
		"additionalProperties": false,
		"required":             []any{"provider"},
		"description":          "the provider that serves " + capability + " and its settings",
		"properties": obj{
			"provider": obj{"description": "the " + capability + " provider", "enum": strs(g.reg.Names(capability))},
			"config":   obj{"type": "object", "description": "the provider's settings (see the provider's section)"},
		},
	}
	if len(rules) > 0 {
		d["allOf"] = rules
	}
	return d
}

func (g *gen) configSchema(p, capability string) obj {
	d, ok := g.reg.Declared(p, capability)
	if !ok {
		// Undeclared settings are checked by the provider's constructor.
		return obj{"type": "object"}
	}
	if len(d.Config) == 0 {
		return obj{"type": "object", "maxProperties": 0, "description": "this provider takes no settings"}
	}
	return fieldsObject(d.Config)
}

// fieldsObject is the schema of a mapping of declared fields.
func fieldsObject(fs []activities.Field) obj {
	props := obj{}
	var req []any
	for _, f := range fs {
		props[f.Name] = fieldSchema(f)
		if f.Required {
			req = append(req, f.Name)
		}
	}
	o := obj{"type": "object", "properties": props, "additionalProperties": false}
	if len(req) > 0 {
		o["required"] = req
	}
	return o
}

// secretRef is the only way to write a secret: an environment variable the
// worker expands.
const secretRef = `^\$\{[A-Za-z_][A-Za-z0-9_]*\}$`

func fieldSchema(f activities.Field) obj {
	s := obj{}
	switch f.Type {
	case activities.TypeString:
		s["type"] = "string"
	case activities.TypeInt:
		s["type"] = "integer"
	case activities.TypeNumber:
		s["type"] = "number"
	case activities.TypeBool:
		s["type"] = "boolean"
	case activities.TypeDuration:
		s["$ref"] = "#/$defs/duration"
	case activities.TypeMap:
		s["type"] = "object"
		if len(f.Fields) > 0 {
			// Fields describe each value of the mapping.
			s["additionalProperties"] = fieldsObject(f.Fields)
		}
	case activities.TypeList:
		s["type"] = "array"
		if len(f.Fields) > 0 {
			s["items"] = fieldsObject(f.Fields)
		}
	case activities.TypeObject:
		s = fieldsObject(f.Fields)
	}
	if f.Doc != "" {
		s["description"] = f.Doc
	}
	if f.Default != "" {
		s["default"] = jsonValue(f.Default)
	}
	if len(f.Enum) > 0 {
		// The parser also takes a ${NAME} reference in place of a value.
		s["anyOf"] = []any{obj{"enum": strs(f.Enum)}, obj{"pattern": secretRef}}
	}
	if f.Type == activities.TypeInt || f.Type == activities.TypeNumber {
		if f.Min != nil {
			s["minimum"] = *f.Min
		}
		if f.Max != nil {
			s["maximum"] = *f.Max
		}
	}
	// A URL's name may say token (oauth2 token_url); its password is
	// checked by the url format instead.
	if f.Secret || (f.Type == activities.TypeString && f.Format != "url" && activities.SecretLooking(f.Name)) {
		s["pattern"] = `^$|` + secretRef
	}
	switch f.Format {
	case "headers":
		s["additionalProperties"] = obj{"type": "string"}
		s["patternProperties"] = obj{credentialHeaderNames(): obj{"type": "string", "pattern": credentialValue}}
	case "dsn", "url":
		if f.Type == activities.TypeMap {
			s["additionalProperties"] = noPassword(obj{"type": "string"})
		} else {
			noPassword(s)
		}
	}
	return s
}

// The secrets rules of the parser (package activities), as patterns: a
// credential header's value and a password in a DSN or URL must be ${NAME}
// references.
const (
	refRe = `\$\{[A-Za-z_][A-Za-z0-9_]*\}`
	// credentialValue: a reference, perhaps after a scheme word ("Bearer").
	credentialValue = `^(\S+\s+)?` + refRe + `$`
	// urlUserinfoOK: a URL with no password in its user info, or a
	// reference.
	urlUserinfoOK = `^[^:/]*://(([^:@/]*|[^:@/]*:` + refRe + `)@)?[^@]*$`
	kvPassword    = `(^|\s)[Pp][Aa][Ss][Ss][Ww][Oo][Rr][Dd]\s*=\s*([^$\s]|\$[^{])`
)

// secretWords in a header's name make its value a credential (the
// parser's activities.SecretLooking; a test holds the two together).
var secretWords = []string{"auth", "cookie", "token", "secret", "password", "passwd", "apikey", "api-key", "api_key", "credential"}

// credentialHeaderNames matches header names that contain a secret word, in
// any letter case.
func credentialHeaderNames() string {
	var alts []string
	for _, h := range secretWords {
		var b strings.Builder
		for _, r := range h {
			if u := strings.ToUpper(string(r)); u != string(r) {
				b.WriteString("[" + u + string(r) + "]")
			} else {
				b.WriteRune(r)
			}
		}
		alts = append(alts, b.String())
	}
	return "(" + strings.Join(alts, "|") + ")"
}

func noPassword(s obj) obj {
	addAll(s,
		obj{"anyOf": []any{obj{"not": obj{"pattern": "://"}}, obj{"pattern": urlUserinfoOK}}},
		obj{"not": obj{"pattern": kvPassword}},
	)
	return s
}

// shared keeps a provider's rules once in $defs and refers to them.
func (g *gen) shared(name string, rules obj) obj {
	if rules == nil {
		return nil
	}
	g.defs[name] = rules
	return ref(name)
}

// queryRules are the rules a signals provider puts on a check or an
// analysis metric that reads from it; nil when it declares none.
func (g *gen) queryRules(p string) obj {
	return g.shared("signals."+p, g.queryRulesOf(p))
}

func (g *gen) queryRulesOf(p string) obj {
	d, ok := g.reg.Declared(p, activities.CapSignals)
	if !ok {
		return nil
	}
	props := obj{}
	var rules []any
	var names []string
	for _, m := range d.Metrics {
		names = append(names, m.Name)
	}
	switch {
	case d.AnyMetric && len(names) > 0:
		// Listed names are offered; others are the provider's own.
		props["metric"] = obj{"anyOf": []any{obj{"enum": strs(names)}, obj{"type": "string"}}}
	case len(names) > 0:
		// With an expr the metric name is only a label.
		rules = append(rules, obj{"if": obj{"required": []any{"expr"}}, "else": obj{"properties": obj{"metric": obj{"enum": strs(names)}}}})
	}
	if !d.Expr {
		props["expr"] = false
	}
	if d.ExprOnly {
		rules = append(rules, obj{"description": "provider " + p + " answers expressions; the metric name is a label", "required": []any{"expr"}})
	}
	switch {
	case len(d.QueryParams) > 0:
		props["params"] = paramsObject(d.QueryParams)
	case !d.AnyMetric:
		props["params"] = obj{"maxProperties": 0, "description": "provider " + p + " takes no params"}
	}
	for _, m := range d.Metrics {
		isM := obj{"properties": obj{"metric": obj{"const": m.Name}}, "required": []any{"metric"}}
		scope := obj{"maxProperties": 0}
		if len(m.Scopes) > 0 {
			scope = obj{"propertyNames": obj{"enum": strs(m.Scopes)}}
		}
		rules = append(rules, obj{
			"if":   obj{"allOf": []any{isM, obj{"not": obj{"required": []any{"expr"}}}}},
			"then": obj{"properties": obj{"scope": scope, "canaryScope": scope, "baselineScope": scope}},
		})
		if m.Min != nil || m.Max != nil {
			b := obj{}
			if m.Min != nil {
				b["minimum"] = *m.Min
			}
			if m.Max != nil {
				b["maximum"] = *m.Max
			}
			rules = append(rules, obj{"if": isM, "then": obj{"properties": obj{"max": b, "min": b, "ignoreBelow": b}}})
		}
	}
	if len(props) == 0 && len(rules) == 0 {
		return nil
	}
	out := obj{"properties": props}
	if len(rules) > 0 {
		out["allOf"] = rules
	}
	return out
}

// thresholdRules bound the thresholds of the portable metrics: a rate is
// 0..1, so a max of -0.5 or 5 is a mistake, not a policy.
func thresholdRules(fields ...string) []any {
	var out []any
	for _, m := range activities.Portable {
		b := obj{}
		if m.Min != nil {
			b["minimum"] = *m.Min
		}
		if m.Max != nil {
			b["maximum"] = *m.Max
		}
		props := obj{}
		for _, f := range fields {
			props[f] = b
		}
		out = append(out, obj{
			"if":   obj{"properties": obj{"metric": obj{"const": m.Name}}, "required": []any{"metric"}},
			"then": obj{"properties": props},
		})
	}
	return out
}

func addAll(d obj, rules ...any) {
	if len(rules) == 0 {
		return
	}
	all, _ := d["allOf"].([]any)
	d["allOf"] = append(all, rules...)
}

// checkRules: a check with its own target follows that provider's
// declaration.
func (g *gen) checkRules(d obj) {
	rules := append(thresholdRules("max", "min"),
		oneOfFields("a check reads a metric or an expr", "metric", "expr"),
		oneOfFields("a check without a threshold never fails", "max", "min"))
	for _, p := range g.reg.Names(activities.CapSignals) {
		if q := g.queryRules(p); q != nil {
			rules = append(rules, obj{
				"if":   obj{"properties": obj{"target": whenProvider(p)}, "required": []any{"target"}},
				"then": q,
			})
		}
	}
	addAll(d, rules...)
}

func (g *gen) metricRules(d obj) {
	addAll(d, thresholdRules("max", "ignoreBelow")...)
	addAll(d, oneOfFields("a metric reads a metric or an expr", "metric", "expr"),
		oneOfFields("a metric needs max, maxVsBaseline or both", "max", "maxVsBaseline"))
}

// oneOfFields: at least one of the fields is given.
func oneOfFields(why string, fields ...string) obj {
	var alts []any
	for _, f := range fields {
		alts = append(alts, obj{"required": []any{f}})
	}
	return obj{"description": why, "anyOf": alts}
}

// analysisRules: the analysis provider's settings and metric names.
func (g *gen) analysisRules(d obj) {
	props := d["properties"].(obj)
	props["provider"] = copyObj(props["provider"].(obj))
	props["provider"].(obj)["enum"] = strs(g.reg.Names(activities.CapSignals))
	var rules []any
	for _, p := range g.reg.Names(activities.CapSignals) {
		then := obj{"config": g.configSchema(p, activities.CapSignals)}
		if q := g.queryRules(p); q != nil {
			then["metrics"] = obj{"items": q}
		}
		rules = append(rules, obj{"if": whenProvider(p), "then": obj{"properties": then}})
	}
	addAll(d, rules...)
}

// Step kinds of a drill, in the order the reference lists them.
var stepKinds = []string{"fault", "weights", "failover", "action", "database", "deploy"}

// faultRules is what a faults provider's declaration allows in a fault
// step; nil when it does not list its fault kinds.
func (g *gen) faultRules(p string) obj { return g.shared("fault."+p, g.faultRulesOf(p)) }

func (g *gen) faultRulesOf(p string) obj {
	d, ok := g.reg.Declared(p, activities.CapFaults)
	if !ok || d.AnyFault || len(d.Faults) == 0 {
		return nil
	}
	var kinds []string
	var rules []any
	for _, f := range d.Faults {
		kinds = append(kinds, f.Kind)
		rules = append(rules, obj{
			"if":   obj{"properties": obj{"kind": obj{"const": f.Kind}}, "required": []any{"kind"}},
			"then": obj{"properties": obj{"params": paramsObject(f.Params)}},
		})
	}
	return obj{"properties": obj{"kind": obj{"enum": strs(kinds)}}, "allOf": rules}
}

func (g *gen) actionRules(p string) obj { return g.shared("action."+p, g.actionRulesOf(p)) }

func (g *gen) actionRulesOf(p string) obj {
	d, ok := g.reg.Declared(p, activities.CapRunner)
	if !ok || d.AnyAction || len(d.Actions) == 0 {
		return nil
	}
	var names []string
	var rules []any
	for _, a := range d.Actions {
		names = append(names, a.Name)
		rules = append(rules, obj{
			"if":   obj{"properties": obj{"name": obj{"const": a.Name}}, "required": []any{"name"}},
			"then": obj{"properties": obj{"params": paramsObject(a.Params)}},
		})
	}
	return obj{"properties": obj{"name": obj{"enum": strs(names)}}, "allOf": rules}
}

// paramsObject: params are strings in Go, so a number may be written either
// way; declared bounds still apply to numbers.
func paramsObject(fs []activities.Field) obj {
	o := fieldsObject(fs)
	for _, f := range fs {
		s := o["properties"].(obj)[f.Name].(obj)
		if s["type"] == "integer" || s["type"] == "number" {
			s["type"] = []any{s["type"], "string"}
		}
	}
	return o
}

// stepRules: exactly one kind per step; a step with its own target follows
// that provider's fault kinds and actions.
func (g *gen) stepRules(d obj) {
	var kinds []any
	for _, k := range stepKinds {
		kinds = append(kinds, obj{"title": k + " step", "required": []any{k}})
	}
	d["oneOf"] = kinds
	var rules []any
	for _, p := range g.allProviders() {
		props := obj{}
		if f := g.faultRules(p); f != nil {
			props["fault"] = f
		}
		if a := g.actionRules(p); a != nil {
			props["action"] = a
		}
		if len(props) > 0 {
			rules = append(rules, obj{
				"if":   obj{"properties": obj{"target": whenProvider(p)}, "required": []any{"target"}},
				"then": obj{"properties": props},
			})
		}
	}
	addAll(d, rules...)
}

// Where a drill's checks and steps are.
var (
	checkLists = [][]string{{"steadyState"}, {"detection", "signals"}, {"mitigation", "slo"}, {"recovery", "checks"}, {"guardrails", "checks"},
		{"inject", "*", "failover", "verify"}, {"mitigation", "steps", "*", "failover", "verify"}, {"restore", "*", "failover", "verify"}}
	stepLists = [][]string{{"inject"}, {"mitigation", "steps"}, {"restore"}}
)

// at nests leaf under path: properties for names, items for "*", and the
// list's items at the end.
func at(path []string, leaf obj) obj {
	s := obj{"items": leaf}
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == "*" {
			s = obj{"items": s}
			continue
		}
		s = obj{"properties": obj{path[i]: s}}
	}
	return s
}

// exists is the condition "the value at path (names only) is there and
// matches leaf".
func exists(path []string, leaf obj) obj {
	s := leaf
	for i := len(path) - 1; i >= 0; i-- {
		s = obj{"properties": obj{path[i]: s}, "required": []any{path[i]}}
	}
	return s
}

// unlessTarget applies rules to the items that name no target of their own
// (they use the drill's providers).
func unlessTarget(rules obj) obj {
	return obj{"if": obj{"required": []any{"target"}}, "else": rules}
}

// drillRules: where each step kind may stand, and the drill's default
// providers decide the metric names, fault kinds and actions of the checks
// and steps without their own target.
func (g *gen) drillRules(d obj) {
	// Checks without a target read from providers.signals.
	for _, path := range checkLists {
		if slices.Contains(path, "*") {
			continue
		}
		addAll(d, obj{
			"if":   exists(path, obj{"contains": obj{"not": obj{"required": []any{"target"}}}}),
			"then": obj{"description": "checks without a target need providers.signals", "required": []any{"providers"}, "properties": obj{"providers": obj{"required": []any{activities.CapSignals}}}},
		})
	}
	// load is applied by a runner with a load action.
	var loaders []string
	for _, p := range g.reg.Names(activities.CapRunner) {
		r, ok := g.reg.Declared(p, activities.CapRunner)
		if _, has := r.Action("load"); !ok || has {
			loaders = append(loaders, p)
		}
	}
	addAll(d, obj{
		"if": obj{"properties": obj{"load": obj{"exclusiveMinimum": 0}}, "required": []any{"load"}},
		"then": obj{"description": "load needs providers.runner with a load action", "required": []any{"providers"}, "properties": obj{"providers": obj{
			"required": []any{activities.CapRunner}, "properties": obj{activities.CapRunner: obj{"properties": obj{"provider": obj{"enum": strs(loaders)}}}}}}},
	})
	addAll(d,
		at([]string{"inject"}, obj{"description": "inject steps inject faults or run a deploy", "anyOf": []any{obj{"required": []any{"fault"}}, obj{"required": []any{"deploy"}}}}),
		at([]string{"mitigation", "steps"}, obj{"properties": obj{"fault": false, "deploy": false}}),
		at([]string{"restore"}, obj{"description": "injected faults are stopped on their own; deploys belong in inject", "properties": obj{"fault": false, "deploy": false}}),
	)
	whenDefault := func(capability, p string) obj {
		return obj{"properties": obj{"providers": obj{"properties": obj{capability: whenProvider(p)}, "required": []any{capability}}}, "required": []any{"providers"}}
	}
	var rules []any
	for _, p := range g.reg.Names(activities.CapSignals) {
		q := g.queryRules(p)
		if q == nil {
			continue
		}
		var then []any
		for _, path := range checkLists {
			then = append(then, at(path, unlessTarget(q)))
		}
		rules = append(rules, obj{"if": whenDefault(activities.CapSignals, p), "then": obj{"allOf": then}})
	}
	for _, c := range []struct {
		capability, field string
		rules             func(string) obj
	}{{activities.CapFaults, "fault", g.faultRules}, {activities.CapRunner, "action", g.actionRules}} {
		for _, p := range g.reg.Names(c.capability) {
			r := c.rules(p)
			if r == nil {
				continue
			}
			var then []any
			for _, path := range stepLists {
				then = append(then, at(path, unlessTarget(obj{"properties": obj{c.field: r}})))
			}
			rules = append(rules, obj{"if": whenDefault(c.capability, p), "then": obj{"allOf": then}})
		}
	}
	addAll(d, rules...)
}
