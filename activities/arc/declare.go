package arc

import (
	"sort"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/awsconf"
)

// Declare says what the arc provider accepts (settings; weight keys are
// the keys of routingControls: On shares 100 equally, Off is 0).
func Declare(capability string) activities.Declaration {
	if capability != activities.CapTraffic {
		return activities.Declaration{}
	}
	return activities.Declaration{
		Config: awsconf.With(
			activities.Field{Name: "clusterArn", Type: activities.TypeString, Required: true, Doc: "the ARC cluster"},
			activities.Field{Name: "clusterEndpoints", Type: activities.TypeList, Doc: "the cluster's regional endpoints (read from the cluster when left out)", Fields: []activities.Field{
				{Name: "endpoint", Type: activities.TypeString, Required: true, Format: "url", Doc: "the endpoint URL"},
				{Name: "region", Type: activities.TypeString, Required: true, Doc: "its region"},
			}},
			activities.Field{Name: "routingControls", Type: activities.TypeMap, Required: true, Doc: "region name (east) -> routing control ARN"},
			activities.Field{Name: "safetyRulesToOverride", Type: activities.TypeList, Doc: "safety rule ARNs to override"},
		),
		WeightKeys: "the keys of config.routingControls",
		Backends: func(cfg map[string]any) activities.Backends {
			m, _ := cfg["routingControls"].(map[string]any)
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			return activities.Backends{Kind: "region", Known: keys, Where: "config.routingControls"}
		},
	}
}
