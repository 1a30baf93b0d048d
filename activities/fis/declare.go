package fis

import (
	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/awsconf"
)

// Declare says what the fis provider accepts (settings; fault params are
// checked by the provider).
func Declare(capability string) activities.Declaration {
	if capability != activities.CapFaults {
		return activities.Declaration{}
	}
	return activities.Declaration{
		Config:   awsconf.With(activities.Field{Name: "templates", Type: activities.TypeList, Doc: "experiment template ids the drill may start"}),
		AnyFault: true,
	}
}
