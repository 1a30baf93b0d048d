package httpprobe

import (
	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/httpconf"
)

// Declare says what the http probe accepts: metric up, the URL in expr (or
// config.url).
func Declare(capability string) activities.Declaration {
	if capability != activities.CapSignals {
		return activities.Declaration{}
	}
	return activities.Declaration{
		Config: []activities.Field{
			{Name: "url", Type: activities.TypeString, Format: "url", Doc: "the URL probed when a check has no expr"},
			{Name: "method", Type: activities.TypeString, Default: "GET", Doc: "GET or HEAD"},
			{Name: "timeout", Type: activities.TypeDuration, Default: "5s", Max: activities.Num(60), Doc: "per probe, up to 1m"},
			httpconf.Field("how probes reach the URL (follow_redirects defaults to false here: a redirect is seen as the client sees it)"),
			{Name: "headers", Type: activities.TypeMap, Format: "headers", Doc: "extra HTTP headers sent with each probe (Host: shop.example); credentials belong under http, else as ${NAME} references"},
		},
		Metrics: []activities.MetricDecl{activities.WithScopes(activities.MetricUp)},
		Expr:    true,
		QueryParams: []activities.Field{
			{Name: "expectStatus", Type: activities.TypeString, Default: "200-399", Doc: "codes or ranges that count as up: 200, 200-399, 200,204"},
			{Name: "maxLatency", Type: activities.TypeDuration, Doc: "a slower answer counts as down"},
			{Name: "bodyMatch", Type: activities.TypeString, Doc: "a Go regexp the body must match (GET only)"},
			{Name: "method", Type: activities.TypeString, Enum: []string{"GET", "HEAD"}, Doc: "overrides config.method"},
			{Name: "timeout", Type: activities.TypeDuration, Max: activities.Num(60), Doc: "overrides config.timeout"},
		},
	}
}
