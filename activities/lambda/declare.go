package lambda

import (
	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/awsconf"
)

// Declare says what the lambda provider accepts (settings).
func Declare(capability string) activities.Declaration {
	cfg := awsconf.With(
		activities.Field{Name: "function", Type: activities.TypeString, Required: true, Doc: "the function name or ARN"},
		activities.Field{Name: "alias", Type: activities.TypeString, Required: true, Doc: "the alias traffic goes through"},
		activities.Field{Name: "versions", Type: activities.TypeMap, Doc: "drillship version -> Lambda version number"},
	)
	switch capability {
	case activities.CapTraffic:
		return activities.Declaration{Config: cfg, WeightKeys: "versions",
			Backends: func(map[string]any) activities.Backends {
				return activities.Backends{Kind: "version", Where: "the function's versions"}
			}}
	case activities.CapRelease:
		return activities.Declaration{Config: cfg}
	}
	return activities.Declaration{}
}
