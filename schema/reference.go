package schema

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/drillship/drillship/activities"
)

// Capabilities each spec kind uses, in the order the reference lists them.
var kindCapabilities = map[string][]string{
	Deploy: {activities.CapTraffic, activities.CapRelease, activities.CapSignals},
	Drill:  {activities.CapTraffic, activities.CapSignals, activities.CapFaults, activities.CapRunner, activities.CapDatabase},
}

// DocPath is where a kind's reference lives in the repository.
func DocPath(kind string) string { return "docs/" + kind + "-spec.md" }

// Reference returns the Markdown reference of a spec kind: every field,
// every step kind, every provider's settings, metrics, faults and actions,
// each with an example. It fails when something has no documentation or no
// example, so the reference cannot fall behind the code.
func Reference(kind string, reg *activities.Registry) ([]byte, error) {
	g, _, err := build(kind, reg)
	if err != nil {
		return nil, err
	}
	if err := missingExamples(reg); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	other := Drill
	if kind == Drill {
		other = Deploy
	}
	w("# %s spec reference\n\n", strings.ToUpper(kind[:1])+kind[1:])
	w("<!-- Generated from the spec types, schema/fields.go and the providers' declarations\n")
	w("     by `go test ./schema -run UpToDate -args -update`; a test fails when it differs. -->\n\n")
	w("Check a spec with `drillship %s validate FILE` (nothing is started or changed). The\n", kind)
	w("[JSON Schema](schema/%s.json) (also `drillship schema %s`) lets an editor with the YAML\n", kind, kind)
	w("language server complete and check fields as you type: make this the spec's first line,\n")
	w("with the path relative to the spec (or an URL of the file):\n\n")
	w("```yaml\n# yaml-language-server: $schema=../docs/schema/%s.json\n```\n\n", kind)
	w("The [%s spec reference](%s-spec.md) covers the other kind.\n\n", other, other)

	w("## A complete spec\n\n")
	w("Every example in this reference changes this spec: what it gives replaces what is here,\n")
	w("except that mappings merge into mappings (a provider's `config` is replaced whole, and so\n")
	w("is every list).\n\n")
	writeExample(&b, kind+"/base", base(kind))

	w("## Fields\n\n")
	for _, s := range g.sections {
		w("### %s\n\n%s\n\n", s.Name, s.Title)
		w("| field | type | required | default | meaning |\n| --- | --- | --- | --- | --- |\n")
		for _, r := range s.Rows {
			req := ""
			if r.Required {
				req = "yes"
			}
			def := ""
			if r.Default != "" {
				def = "`" + r.Default + "`"
			}
			w("| `%s` | %s | %s | %s | %s |\n", r.Field, cell(r.Type), req, def, cell(r.Doc))
		}
		w("\n")
		if s.Name == "Step" && kind == Drill {
			writeStepKinds(&b)
		}
	}
	w("### Durations\n\nA duration is written with its unit: `250ms`, `30s`, `5m`, `1h30m`; `0` means none.\n")
	w("No duration in a spec may be negative; a field's allowed range is given with its type,\n")
	w("and the parser refuses a value outside it, naming the range.\n\n")
	w("### Target\n\nA target names a provider and its settings: `{provider: NAME, config: {...}}`.\n")
	w("The provider must serve the capability it is used for (see the [provider reference](#provider-reference)).\n\n")

	w("## Metrics\n\nThe portable metric names; each signals provider says below which it answers.\n")
	w("A threshold (`max`, `min`) on one of them must lie in its range.\n\n")
	w("| metric | unit | range | meaning |\n| --- | --- | --- | --- |\n")
	for _, m := range activities.Portable {
		w("| `%s` | %s | %s | %s |\n", m.Name, cell(m.Unit), bounds(m.Min, m.Max), cell(m.Doc))
	}
	w("\n")

	w("## Provider reference\n\n| capability | providers |\n| --- | --- |\n")
	for _, c := range kindCapabilities[kind] {
		var names []string
		for _, p := range reg.Names(c) {
			names = append(names, "[`"+p+"`](#"+p+")")
		}
		w("| %s | %s |\n", c, strings.Join(names, ", "))
	}
	w("\nSettings marked *secret* must be a `${NAME}` reference to an environment variable of the\n")
	w("worker: it is expanded there, so no secret reaches a workflow's history.\n\n")
	for _, p := range reg.Providers() {
		var caps []string
		for _, c := range kindCapabilities[kind] {
			if p.Has(c) {
				caps = append(caps, c)
			}
		}
		if len(caps) == 0 {
			continue
		}
		w("### %s\n\n", p.Name)
		for _, c := range caps {
			writeProvider(&b, kind, reg, p.Name, c)
		}
	}
	return b.Bytes(), nil
}

func base(kind string) string {
	if kind == Deploy {
		return baseDeploy
	}
	return baseDrill
}

