package haproxy

import (
	"sort"

	"github.com/drillship/drillship/activities"
)

// Declare says what the haproxy provider accepts. Weight keys are the keys
// of config.servers; the only metric is up of one of them.
func Declare(capability string) activities.Declaration {
	cfg := []activities.Field{
		{Name: "socket", Type: activities.TypeString, Format: "abspath", Doc: "path of the runtime API unix socket (or address; exactly one)"},
		{Name: "address", Type: activities.TypeString, Doc: "host:port of the runtime API TCP listener (or socket; exactly one)"},
		{Name: "backend", Type: activities.TypeString, Required: true, Doc: "the HAProxy backend whose servers are weighted"},
		{Name: "servers", Type: activities.TypeMap, Required: true, Doc: "drillship backend (v1, v2) -> HAProxy server name"},
		{Name: "timeout", Type: activities.TypeDuration, Default: "5s", Max: activities.Num(60), Doc: "per runtime-API command, up to 1m"},
	}
	switch capability {
	case activities.CapTraffic:
		return activities.Declaration{Config: cfg, WeightKeys: "the keys of config.servers",
			Backends: func(c map[string]any) activities.Backends {
				m, _ := c["servers"].(map[string]any)
				keys := make([]string, 0, len(m))
				for k := range m {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				return activities.Backends{Kind: "backend", Known: keys, Where: "config.servers"}
			}}
	case activities.CapSignals:
		return activities.Declaration{Config: cfg, Metrics: []activities.MetricDecl{activities.WithScopes(activities.MetricUp, "version", "server")}}
	}
	return activities.Declaration{}
}
