package postgres

import "github.com/drillship/drillship/activities"

// Declare says what the postgres provider accepts. DSNs carry no literal
// password: ${NAME} references are expanded in the worker.
func Declare(capability string) activities.Declaration {
	cfg := []activities.Field{
		{Name: "nodes", Type: activities.TypeMap, Format: "dsn", Doc: "node name -> DSN (a superuser); at least two, or leave out and set lab"},
		{Name: "lab", Type: activities.TypeString, Doc: "the drillship lab running the nodes: default or an absolute path"},
		{Name: "timeout", Type: activities.TypeDuration, Default: "5s", Max: activities.Num(60), Doc: "per connection and query, up to 1m"},
	}
	switch capability {
	case activities.CapDatabase:
		return activities.Declaration{Config: cfg}
	case activities.CapSignals:
		return activities.Declaration{Config: cfg, Metrics: []activities.MetricDecl{
			activities.WithScopes(activities.MetricUp, "role", "node"),
			{Name: MetricReplicasStreaming, Unit: "count", Doc: "standbys streaming from the writable primary", Min: activities.Num(0)},
			{Name: MetricLagBytes, Unit: "bytes", Doc: "the largest replica lag behind the primary", Min: activities.Num(0)},
		}}
	case activities.CapFaults:
		return activities.Declaration{Config: cfg, Faults: []activities.FaultDecl{{Kind: FaultKillNode, Doc: "SIGKILL the node's postmaster (needs lab)", Params: []activities.Field{
			{Name: "node", Type: activities.TypeString, Required: true, Doc: "a node name"},
			{Name: "awaitWrites", Type: activities.TypeDuration, Max: activities.Num(600), Doc: "wait up to this long for workload writes before the kill"},
		}}}}
	}
	return activities.Declaration{}
}
