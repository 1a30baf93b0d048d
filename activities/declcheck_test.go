package activities

import (
	"strings"
	"testing"
)

func TestSecretsMustBeReferences(t *testing.T) {
	fields := []Field{
		{Name: "nodes", Type: TypeMap, Format: "dsn"},
		{Name: "headers", Type: TypeMap, Format: "headers"},
		{Name: "url", Type: TypeString, Format: "url"},
		{Name: "apiKey", Type: TypeString, Secret: true},
		{Name: "password", Type: TypeString},
	}
	for _, tc := range []struct {
		cfg     map[string]any
		refused string // the path refused; "" accepted
	}{
		{map[string]any{"nodes": map[string]any{"pg1": "postgres://postgres@db1/postgres"}}, ""},
		{map[string]any{"nodes": map[string]any{"pg1": "postgres://postgres:${PGPASSWORD}@db1/postgres"}}, ""},
		{map[string]any{"nodes": map[string]any{"pg1": "postgres://postgres:hunter2@db1/postgres"}}, "nodes.pg1"},
		{map[string]any{"nodes": map[string]any{"pg1": "host=db1 user=postgres password=hunter2"}}, "nodes.pg1"},
		{map[string]any{"nodes": map[string]any{"pg1": "host=db1 user=postgres password=${PGPASSWORD}"}}, ""},
		{map[string]any{"headers": map[string]any{"Authorization": "Bearer ${TOKEN}"}}, ""},
		{map[string]any{"headers": map[string]any{"Authorization": "Bearer abc123"}}, "headers.Authorization"},
		{map[string]any{"headers": map[string]any{"X-Api-Token": "abc123"}}, "headers.X-Api-Token"},
		{map[string]any{"headers": map[string]any{"Host": "shop.example"}}, ""},
		{map[string]any{"url": "https://user:pw@prom:9090"}, "url"},
		{map[string]any{"url": "https://prom:9090"}, ""},
		{map[string]any{"apiKey": "k-123"}, "apiKey"},
		{map[string]any{"apiKey": "${API_KEY}"}, ""},
		{map[string]any{"password": "hunter2"}, "password"},
	} {
		ps := CheckConfig(fields, tc.cfg)
		switch {
		case tc.refused == "" && len(ps) > 0:
			t.Errorf("%v refused: %+v", tc.cfg, ps)
		case tc.refused != "" && (len(ps) != 1 || ps[0].Path != tc.refused || !strings.Contains(ps[0].Msg, "${NAME}") && !strings.Contains(ps[0].Msg, "${")):
			t.Errorf("%v: want %s refused with the reference to use, got %+v", tc.cfg, tc.refused, ps)
		}
	}
}

func TestCheckQueryBoundsAndNames(t *testing.T) {
	d := Declaration{Metrics: []MetricDecl{WithScopes(MetricErrorRate, "version"), WithScopes(MetricUp)}}
	neg, big, ok := -0.5, 1.5, 0.05
	for _, tc := range []struct {
		q    Query
		max  *float64
		want string // the path refused; "" accepted
	}{
		{Query{Metric: MetricErrorRate, Scope: map[string]string{"version": "v2"}}, &ok, ""},
		{Query{Metric: MetricErrorRate}, &neg, "max"},
		{Query{Metric: MetricErrorRate}, &big, "max"},
		{Query{Metric: "errors"}, &ok, "metric"},
		{Query{Metric: MetricUp, Scope: map[string]string{"region": "east"}}, nil, "scope.region"},
		{Query{Metric: MetricErrorRate, Expr: "x"}, &ok, "expr"},
		{Query{Metric: MetricErrorRate, Params: map[string]string{"a": "b"}}, &ok, "params.a"},
	} {
		ps := CheckQuery("p", d, tc.q, map[string]map[string]string{"scope": tc.q.Scope}, Threshold{Name: "max", V: tc.max})
		if (tc.want == "") != (len(ps) == 0) || (tc.want != "" && ps[0].Path != tc.want) {
			t.Errorf("%+v max %v: want %q refused, got %+v", tc.q, tc.max, tc.want, ps)
		}
	}
}

// A kind the provider declares but the target's settings leave out is
// refused at validate, naming what the target allows; without the hook
// (or with nothing narrowed) CheckFault decides alone.
func TestCheckTargetFaultNarrowedBySettings(t *testing.T) {
	d := Declaration{Faults: []FaultDecl{
		{Kind: "a", Params: []Field{{Name: "n", Type: TypeInt}}},
		{Kind: "b"},
	}}
	narrowed := d
	narrowed.FaultsAllowed = func(cfg map[string]any) ([]string, string) {
		if k, ok := cfg["kinds"].([]string); ok {
			return k, "config.kinds"
		}
		return nil, ""
	}
	only := Target{Provider: "p", Config: map[string]any{"kinds": []string{"b"}}}
	for _, tc := range []struct {
		d      Declaration
		t      Target
		f      Fault
		path   string // "" accepted
		substr string
	}{
		{narrowed, only, Fault{Kind: "b"}, "", ""},
		{narrowed, only, Fault{Kind: "a", Params: map[string]string{"n": "x"}}, "kind", `"a" is not in config.kinds of this p target (allowed: b)`},
		{narrowed, only, Fault{Kind: "c"}, "kind", `"c" is not a fault of provider p (allowed: a, b)`},
		{narrowed, Target{Provider: "p"}, Fault{Kind: "a"}, "", ""},
		{narrowed, Target{Provider: "p"}, Fault{Kind: "a", Params: map[string]string{"n": "x"}}, "params.n", "expected a whole number"},
		{d, only, Fault{Kind: "a"}, "", ""},
	} {
		ps := CheckTargetFault(tc.t, tc.d, tc.f, nil)
		switch {
		case tc.path == "" && len(ps) > 0:
			t.Errorf("%+v on %v refused: %+v", tc.f, tc.t.Config, ps)
		case tc.path != "" && (len(ps) != 1 || ps[0].Path != tc.path || !strings.Contains(ps[0].Msg, tc.substr)):
			t.Errorf("%+v on %v = %+v, want %s: %s", tc.f, tc.t.Config, ps, tc.path, tc.substr)
		}
	}
}