// missingExamples names the step kinds and provider capabilities the
// reference has no example for.
func missingExamples(reg *activities.Registry) error {
	var missing []string
	for _, k := range stepKinds {
		if stepExamples[k] == "" {
			missing = append(missing, "step "+k)
		}
	}
	for _, p := range reg.Providers() {
		for _, c := range allCapabilities {
			if p.Has(c) && providerExamples[p.Name+"/"+c].YAML == "" {
				missing = append(missing, p.Name+"/"+c)
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("schema: no example in schema/examples.go for %s", strings.Join(missing, ", "))
	}
	return nil
}

// writeExample writes a YAML example under a marker the examples test
// finds it by.
func writeExample(b *bytes.Buffer, key, yaml string) {
	fmt.Fprintf(b, "<!-- example: %s -->\n```yaml\n%s```\n\n", key, yaml)
}

func writeStepKinds(b *bytes.Buffer) {
	fmt.Fprintf(b, "#### Step kinds\n\nA step has a `name` and exactly one of these. `target` gives the step its own provider\n")
	fmt.Fprintf(b, "for the kind's capability instead of the drill's `providers`.\n\n")
	caps := map[string]string{"fault": "faults", "weights": "traffic", "failover": "traffic", "action": "runner", "database": "database", "deploy": "release (through a deploy spec)"}
	for _, k := range stepKinds {
		m := fieldDocs["drills.Step."+k]
		fmt.Fprintf(b, "##### %s step\n\n%s. Capability: %s.\n\n", k, upper(m.Doc), caps[k])
		writeExample(b, "drill/step/"+k, stepExamples[k])
	}
}

func writeProvider(b *bytes.Buffer, kind string, reg *activities.Registry, p, c string) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("#### %s: %s\n\n", p, c)
	d, ok := reg.Declared(p, c)
	switch {
	case !ok:
		w("Settings are not declared yet; the provider checks them when the spec is validated.\n\n")
	case len(d.Config) == 0:
		w("No settings.\n\n")
	default:
		w("Settings (`config`):\n\n")
		writeFields(b, d.Config)
	}
	if d.WeightKeys != "" {
		w("Weight keys: %s.\n\n", d.WeightKeys)
	}
	if len(d.Metrics) > 0 {
		w("Metrics:\n\n| metric | unit | range | scope keys | meaning |\n| --- | --- | --- | --- | --- |\n")
		for _, m := range d.Metrics {
			w("| `%s` | %s | %s | %s | %s |\n", m.Name, cell(m.Unit), bounds(m.Min, m.Max), codes(m.Scopes), cell(m.Doc))
		}
		w("\n")
	}
	if ok && c == activities.CapSignals {
		switch {
		case d.AnyMetric && d.Expr:
			w("Other metric names are the provider's own; `expr` takes a provider expression.\n\n")
		case d.AnyMetric:
			w("Other metric names are the provider's own.\n\n")
		case d.Expr:
			w("`expr` takes a provider expression.\n\n")
		default:
			w("Only the metrics listed; no `expr`.\n\n")
		}
	}
	if len(d.QueryParams) > 0 {
		w("Check `params`:\n\n")
		writeFields(b, d.QueryParams)
	}
	if d.AnyFault {
		w("Fault kinds are the provider's own.\n\n")
	}
	for _, f := range d.Faults {
		w("Fault `%s`: %s.\n\n", f.Kind, f.Doc)
		if len(f.Params) > 0 {
			writeFields(b, f.Params)
		}
	}
	if d.AnyAction {
		w("Action names are free.\n\n")
	}
	for _, a := range d.Actions {
		retry := "not safe to retry by itself"
		if a.SafeToRetry {
			retry = "safe to retry"
		}
		w("Action `%s`: %s (%s).\n\n", a.Name, a.Doc, retry)
		if len(a.Params) > 0 {
			writeFields(b, a.Params)
		}
	}
	ex := providerExamples[p+"/"+c]
	if ex.Kind == kind {
		w("Example:\n\n")
		writeExample(b, kind+"/provider/"+p+"/"+c, ex.YAML)
	} else {
		w("Example: in the [%s spec reference](%s-spec.md#%s).\n\n", ex.Kind, ex.Kind, p)
	}
}

func writeFields(b *bytes.Buffer, fs []activities.Field) {
	fmt.Fprintf(b, "| name | type | required | default | meaning |\n| --- | --- | --- | --- | --- |\n")
	for _, f := range fs {
		typ := f.Type
		if len(f.Enum) > 0 {
			typ = "`" + strings.Join(f.Enum, "` \\| `") + "`"
		} else if f.Min != nil || f.Max != nil {
			unit := ""
			if f.Type == activities.TypeDuration {
				unit = " (seconds)"
			}
			typ += ", " + bounds(f.Min, f.Max) + unit
		}
		if f.Secret {
			typ += ", secret"
		}
		if f.Format != "" {
			typ += " (" + f.Format + ")"
		}
		req, def := "", ""
		if f.Required {
			req = "yes"
		}
		if f.Default != "" {
			def = "`" + f.Default + "`"
		}
		fmt.Fprintf(b, "| `%s` | %s | %s | %s | %s |\n", f.Name, cell(typ), req, def, cell(f.Doc))
		prefix := f.Name + "."
		switch f.Type {
		case activities.TypeMap:
			prefix = f.Name + ".*."
		case activities.TypeList:
			prefix = f.Name + "[]."
		}
		for _, sub := range f.Fields {
			def := ""
			if sub.Default != "" {
				def = "`" + sub.Default + "`"
			}
			fmt.Fprintf(b, "| `%s%s` | %s | %s | %s | %s |\n", prefix, sub.Name, sub.Type, yes(sub.Required), def, cell(sub.Doc))
		}
	}
	fmt.Fprintln(b)
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return ""
}

func upper(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// cell keeps a table cell on one line and its pipes inside it.
func cell(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	// Already escaped pipes (enum lists) stay as they are.
	s = strings.ReplaceAll(s, "\\|", "\x00")
	s = strings.ReplaceAll(s, "|", "\\|")
	return strings.ReplaceAll(s, "\x00", "\\|")
}

func codes(ss []string) string {
	if len(ss) == 0 {
		return ""
	}
	s := append([]string(nil), ss...)
	sort.Strings(s)
	return "`" + strings.Join(s, "`, `") + "`"
}

func bounds(min, max *float64) string {
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	switch {
	case min != nil && max != nil:
		return f(*min) + ".." + f(*max)
	case min != nil:
		return "≥ " + f(*min)
	case max != nil:
		return "≤ " + f(*max)
	}
	return ""
}
