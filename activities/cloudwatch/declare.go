package cloudwatch

import (
	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/awsconf"
)

// Declare says what the cloudwatch provider accepts (settings; metric
// names are the config's metrics and queries, or alarm).
func Declare(capability string) activities.Declaration {
	if capability != activities.CapSignals {
		return activities.Declaration{}
	}
	return activities.Declaration{
		Config: awsconf.With(
			activities.Field{Name: "period", Type: activities.TypeDuration, Default: "60s", Doc: "metric period: a multiple of 60s, or 1s, 5s, 10s, 30s"},
			activities.Field{Name: "metrics", Type: activities.TypeMap, Doc: "metric name -> the CloudWatch metric it reads", Fields: []activities.Field{
				{Name: "namespace", Type: activities.TypeString, Required: true, Doc: "such as AWS/ApplicationELB"},
				{Name: "name", Type: activities.TypeString, Required: true, Doc: "the CloudWatch metric name"},
				{Name: "stat", Type: activities.TypeString, Required: true, Doc: "Average, Sum, p99, ..."},
				{Name: "dimensions", Type: activities.TypeMap, Doc: "dimension name -> value"},
			}},
			activities.Field{Name: "queries", Type: activities.TypeMap, Doc: "metric name -> metric math expression"},
			activities.Field{Name: "alarms", Type: activities.TypeList, Doc: "alarm names the alarm metric may read"},
		),
		AnyMetric: true,
		Expr:      true,
	}
}
