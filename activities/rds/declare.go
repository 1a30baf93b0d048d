package rds

import (
	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/awsconf"
)

// Declare says what the rds provider accepts (settings).
func Declare(capability string) activities.Declaration {
	if capability != activities.CapDatabase {
		return activities.Declaration{}
	}
	return activities.Declaration{Config: awsconf.With(
		activities.Field{Name: "mode", Type: activities.TypeString, Required: true, Enum: []string{ModeCluster, ModeGlobalSwitchover, ModeGlobalFailover, ModeReplica}, Doc: "how a node is promoted"},
		activities.Field{Name: "cluster", Type: activities.TypeString, Doc: "mode cluster: the DB cluster identifier"},
		activities.Field{Name: "globalCluster", Type: activities.TypeString, Doc: "global modes: the global cluster identifier"},
		activities.Field{Name: "nodes", Type: activities.TypeMap, Doc: "node name -> instance, cluster or ARN"},
	)}
}
