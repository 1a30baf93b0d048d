package activities

import (
	"fmt"
	"math"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Problem is one thing a declaration refuses. Path is relative to what was
// checked ("timeout", "servers.v1", "params.rate").
type Problem struct {
	Path string
	Msg  string
	// Unknown marks an unknown setting: reported only when the provider's
	// constructor refuses the settings too, so that a declaration lagging
	// behind a new setting never refuses a valid spec.
	Unknown bool
}

// Bounds every duration setting has unless its field says otherwise: a
// typo of 99999h must not pass for a week-long timeout.
const (
	MaxDuration = 7 * 24 * time.Hour
)

var wholeRef = regexp.MustCompile(`^\$\{[A-Za-z_][A-Za-z0-9_]*\}$`)

// IsRef reports whether s is exactly one ${NAME} reference.
func IsRef(s string) bool { return wholeRef.MatchString(s) }

// Describe names a value's type the way a spec writer thinks of it.
func Describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "nothing"
	case string:
		return fmt.Sprintf("text %q", x)
	case bool:
		return fmt.Sprintf("true/false %v", x)
	case int, int64, uint64:
		return fmt.Sprintf("number %v", x)
	case float64:
		return fmt.Sprintf("number %g", x)
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	}
	return fmt.Sprintf("%v", v)
}

// TypeWord is how messages name a field type.
func TypeWord(t string) string {
	switch t {
	case TypeString:
		return "text"
	case TypeInt:
		return "a whole number"
	case TypeNumber:
		return "a number"
	case TypeBool:
		return "true or false"
	case TypeDuration:
		return "a duration such as 5s or 1m"
	case TypeMap:
		return "a mapping of names to text"
	case TypeList:
		return "a list"
	case TypeObject:
		return "a mapping"
	}
	return t
}

// CheckConfig checks provider settings against the declared fields:
// unknown keys, types, enums, bounds and secrets.
func CheckConfig(fields []Field, cfg map[string]any) []Problem {
	return checkObject("", fields, cfg)
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

func names(fields []Field) []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = f.Name
	}
	sort.Strings(out)
	return out
}

