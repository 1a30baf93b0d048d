package local

import (
	"github.com/drillship/drillship/activities"
)

// DefaultRegions are the local environment's regions unless it was started
// with others (localenv.Options.Regions); an online check (--local-env)
// reads the running environment's instead.
var DefaultRegions = []string{"east", "west"}

// Dependencies are the sample service's dependencies (localenv).
var Dependencies = []string{"recs"}

var (
	regionParam  = activities.Field{Name: "region", Type: activities.TypeString, Format: "region", Doc: "a region of the local environment (east, west)"}
	versionParam = activities.Field{Name: "version", Type: activities.TypeString, Format: "version", Doc: "a version label (v2)"}
	depParam     = activities.Field{Name: "dependency", Type: activities.TypeString, Required: true, Enum: Dependencies, Doc: "the dependency (recs)"}
)

func required(f activities.Field) activities.Field {
	f.Required = true
	return f
}

// Declare says what the local provider accepts (localenv's control API).
func Declare(capability string) activities.Declaration {
	switch capability {
	case activities.CapTraffic:
		return activities.Declaration{
			Config: []activities.Field{{Name: "level", Type: activities.TypeString, Enum: []string{"version", "region"}, Default: "version",
				Doc: "what the weights move: version (a deploy's canary and stable) or region (a failover)"}},
			WeightKeys: "level version: versions with an artifact (v1, v2); level region: the environment's regions (east, west)",
			Backends: func(cfg map[string]any) activities.Backends {
				if cfg["level"] == "region" {
					return activities.Backends{Kind: "region", Known: DefaultRegions, Where: "the local environment"}
				}
				return activities.Backends{Kind: "version", Where: "the local environment's versions", Regions: DefaultRegions}
			},
		}
	case activities.CapRelease:
		return activities.Declaration{}
	case activities.CapSignals:
		return activities.Declaration{
			Metrics: []activities.MetricDecl{
				activities.WithScopes(activities.MetricErrorRate, "region", "version"),
				activities.WithScopes(activities.MetricLatencyP99, "region", "version"),
				activities.WithScopes(activities.MetricRequests, "region", "version"),
				activities.WithScopes(activities.MetricUp, "region", "version"),
			},
		}
	case activities.CapFaults:
		return activities.Declaration{Faults: []activities.FaultDecl{
			{Kind: "region_down", Doc: "the region's instances stop listening (connection refused)", Params: []activities.Field{required(regionParam)}},
			{Kind: "error_rate", Doc: "that share of requests answers 500", Params: []activities.Field{
				{Name: "rate", Type: activities.TypeNumber, Required: true, Min: activities.Num(0.001), Max: activities.Num(1), Doc: "share of requests that fail, 0.001..1"},
				regionParam, versionParam}},
			{Kind: "latency", Doc: "requests take ms longer", Params: []activities.Field{
				{Name: "ms", Type: activities.TypeInt, Required: true, Min: activities.Num(1), Max: activities.Num(60000), Doc: "added latency in milliseconds, 1..60000"},
				regionParam, versionParam}},
			{Kind: "bad_version", Doc: "the version answers 500 at rate whenever it runs (set it up before deploying it)", Params: []activities.Field{
				required(versionParam),
				{Name: "rate", Type: activities.TypeNumber, Default: "0.1", Min: activities.Num(0.001), Max: activities.Num(1), Doc: "share of its requests that fail, 0.001..1"}}},
			{Kind: "dependency_down", Doc: "the dependency fails: requests answer 500 unless it is shed", Params: []activities.Field{depParam}},
		}}
	case activities.CapRunner:
		return activities.Declaration{Actions: []activities.ActionDecl{
			{Name: "shed", Doc: "serve without the dependency (degraded 200s)", Params: []activities.Field{depParam}, SafeToRetry: true},
			{Name: "unshed", Doc: "serve with the dependency again", Params: []activities.Field{depParam}, SafeToRetry: true},
			{Name: "load", Doc: "set the load generator to a multiple of normal", SafeToRetry: true, Params: []activities.Field{
				{Name: "multiplier", Type: activities.TypeNumber, Required: true, Min: activities.Num(0.01), Max: activities.Num(10), Doc: "multiple of normal load, 0.01..10"}}},
		}}
	}
	return activities.Declaration{}
}
