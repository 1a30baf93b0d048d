package ecs

import (
	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/awsconf"
)

// Declare says what the ecs provider accepts (settings).
func Declare(capability string) activities.Declaration {
	if capability != activities.CapRelease {
		return activities.Declaration{}
	}
	return activities.Declaration{Config: awsconf.With(
		activities.Field{Name: "cluster", Type: activities.TypeString, Required: true, Doc: "the ECS cluster"},
		activities.Field{Name: "service", Type: activities.TypeString, Required: true, Doc: "the stable service"},
		activities.Field{Name: "canaryService", Type: activities.TypeString, Required: true, Doc: "the canary service"},
		activities.Field{Name: "container", Type: activities.TypeString, Doc: "the container whose image is the version"},
		activities.Field{Name: "canaryCount", Type: activities.TypeInt, Min: activities.Num(0), Doc: "canary tasks"},
		activities.Field{Name: "passRoles", Type: activities.TypeList, Doc: "role ARNs the task definition passes"},
	)}
}
