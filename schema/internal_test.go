package schema

import (
	"reflect"
	"strings"
	"testing"

	"github.com/drillship/drillship/activities"
)

// A field added to a spec type without documentation stops generation,
// naming it: the schema and the reference cannot silently leave it out.
func TestUndocumentedFieldFails(t *testing.T) {
	type Extra struct {
		Service string `yaml:"service"`
		Surge   int    `yaml:"surge,omitempty"`
	}
	g := &gen{reg: activities.NewRegistry(), defs: obj{}, done: map[reflect.Type]string{}, fieldSchema: map[string]obj{}, extend: map[string]func(obj){}}
	g.typ(reflect.TypeOf(Extra{}))
	got := strings.Join(g.missing, ",")
	for _, want := range []string{"schema.Extra", "schema.Extra.service", "schema.Extra.surge"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing = %q, want it to name %s", got, want)
		}
	}
}

// Every documented field exists: a field removed or renamed in code does
// not leave its documentation behind.
func TestNoStaleFieldDocs(t *testing.T) {
	seen := map[string]bool{}
	for _, kind := range Kinds {
		g, _, err := build(kind, activities.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		for t := range g.done {
			seen[typeKey(t)] = true
		}
		for k := range g.used {
			seen[k] = true
		}
	}
	for k := range fieldDocs {
		if !seen[k] {
			t.Errorf("schema/fields.go documents %s, which no spec has", k)
		}
	}
	for k := range typeDocs {
		if !seen[k] {
			t.Errorf("schema/fields.go introduces type %s, which no spec has", k)
		}
	}
}

// The schema's secret words are the parser's.
func TestSecretWordsAreTheParsers(t *testing.T) {
	for _, w := range secretWords {
		if !activities.SecretLooking(w) || !activities.SecretLooking("X-"+strings.ToUpper(w)) {
			t.Errorf("%q: the parser does not take it for a secret", w)
		}
	}
	for _, h := range []string{"Content-Type", "Accept", "X-Request-Id"} {
		if activities.SecretLooking(h) {
			t.Errorf("%s looks like a secret to the parser", h)
		}
	}
}

// A provider capability without an example stops the reference, naming it.
func TestProviderWithoutExampleFails(t *testing.T) {
	reg := activities.NewRegistry(activities.Provider{Name: "newcomer", Runner: func(map[string]any) (activities.Runner, error) { return nil, nil }})
	_, err := Reference(Drill, reg)
	if err == nil || !strings.Contains(err.Error(), "newcomer/runner") {
		t.Fatalf("Reference = %v, want an error naming newcomer/runner", err)
	}
}
