package elbv2

import (
	"sort"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/awsconf"
)

// Declare says what the elbv2 provider accepts (settings; weight keys are
// the keys of targetGroups).
func Declare(capability string) activities.Declaration {
	if capability != activities.CapTraffic {
		return activities.Declaration{}
	}
	return activities.Declaration{
		Config: awsconf.With(
			activities.Field{Name: "listenerArn", Type: activities.TypeString, Required: true, Doc: "the ALB listener"},
			activities.Field{Name: "ruleArn", Type: activities.TypeString, Doc: "a listener rule instead of the default action"},
			activities.Field{Name: "targetGroups", Type: activities.TypeMap, Required: true, Doc: "drillship backend -> target group name or ARN"},
		),
		WeightKeys: "the keys of config.targetGroups",
		Backends: func(cfg map[string]any) activities.Backends {
			return activities.Backends{Kind: "backend", Known: mapKeys(cfg["targetGroups"]), Where: "config.targetGroups"}
		},
	}
}

func mapKeys(v any) []string {
	m, _ := v.(map[string]any)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