func checkObject(prefix string, fields []Field, m map[string]any) []Problem {
	var ps []Problem
	byName := map[string]Field{}
	for _, f := range fields {
		byName[f.Name] = f
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f, ok := byName[k]
		if !ok {
			allowed := "none"
			if len(fields) > 0 {
				allowed = strings.Join(names(fields), ", ")
			}
			ps = append(ps, Problem{Path: join(prefix, k), Msg: "unknown setting (allowed: " + allowed + ")", Unknown: true})
			continue
		}
		if sv, ok := m[k].(string); ok && !f.Secret && f.Type == TypeString && f.Format != "url" && SecretLooking(k) && sv != "" && !IsRef(sv) {
			ps = append(ps, Problem{Path: join(prefix, k), Msg: "looks like a secret written in the spec: give it as a ${NAME} reference (expanded in the worker) so that it never reaches a workflow's history"})
			continue
		}
		ps = append(ps, checkValue(join(prefix, k), f, m[k])...)
	}
	for _, f := range fields {
		if _, ok := m[f.Name]; f.Required && !ok {
			ps = append(ps, Problem{Path: join(prefix, f.Name), Msg: "missing: " + f.Doc})
		}
	}
	return ps
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint64:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

func bounds(f Field) string {
	switch {
	case f.Min != nil && f.Max != nil:
		return fmt.Sprintf("%g..%g", *f.Min, *f.Max)
	case f.Min != nil:
		return fmt.Sprintf("%g or more", *f.Min)
	case f.Max != nil:
		return fmt.Sprintf("%g or less", *f.Max)
	}
	return ""
}

func durBounds(f Field) (time.Duration, time.Duration) {
	lo, hi := time.Duration(1), MaxDuration
	if f.Min != nil {
		lo = time.Duration(*f.Min * float64(time.Second))
	}
	if f.Max != nil {
		hi = time.Duration(*f.Max * float64(time.Second))
	}
	return lo, hi
}

func checkValue(path string, f Field, v any) []Problem {
	bad := func() []Problem {
		return []Problem{{Path: path, Msg: fmt.Sprintf("expected %s, got %s", TypeWord(f.Type), Describe(v))}}
	}
	switch f.Type {
	case TypeString:
		s, ok := v.(string)
		if !ok {
			return bad()
		}
		return checkString(path, f, s)
	case TypeInt, TypeNumber:
		n, ok := toFloat(v)
		if !ok || (f.Type == TypeInt && n != math.Trunc(n)) {
			return bad()
		}
		if (f.Min != nil && n < *f.Min) || (f.Max != nil && n > *f.Max) {
			return []Problem{{Path: path, Msg: fmt.Sprintf("%g is out of range (allowed: %s)", n, bounds(f))}}
		}
	case TypeBool:
		if _, ok := v.(bool); !ok {
			return bad()
		}
	case TypeDuration:
		s, ok := v.(string)
		if !ok {
			return bad()
		}
		if IsRef(s) {
			return nil
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return bad()
		}
		if lo, hi := durBounds(f); d < lo || d > hi {
			return []Problem{{Path: path, Msg: fmt.Sprintf("%s is out of range (allowed: %s..%s)", s, lo, hi)}}
		}
	case TypeMap:
		m, ok := v.(map[string]any)
		if !ok {
			return bad()
		}
		var ps []Problem
		for _, k := range sortedAnyKeys(m) {
			if len(f.Fields) > 0 {
				// A map of objects: each value is checked against Fields.
				o, ok := m[k].(map[string]any)
				if !ok {
					ps = append(ps, Problem{Path: path + "." + k, Msg: "expected a mapping, got " + Describe(m[k])})
					continue
				}
				ps = append(ps, checkObject(path+"."+k, f.Fields, o)...)
				continue
			}
			s, ok := m[k].(string)
			if !ok {
				ps = append(ps, Problem{Path: path + "." + k, Msg: "expected text, got " + Describe(m[k])})
				continue
			}
			ps = append(ps, checkMapEntry(path+"."+k, f, k, s)...)
		}
		return ps
	case TypeList:
		l, ok := v.([]any)
		if !ok {
			return bad()
		}
		var ps []Problem
		for i, e := range l {
			p := fmt.Sprintf("%s[%d]", path, i)
			if len(f.Fields) > 0 {
				m, ok := e.(map[string]any)
				if !ok {
					ps = append(ps, Problem{Path: p, Msg: "expected a mapping, got " + Describe(e)})
					continue
				}
				ps = append(ps, checkObject(p, f.Fields, m)...)
				continue
			}
			s, ok := e.(string)
			if !ok {
				ps = append(ps, Problem{Path: p, Msg: "expected text, got " + Describe(e)})
				continue
			}
			ps = append(ps, checkString(p, Field{Name: f.Name, Type: TypeString, Format: f.Format, Secret: f.Secret}, s)...)
		}
		return ps
	case TypeObject:
		m, ok := v.(map[string]any)
		if !ok {
			return bad()
		}
		return checkObject(path, f.Fields, m)
	}
	return nil
}

func sortedAnyKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func checkString(path string, f Field, s string) []Problem {
	if f.Secret && s != "" && !IsRef(s) {
		return []Problem{{Path: path, Msg: "a secret written in the spec: give it as a ${NAME} reference (expanded in the worker) so that it never reaches a workflow's history"}}
	}
	if len(f.Enum) > 0 && !slices.Contains(f.Enum, s) && !IsRef(s) {
		return []Problem{{Path: path, Msg: fmt.Sprintf("%q is not allowed (allowed: %s)", s, strings.Join(f.Enum, ", "))}}
	}
	switch f.Format {
	case "url":
		if strings.Contains(s, "${") {
			return nil
		}
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return []Problem{{Path: path, Msg: fmt.Sprintf("%q is not an http(s) URL (such as http://host:9090)", s)}}
		}
		if u.User != nil {
			if _, has := u.User.Password(); has && literalPassword(s) {
				return []Problem{{Path: path, Msg: "a password written in the URL: give it as a ${NAME} reference (expanded in the worker)"}}
			}
		}
	case "dsn":
		if literalPassword(s) {
			return []Problem{{Path: path, Msg: "a password written in the DSN: give it as a ${NAME} reference (postgres://user:${PGPASSWORD}@host/db), expanded in the worker"}}
		}
	case "abspath":
		if s != "" && !filepath.IsAbs(s) && !strings.HasPrefix(s, "${") {
			return []Problem{{Path: path, Msg: fmt.Sprintf("%q is not an absolute path", s)}}
		}
	}
	return nil
}

var kvPassword = regexp.MustCompile(`(?i)(?:^|\s)password\s*=\s*('[^']*'|\S+)`)

