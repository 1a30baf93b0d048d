package lease

import (
	"encoding/json"
	"sort"
	"strings"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/deploys"
	"github.com/drillship/drillship/drills"
)

// ServiceKey is the key of a release target: one deploy of a service in an
// environment at a time.
func ServiceKey(service, environment string) string {
	return "service:" + service + "@" + environment
}

// TrafficKey is the key of a traffic target. Two specs that name the same
// target in different words (key order, a defaulted setting, another role to
// assume) get the same key; secrets never appear in it because keys become
// workflow ids, visible to anyone who can list workflows.
func TrafficKey(t activities.Target) string {
	if t.Provider == "local" {
		// The local environment has one set of weights per level: the
		// service's versions (the default) and the regions.
		level, _ := t.Config["level"].(string)
		if level == "" {
			level = "version"
		}
		return "traffic:local/weights/" + level
	}
	return targetKey("traffic:", t)
}

// targetKey names t by its provider and the settings that say which
// target it is.
func targetKey(prefix string, t activities.Target) string {
	cfg := canonical(t.Config)
	if len(cfg) == 0 {
		return prefix + t.Provider
	}
	b, err := json.Marshal(cfg) // maps marshal with sorted keys
	if err != nil {
		return prefix + t.Provider
	}
	return prefix + t.Provider + string(b)
}

// notIdentity are settings that change how a provider reaches or waits for a
// target, or what it may do there (a faults target's kinds), not which
// target it is.
var notIdentity = map[string]bool{
	"rolearn": true, "externalid": true, "sessionname": true,
	"maxwait": true, "pollinterval": true, "timeout": true, "period": true,
	"kinds": true,
}

// secretish reports whether a setting's name suggests a secret.
func secretish(name string) bool {
	n := strings.ToLower(name)
	for _, s := range []string{"secret", "password", "passwd", "token", "apikey", "api_key", "credential", "accesskey", "privatekey"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

func canonical(cfg map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range cfg {
		if secretish(k) || notIdentity[strings.ToLower(k)] {
			continue
		}
		if m, ok := v.(map[string]any); ok {
			v = canonical(m)
		}
		out[k] = v
	}
	return out
}

// DeployKeys returns the keys a deploy holds: its release target and its
// traffic target.
func DeployKeys(spec deploys.Spec) []string {
	return sortedUnique([]string{ServiceKey(spec.Service, spec.Environment), TrafficKey(spec.Traffic)})
}

// FaultsKey is the key of a faults target: one drill injecting into it at a
// time (two zone outages at once measure nothing, and each would restore
// the other's nodes). Which kinds a target may inject does not change where
// the faults land.
func FaultsKey(t activities.Target) string {
	return targetKey("faults:", t)
}

// DrillKeys returns the keys a drill holds: every traffic target that its
// weights, failover and deploy steps shift, the release target of each
// deploy step, and every faults target it injects into.
func DrillKeys(spec drills.Spec) []string {
	var keys []string
	for _, steps := range [][]drills.Step{spec.Inject, spec.Mitigation.Steps, spec.Restore} {
		for _, st := range steps {
			if st.Fault != nil {
				keys = append(keys, FaultsKey(spec.Target(activities.CapFaults, st.Target)))
			}
			if len(st.Weights) > 0 || st.Failover != nil {
				keys = append(keys, TrafficKey(spec.Target(activities.CapTraffic, st.Target)))
			}
			if st.Deploy != nil && st.Deploy.Resolved != nil {
				keys = append(keys, DeployKeys(*st.Deploy.Resolved)...)
			}
		}
	}
	return sortedUnique(keys)
}

func sortedUnique(keys []string) []string {
	seen := map[string]bool{}
	out := []string{}
	for _, k := range keys {
		if k != "" && !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
