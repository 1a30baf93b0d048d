package schema_test

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/drillship/drillship/deploys"
	"github.com/drillship/drillship/drills"
	"github.com/drillship/drillship/schema"
)

// edit is one structural mistake made to a shipped spec.
type edit struct {
	kind, base string
	path       string // "steps[0].weight"; the key is added when missing
	value      string // YAML; "<delete>" removes the key
	at         string // where the schema must report it (JSON pointer)
}

var badSpecs = []edit{
	{schema.Deploy, "web-canary", "servce", "web", ""},
	{schema.Deploy, "web-canary", "service", "<delete>", ""},
	{schema.Deploy, "web-canary", "steps[0].weight", "0", "/steps/0/weight"},
	{schema.Deploy, "web-canary", "steps[1].weight", "101", "/steps/1/weight"},
	{schema.Deploy, "web-canary", "steps", "{weight: 10}", "/steps"},
	{schema.Deploy, "web-canary", "steps[0].pause", "4", "/steps/0/pause"},
	{schema.Deploy, "web-canary", "onFailure", "retry", "/onFailure"},
	{schema.Deploy, "web-canary", "trafficKeys", "region", "/trafficKeys"},
	{schema.Deploy, "web-canary", "bake", "-3s", "/bake"},
	{schema.Deploy, "web-canary", "artifacts.keep", "1", "/artifacts/keep"},
	{schema.Deploy, "web-canary", "traffic.provider", "nginx", "/traffic/provider"},
	{schema.Deploy, "web-canary", "release.provider", "prometheus", "/release/provider"},
	{schema.Deploy, "web-canary", "traffic.config.level", "zone", "/traffic/config/level"},
	{schema.Deploy, "web-canary", "traffic.config.levle", "region", "/traffic/config"},
	{schema.Deploy, "web-canary", "analysis.interval", "0.5", "/analysis/interval"},
	{schema.Deploy, "web-canary", "analysis.failureLimit", "-1", "/analysis/failureLimit"},
	{schema.Deploy, "web-canary", "analysis.metrics", "[]", ""},
	{schema.Deploy, "web-canary", "analysis.metrics[0].max", "-0.5", "/analysis/metrics/0/max"},
	{schema.Deploy, "web-canary", "analysis.metrics[0].maxVsBaseline", "0.5", "/analysis/metrics/0/maxVsBaseline"},
	{schema.Deploy, "web-canary", "analysis.metrics[0].metric", "error_rte", "/analysis/metrics/0/metric"},
	{schema.Deploy, "web-canary", "analysis.metrics[0].threshold", "0.1", "/analysis/metrics/0"},
	{schema.Deploy, "web-canary", "analysis.provider", "<delete>", "/analysis"},
	{schema.Deploy, "web-canary", "analysis", "{provider: prometheus, config: {url: 'http://p:9090', headers: {Authorization: Bearer abc123}}, metrics: [{name: e, metric: error_rate, expr: up, max: 0.1}]}", "/analysis/config/headers/Authorization"},
	{schema.Deploy, "web-canary", "analysis.config", "{url: 'http://p:9090'}", "/analysis/config"},
	{schema.Deploy, "web-canary", "analysis.metrics[1].max", "<delete>", "/analysis/metrics/1"},
	{schema.Deploy, "web-canary", "analysis", "{provider: prometheus, config: {url: 'http://p:9090', headers: {X-Auth-Token: abc123}}, metrics: [{name: e, metric: error_rate, expr: up, max: 0.1}]}", "/analysis/config/headers/X-Auth-Token"},
	{schema.Deploy, "web-canary", "analysis", "{provider: prometheus, config: {url: 'http://p:9090'}, metrics: [{name: e, metric: error_rate, max: 0.1}]}", "/analysis/metrics/0"},
	{schema.Deploy, "lab-canary", "traffic.config.lab", "[default]", "/traffic/config/lab"},

	{schema.Drill, "region-failover", "nme", "x", ""},
	{schema.Drill, "region-failover", "steadyState", "<delete>", ""},
	{schema.Drill, "region-failover", "load", "11", "/load"},
	{schema.Drill, "region-failover", "providers.traffic.provider", "ecs", "/providers/traffic/provider"},
	{schema.Drill, "region-failover", "steadyState[0].metric", "p95", "/steadyState/0/metric"},
	{schema.Drill, "region-failover", "steadyState[0].thresold", "1", "/steadyState/0"},
	{schema.Drill, "region-failover", "steadyState[0].window", "99", "/steadyState/0/window"},
	{schema.Drill, "region-failover", "mitigation.slo", "{name: x, metric: error_rate, max: 0.1}", "/mitigation/slo"},
	{schema.Drill, "region-failover", "mitigation.mode", "manual", "/mitigation/mode"},
	{schema.Drill, "region-failover", "inject[0].fault.kind", "blackhole", "/inject/0/fault/kind"},
	{schema.Drill, "region-failover", "inject[0].fault.params", "{}", "/inject/0/fault/params"},
	{schema.Drill, "region-failover", "inject[0].weights", "{east: 0}", "/inject/0"},
	{schema.Drill, "region-failover", "inject[0].fault", "<delete>", "/inject/0"},
	{schema.Drill, "region-failover", "mitigation.steps[0].failover.weights.east", "150", "/mitigation/steps/0/failover/weights/east"},
	{schema.Drill, "region-failover", "detection.interval", "-1s", "/detection/interval"},
	{schema.Drill, "region-failover", "guardrails.checks[0].for", "5", "/guardrails/checks/0/for"},
	{schema.Drill, "dependency-outage", "inject[0].fault.params.dependency", "db", "/inject/0/fault/params/dependency"},
	{schema.Drill, "dependency-outage", "mitigation.steps[0].action.name", "drain", "/mitigation/steps/0/action/name"},
	{schema.Drill, "dependency-outage", "mitigation.steps[0].action.params", "{}", "/mitigation/steps/0/action/params"},
	{schema.Drill, "db-primary-loss", "mitigation.steps[0].database.op", "restart", "/mitigation/steps/0/database/op"},
	{schema.Drill, "region-failover", "mitigation.steps[0].failover.verify[0].metric", "p50", "/mitigation/steps/0/failover/verify/0/metric"},
	{schema.Drill, "region-failover", "steadyState[0].target", "{provider: http, config: {url: 'http://127.0.0.1:8080/', headers: {x-api-key: abc123}}}", "/steadyState/0/target/config/headers/x-api-key"},
	{schema.Drill, "db-primary-loss", "providers.faults.config", "{nodes: {pg1: 'postgres://postgres:hunter2@10.0.0.1/postgres', pg2: 'postgres://postgres:${PGPASSWORD}@10.0.0.2/postgres'}}", "/providers/faults/config/nodes/pg1"},
	{schema.Drill, "db-primary-loss", "providers.database.config", "{nodes: {pg1: 'host=10.0.0.1 user=postgres password=hunter2', pg2: 'host=10.0.0.2 password=${PGPASSWORD}'}}", "/providers/database/config/nodes/pg1"},
	{schema.Drill, "db-primary-loss", "providers.signals.config.timeout", "5", "/providers/signals/config/timeout"},
	{schema.Drill, "region-failover", "steadyState[0].max", "<delete>", "/steadyState/0"},
	{schema.Drill, "region-failover", "detection.signals[0].metric", "<delete>", "/detection/signals/0"},
	{schema.Drill, "region-failover", "restore[0]", "{name: x, fault: {kind: region_down, params: {region: east}}}", "/restore/0/fault"},
	{schema.Drill, "region-failover", "inject[0]", "{name: x, weights: {east: 0}}", "/inject/0"},
	{schema.Drill, "region-failover", "steadyState[1].scope", "{zone: east}", "/steadyState/1"},
	{schema.Drill, "region-failover", "steadyState[1].params", "{alarm: x}", "/steadyState/1/params"},
	{schema.Drill, "db-primary-loss", "steadyState[2].max", "-1", "/steadyState/2/max"},
	{schema.Drill, "db-primary-loss", "steadyState[0].scope", "{region: east}", "/steadyState/0"},
	{schema.Drill, "rollback-drill", "mitigation.steps", "[{name: x, deploy: {spec: web-canary, version: v9}}]", "/mitigation/steps/0/deploy"},
	{schema.Drill, "rollback-drill", "inject[1].deploy.version", "<delete>", "/inject/1/deploy"},
}