// literalPassword finds a password in a URL DSN's user info or a key=value
// DSN's password= that is not one ${NAME} reference.
func literalPassword(dsn string) bool {
	if m := kvPassword.FindStringSubmatch(dsn); m != nil {
		return !IsRef(strings.Trim(m[1], "'"))
	}
	if i := strings.Index(dsn, "://"); i >= 0 {
		rest := dsn[i+3:]
		at := strings.LastIndex(rest, "@")
		if at < 0 {
			return false
		}
		userinfo := rest[:at]
		if c := strings.Index(userinfo, ":"); c >= 0 {
			pw := userinfo[c+1:]
			return pw != "" && !IsRef(pw)
		}
	}
	return false
}

// secretWords mark a header or setting whose value is a credential: it
// must be a reference.
var secretWords = []string{"authorization", "auth", "cookie", "token", "secret", "password", "passwd", "apikey", "api-key", "api_key", "credential"}

// SecretLooking reports whether a header or setting name says its value is
// a credential.
func SecretLooking(name string) bool {
	n := strings.ToLower(name)
	if strings.Contains(n, "file") || strings.Contains(n, "path") {
		return false // where a secret is read from is not the secret
	}
	for _, w := range secretWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

func checkMapEntry(path string, f Field, key, val string) []Problem {
	if f.Secret && !IsRef(val) {
		return []Problem{{Path: path, Msg: "a secret written in the spec: give it as a ${NAME} reference (expanded in the worker)"}}
	}
	switch f.Format {
	case "headers":
		if SecretLooking(key) && !refOnlyCredential(val) {
			return []Problem{{Path: path, Msg: "a credential written in the spec: give it as a ${NAME} reference (\"Bearer ${API_TOKEN}\"), expanded in the worker"}}
		}
	case "dsn":
		if literalPassword(val) {
			return []Problem{{Path: path, Msg: "a password written in the DSN: give it as a ${NAME} reference (postgres://user:${PGPASSWORD}@host/db), expanded in the worker"}}
		}
	}
	return nil
}

var anyRef = regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*\}`)

// refOnlyCredential: the credential is a reference; a scheme word in front
// ("Bearer ${TOKEN}") is not secret.
func refOnlyCredential(v string) bool {
	if !anyRef.MatchString(v) {
		return false
	}
	return len(strings.Fields(anyRef.ReplaceAllString(v, ""))) <= 1
}

// CheckParams checks a fault's or action's params (all text in specs)
// against the declared ones.
func CheckParams(fields []Field, params map[string]string) []Problem {
	var ps []Problem
	byName := map[string]Field{}
	for _, f := range fields {
		byName[f.Name] = f
	}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f, ok := byName[k]
		p := "params." + k
		if !ok {
			allowed := "none"
			if len(fields) > 0 {
				allowed = strings.Join(names(fields), ", ")
			}
			ps = append(ps, Problem{Path: p, Msg: "unknown parameter (allowed: " + allowed + ")"})
			continue
		}
		v := params[k]
		switch f.Type {
		case TypeInt, TypeNumber:
			n, err := strconv.ParseFloat(v, 64)
			if err != nil || (f.Type == TypeInt && n != math.Trunc(n)) {
				ps = append(ps, Problem{Path: p, Msg: fmt.Sprintf("expected %s, got %q", TypeWord(f.Type), v)})
				continue
			}
			if (f.Min != nil && n < *f.Min) || (f.Max != nil && n > *f.Max) {
				ps = append(ps, Problem{Path: p, Msg: fmt.Sprintf("%s is out of range (allowed: %s)", v, bounds(f))})
			}
		case TypeDuration:
			d, err := time.ParseDuration(v)
			if err != nil {
				ps = append(ps, Problem{Path: p, Msg: fmt.Sprintf("expected %s, got %q", TypeWord(f.Type), v)})
				continue
			}
			if lo, hi := durBounds(f); d < lo || d > hi {
				ps = append(ps, Problem{Path: p, Msg: fmt.Sprintf("%s is out of range (allowed: %s..%s)", v, lo, hi)})
			}
		default:
			ps = append(ps, checkString(p, f, v)...)
		}
	}
	for _, f := range fields {
		if _, ok := params[f.Name]; f.Required && !ok {
			ps = append(ps, Problem{Path: "params." + f.Name, Msg: "missing: " + f.Doc})
		}
	}
	return ps
}

// Metric returns the declared metric named name.
func (d Declaration) Metric(name string) (MetricDecl, bool) {
	for _, m := range d.Metrics {
		if m.Name == name {
			return m, true
		}
	}
	return MetricDecl{}, false
}

// Fault returns the declared fault kind.
func (d Declaration) Fault(kind string) (FaultDecl, bool) {
	for _, f := range d.Faults {
		if f.Kind == kind {
			return f, true
		}
	}
	return FaultDecl{}, false
}

// Action returns the declared action.
func (d Declaration) Action(name string) (ActionDecl, bool) {
	for _, a := range d.Actions {
		if a.Name == name {
			return a, true
		}
	}
	return ActionDecl{}, false
}

// MetricNames, FaultKinds and ActionNames list what is declared, for
// messages.
func (d Declaration) MetricNames() []string {
	out := make([]string, len(d.Metrics))
	for i, m := range d.Metrics {
		out[i] = m.Name
	}
	return out
}

// FaultKinds lists the declared fault kinds.
func (d Declaration) FaultKinds() []string {
	out := make([]string, len(d.Faults))
	for i, f := range d.Faults {
		out[i] = f.Kind
	}
	return out
}

// ActionNames lists the declared actions.
func (d Declaration) ActionNames() []string {
	out := make([]string, len(d.Actions))
	for i, a := range d.Actions {
		out[i] = a.Name
	}
	return out
}

// CheckTarget checks that t names a provider offering capability and that
// its settings are what the provider declares; settings that pass the
// declaration are then given to the constructor, which may know more.
// Paths are relative to the target ("provider", "config.timeout").
func (r *Registry) CheckTarget(capability string, t Target) []Problem {
	p, err := r.lookup(capability, t)
	if err != nil {
		return []Problem{{Path: "provider", Msg: strings.TrimPrefix(err.Error(), "provider: ")}}
	}
	verr := r.Validate(capability, t)
	if p.Declare != nil {
		var ps []Problem
		for _, pr := range CheckConfig(p.Declare(capability).Config, t.Config) {
			if pr.Unknown && verr == nil {
				continue
			}
			ps = append(ps, Problem{Path: "config." + pr.Path, Msg: pr.Msg})
		}
		if len(ps) > 0 {
			return ps
		}
	}
	if verr != nil {
		return []Problem{{Path: "config", Msg: strings.TrimPrefix(strings.TrimPrefix(verr.Error(), fmt.Sprintf("config (provider %s): ", t.Provider)), "config: ")}}
	}
	return nil
}

// Threshold is a check's bounds as written, for CheckQuery.
type Threshold struct {
	Name string // "max", "min", "ignoreBelow"
	V    *float64
}

// CheckQuery checks a query (a check or an analysis metric) against a
// signals declaration: the metric is one the provider answers (or an expr
// where it takes one), the scope keys are the metric's, the params are
// declared, and the thresholds lie in the metric's range (a rate is 0..1).
//
// scopes maps the field a scope is written in ("scope", "canaryScope") to
// the scope.
func CheckQuery(provider string, d Declaration, q Query, scopes map[string]map[string]string, th ...Threshold) []Problem {
	var ps []Problem
	md, declared := d.Metric(q.Metric)
	switch {
	case q.Expr != "" && !d.Expr:
		ps = append(ps, Problem{Path: "expr", Msg: fmt.Sprintf("not used by provider %s: name a metric (allowed: %s)", provider, strings.Join(d.MetricNames(), ", "))})
	case q.Expr == "" && d.ExprOnly:
		ps = append(ps, Problem{Path: "expr", Msg: fmt.Sprintf("missing: provider %s answers expressions (PromQL); the metric name is only a label", provider)})
	case q.Expr == "" && q.Metric != "" && !declared && !d.AnyMetric && len(d.Metrics) > 0:
		ps = append(ps, Problem{Path: "metric", Msg: fmt.Sprintf("%q is not a metric of provider %s (allowed: %s)", q.Metric, provider, strings.Join(d.MetricNames(), ", "))})
	}
	if declared && q.Expr == "" {
		fields := make([]string, 0, len(scopes))
		for f := range scopes {
			fields = append(fields, f)
		}
		sort.Strings(fields)
		for _, field := range fields {
			sc := scopes[field]
			for _, k := range sortedStrKeys(sc) {
				if !slices.Contains(md.Scopes, k) {
					allowed := "none"
					if len(md.Scopes) > 0 {
						allowed = strings.Join(md.Scopes, ", ")
					}
					ps = append(ps, Problem{Path: field + "." + k, Msg: fmt.Sprintf("%s of provider %s cannot be narrowed by %s (allowed: %s)", q.Metric, provider, k, allowed)})
				}
			}
		}
	}
	if d.QueryParams != nil || (len(d.Metrics) > 0 && !d.AnyMetric) {
		ps = append(ps, CheckParams(d.QueryParams, q.Params)...)
	}
	if !declared {
		md, declared = PortableMetric(q.Metric)
	}
	if declared {
		for _, t := range th {
			if t.V == nil {
				continue
			}
			if (md.Min != nil && *t.V < *md.Min) || (md.Max != nil && *t.V > *md.Max) {
				ps = append(ps, Problem{Path: t.Name, Msg: fmt.Sprintf("%g is out of range for %s (%s): allowed %s", *t.V, md.Name, md.Unit, bounds(Field{Min: md.Min, Max: md.Max}))})
			}
		}
	}
	return ps
}

func sortedStrKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

var versionLabel = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// CheckFault checks a fault against a faults declaration. known lists what
// exists for params of a Format ("region": the regions), when known.
func CheckFault(provider string, d Declaration, f Fault, known map[string][]string) []Problem {
	if d.AnyFault || len(d.Faults) == 0 {
		return nil
	}
	fd, ok := d.Fault(f.Kind)
	if !ok {
		return []Problem{{Path: "kind", Msg: fmt.Sprintf("%q is not a fault of provider %s (allowed: %s)", f.Kind, provider, strings.Join(d.FaultKinds(), ", "))}}
	}
	return append(CheckParams(fd.Params, f.Params), checkKnown(fd.Params, f.Params, known)...)
}

// CheckTargetFault is CheckFault for a fault run on target t: a declared
// kind that t's settings leave out is refused as well, since its inject
// would be (and nothing else about it matters then).
func CheckTargetFault(t Target, d Declaration, f Fault, known map[string][]string) []Problem {
	if _, declared := d.Fault(f.Kind); declared && !d.AnyFault && d.FaultsAllowed != nil {
		if kinds, where := d.FaultsAllowed(t.Config); kinds != nil && !slices.Contains(kinds, f.Kind) {
			return []Problem{{Path: "kind", Msg: fmt.Sprintf("%q is not in %s of this %s target (allowed: %s)", f.Kind, where, t.Provider, strings.Join(kinds, ", "))}}
		}
	}
	return CheckFault(t.Provider, d, f, known)
}

func checkKnown(fields []Field, params map[string]string, known map[string][]string) []Problem {
	var ps []Problem
	for _, fl := range fields {
		v, ok := params[fl.Name]
		if !ok {
			continue
		}
		switch fl.Format {
		case "version":
			if !versionLabel.MatchString(v) {
				ps = append(ps, Problem{Path: "params." + fl.Name, Msg: fmt.Sprintf("%q is not a version label (letters, digits, '.', '_', '-'; up to 63)", v)})
			}
		case "region":
			if list := known["region"]; list != nil && !slices.Contains(list, v) {
				ps = append(ps, Problem{Path: "params." + fl.Name, Msg: fmt.Sprintf("%q is not a region of %s (allowed: %s)", v, knownWhere(known), strings.Join(list, ", "))})
			}
		}
	}
	return ps
}

func knownWhere(known map[string][]string) string {
	if w := known["where"]; len(w) > 0 {
		return w[0]
	}
	return "the environment"
}

// CheckAction checks a runner action against a runner declaration.
func CheckAction(provider string, d Declaration, a Action) []Problem {
	if d.AnyAction {
		var ps []Problem
		if len(a.Argv) == 0 {
			ps = append(ps, Problem{Path: "argv", Msg: fmt.Sprintf("missing: provider %s runs argv (a command and its arguments)", provider)})
		}
		if len(d.Actions) > 0 {
			ps = append(ps, CheckParams(d.Actions[0].Params, a.Params)...)
		}
		return ps
	}
	if len(d.Actions) == 0 {
		return nil
	}
	ad, ok := d.Action(a.Name)
	if !ok {
		return []Problem{{Path: "name", Msg: fmt.Sprintf("%q is not an action of provider %s (allowed: %s)", a.Name, provider, strings.Join(d.ActionNames(), ", "))}}
	}
	var ps []Problem
	if len(a.Argv) > 0 {
		ps = append(ps, Problem{Path: "argv", Msg: fmt.Sprintf("provider %s runs named actions, not commands (use the exec provider)", provider)})
	}
	return append(ps, CheckParams(ad.Params, a.Params)...)
}
