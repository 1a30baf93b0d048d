package rbac

import (
	"strings"
	"testing"

	"github.com/drillship/drillship/activities"
)

func providers() Lookup {
	kube := activities.Provider{Name: "kube", Rules: func(capability string, cfg map[string]any) ([]activities.Rule, error) {
		ns, _ := cfg["namespace"].(string)
		switch capability {
		case activities.CapRelease:
			return []activities.Rule{
				{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "list", "watch", "patch"}, Namespace: ns},
				{APIGroups: []string{"apps"}, Resources: []string{"replicasets"}, Verbs: []string{"list", "watch"}, Namespace: ns},
			}, nil
		case activities.CapSignals:
			return []activities.Rule{{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"watch", "get", "list"}, Namespace: ns}}, nil
		case activities.CapFaults:
			return []activities.Rule{{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"patch", "get"}, Cluster: true}}, nil
		}
		return nil, nil
	}}
	wild := activities.Provider{Name: "wild", Rules: func(string, map[string]any) ([]activities.Rule, error) {
		return []activities.Rule{{APIGroups: []string{"apps"}, Resources: []string{"*"}, Verbs: []string{"get"}}}, nil
	}}
	local := activities.Provider{Name: "local"}
	m := map[string]activities.Provider{"kube": kube, "wild": wild, "local": local}
	return func(name string) (activities.Provider, bool) { p, ok := m[name]; return p, ok }
}

func use(capability, provider, ns string) activities.Use {
	t := activities.Target{Provider: provider}
	if ns != "" {
		t.Config = map[string]any{"namespace": ns}
	}
	return activities.Use{Capability: capability, Target: t}
}

func TestBuild(t *testing.T) {
	for _, tc := range []struct {
		name string
		uses []activities.Use
		want string // the rendered YAML must contain each line, in order
		err  string
	}{
		{
			name: "verbs on the same resources merge, sorted; nodes go to a ClusterRole",
			uses: []activities.Use{use(activities.CapRelease, "kube", "web"), use(activities.CapSignals, "kube", "web"), use(activities.CapFaults, "kube", "")},
			want: "kind: Role|namespace: web|- apps|- deployments|- get|- list|- patch|- watch|- replicasets|kind: RoleBinding|kind: ClusterRole|- nodes|- get|- patch|kind: ClusterRoleBinding",
		},
		{
			name: "a target without a namespace takes the default one",
			uses: []activities.Use{use(activities.CapRelease, "kube", "")},
			want: "kind: Role|namespace: apps-team",
		},
		{
			name: "providers that talk to no cluster add nothing",
			uses: []activities.Use{use(activities.CapTraffic, "local", "")},
			want: "",
		},
		{name: "wildcards are refused", uses: []activities.Use{use(activities.CapRelease, "wild", "")}, err: "no wildcards"},
		{name: "unknown provider", uses: []activities.Use{use(activities.CapRelease, "nope", "")}, err: `provider "nope": not registered`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{Namespace: "apps-team", ServiceAccount: "drillship/worker"}
			g, err := Build(providers(), tc.uses, o)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			out, err := YAML(g, o)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == "" {
				if len(out) != 0 {
					t.Fatalf("want nothing, got\n%s", out)
				}
				return
			}
			rest := string(out)
			for _, line := range strings.Split(tc.want, "|") {
				i := strings.Index(rest, line)
				if i < 0 {
					t.Fatalf("missing %q (in order) in\n%s", line, out)
				}
				rest = rest[i+len(line):]
			}
			if strings.Contains(string(out), "creationTimestamp") || !strings.Contains(string(out), "name: worker") {
				t.Fatalf("bad output\n%s", out)
			}
		})
	}
	if _, err := YAML(Grants{}, Options{ServiceAccount: "worker"}); err == nil {
		t.Fatal("a service account without namespace was accepted")
	}
}