// The schema rejects every structural mistake at the field that has it,
// and so does the parser: an editor never accepts what drillship refuses
// for these reasons, nor flags what it takes.
func TestBadSpecsRejected(t *testing.T) {
	reg := registry()
	schemas := map[string]*jsonschema.Schema{}
	for _, k := range schema.Kinds {
		schemas[k] = compiled(t, k)
	}
	for _, e := range badSpecs {
		name := e.base + ":" + e.path + "=" + e.value
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("..", e.kind+"s", e.base+".yaml"))
			if err != nil {
				t.Fatal(err)
			}
			bad := mutate(t, data, e.path, e.value)
			err = validate(schemas[e.kind], bad)
			if err == nil {
				t.Fatalf("schema accepted:\n%s", bad)
			}
			if locs := leaves(err); e.at != "" && !contains(locs, e.at) {
				t.Errorf("schema reported %v, want %s:\n%v", locs, e.at, err)
			}
			file := e.base + "-bad.yaml"
			switch e.kind {
			case schema.Deploy:
				_, err = deploys.Parse(file, bad, reg)
			case schema.Drill:
				_, err = drills.Parse(file, bad, reg)
			}
			if err == nil {
				t.Errorf("the parser accepted what the schema refuses")
			}
		})
	}
	if len(badSpecs) < 40 {
		t.Errorf("only %d bad specs", len(badSpecs))
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// leaves lists the instance locations of the innermost errors, and of
// every error that has no causes.
func leaves(err error) []string {
	ve, ok := err.(*jsonschema.ValidationError)
	if !ok {
		return nil
	}
	set := map[string]bool{}
	var walk func(*jsonschema.ValidationError)
	walk = func(v *jsonschema.ValidationError) {
		set["/"+strings.Join(v.InstanceLocation, "/")] = true
		for _, c := range v.Causes {
			walk(c)
		}
	}
	walk(ve)
	var out []string
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// mutate sets (or deletes) the node at path in a YAML document.
func mutate(t *testing.T, data []byte, path, value string) []byte {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	n := doc.Content[0]
	parts := splitPath(path)
	for i, p := range parts {
		last := i == len(parts)-1
		if strings.HasPrefix(p, "[") {
			k, _ := strconv.Atoi(strings.Trim(p, "[]"))
			if n.Kind != yaml.SequenceNode || k >= len(n.Content) {
				t.Fatalf("%s: no %s", path, p)
			}
			if last {
				n.Content[k] = parseNode(t, value)
			}
			n = n.Content[k]
			continue
		}
		if n.Kind == yaml.AliasNode {
			n = n.Alias
		}
		j := -1
		for c := 0; c+1 < len(n.Content); c += 2 {
			if n.Content[c].Value == p {
				j = c
			}
		}
		if last {
			switch {
			case value == "<delete>" && j >= 0:
				n.Content = append(n.Content[:j], n.Content[j+2:]...)
			case j >= 0:
				n.Content[j+1] = parseNode(t, value)
			default:
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: p}, parseNode(t, value))
			}
			break
		}
		if j < 0 {
			t.Fatalf("%s: no %s", path, p)
		}
		n = n.Content[j+1]
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func parseNode(t *testing.T, value string) *yaml.Node {
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(value), &n); err != nil {
		t.Fatal(err)
	}
	if len(n.Content) == 0 {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
	}
	c := n.Content[0]
	c.Style = 0
	return c
}

func splitPath(path string) []string {
	var out []string
	for _, p := range strings.Split(path, ".") {
		if i := strings.IndexByte(p, '['); i > 0 {
			out = append(out, p[:i], p[i:])
			continue
		}
		out = append(out, p)
	}
	return out
}
