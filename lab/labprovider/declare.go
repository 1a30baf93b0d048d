package labprovider

import "github.com/drillship/drillship/activities"

// Declare says what the lab provider accepts.
func Declare(capability string) activities.Declaration {
	cfg := []activities.Field{{Name: "lab", Type: activities.TypeString, Default: "default", Doc: "default ($DRILLSHIP_LAB_DIR, else ~/.drillship/lab) or the absolute path of a lab directory or state file"}}
	version := activities.Field{Name: "version", Type: activities.TypeString, Format: "version", Required: true, Doc: "a version of the lab's service"}
	switch capability {
	case activities.CapTraffic:
		return activities.Declaration{Config: cfg, WeightKeys: "the lab service's versions",
			Backends: func(map[string]any) activities.Backends {
				return activities.Backends{Kind: "version", Where: "the lab's versions"}
			}}
	case activities.CapRelease:
		return activities.Declaration{Config: cfg}
	case activities.CapSignals:
		return activities.Declaration{Config: cfg, Expr: true, Metrics: []activities.MetricDecl{
			activities.WithScopes(activities.MetricErrorRate, "version"),
			activities.WithScopes(activities.MetricRequests, "version"),
			activities.WithScopes(activities.MetricLatencyP99, "version"),
			activities.WithScopes(activities.MetricUp, "version", "server"),
		}, AnyMetric: true}
	case activities.CapFaults:
		return activities.Declaration{Config: cfg, Faults: []activities.FaultDecl{
			{Kind: FaultErrorRate, Doc: "the version answers 500 at rate", Params: []activities.Field{version,
				{Name: "rate", Type: activities.TypeNumber, Required: true, Min: activities.Num(0), Max: activities.Num(1), Doc: "0..1"}}},
			{Kind: FaultServiceDown, Doc: "the version stops serving", Params: []activities.Field{version}},
			{Kind: FaultFeatureErrorRate, Doc: "the feature behind the lab flag (`lab up --flags`) answers 500 at rate while the flag sends requests through it", Params: []activities.Field{version,
				{Name: "rate", Type: activities.TypeNumber, Required: true, Min: activities.Num(0), Max: activities.Num(1), Doc: "0..1"}}},
		}}
	}
	return activities.Declaration{}
}
