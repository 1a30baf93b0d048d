package gatewayapi

import (
	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/kubeconn"
)

// Declare says what the gateway-api provider accepts: traffic only, weight
// keys the roles stable and canary.
func Declare(capability string) activities.Declaration {
	if capability != activities.CapTraffic {
		return activities.Declaration{}
	}
	return activities.Declaration{
		Config: kubeconn.With(
			activities.Field{Name: "route", Type: activities.TypeString, Required: true, Doc: "the HTTPRoute whose backendRefs are weighted"},
			activities.Field{Name: "rule", Type: activities.TypeInt, Min: activities.Num(0), Max: activities.Num(15), Doc: "index of the weighted rule, checked to hold both backends; default: the rule holding both backends (there must be exactly one)"},
			activities.Field{Name: "backends", Type: activities.TypeObject, Required: true, Doc: "role -> Service named in the rule's backendRefs", Fields: []activities.Field{
				{Name: "stable", Type: activities.TypeString, Required: true, Doc: "the stable Service"},
				{Name: "canary", Type: activities.TypeString, Required: true, Doc: "the canary Service"},
			}},
			activities.Field{Name: "header", Type: activities.TypeObject, Doc: "requests with this header go to the canary while it has weight (a rule " + HeaderRuleName + " added after the weighted one, removed at weight 0)", Fields: []activities.Field{
				{Name: "name", Type: activities.TypeString, Required: true, Doc: "header name"},
				{Name: "value", Type: activities.TypeString, Required: true, Doc: "exact value"},
			}},
			activities.Field{Name: "programmedTimeout", Type: activities.TypeDuration, Default: "30s", Max: activities.Num(600),
				Doc: "how long a write waits for the route's controller to report it (status.parents Accepted at the written generation); a route without status.parents has no controller: the spec is only read back"},
		),
		WeightKeys: "the roles stable and canary (trafficKeys: role)",
		Backends: func(map[string]any) activities.Backends {
			return activities.Backends{Kind: "backend", Known: []string{Canary, Stable}, Where: "config.backends"}
		},
	}
}
