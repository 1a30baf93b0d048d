package prometheus

import (
	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/httpconf"
)

// Declare says what the prometheus provider accepts: signals only, each
// check with a PromQL expr (the metric name is then only a label, though a
// portable name still bounds the thresholds).
func Declare(capability string) activities.Declaration {
	if capability != activities.CapSignals {
		return activities.Declaration{}
	}
	return activities.Declaration{
		Config: []activities.Field{
			{Name: "url", Type: activities.TypeString, Format: "url", Required: true, Doc: "the http(s) address of Prometheus, such as http://prometheus:9090"},
			{Name: "timeout", Type: activities.TypeDuration, Default: "10s", Max: activities.Num(300), Doc: "per query, up to 5m"},
			httpconf.Field("how queries reach Prometheus"),
			{Name: "headers", Type: activities.TypeMap, Format: "headers", Doc: "extra HTTP headers sent with each query (X-Scope-OrgID); credentials belong under http, else as ${NAME} references"},
		},
		Expr:      true,
		AnyMetric: true,
		ExprOnly:  true,
		QueryParams: []activities.Field{
			{Name: "mode", Type: activities.TypeString, Enum: []string{"instant", "range"}, Default: "instant", Doc: "instant query, or a range over the window"},
			{Name: "step", Type: activities.TypeDuration, Doc: "range step (mode range), default window/60, at least 1s"},
			{Name: "agg", Type: activities.TypeString, Enum: []string{"last", "max"}, Default: "last", Doc: "how a range becomes one value (mode range)"},
		},
	}
}
