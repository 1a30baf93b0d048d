package kubernetes

import (
	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/kubeconn"
)

// Declare says what the kubernetes provider accepts for a capability.
func Declare(capability string) activities.Declaration {
	switch capability {
	case activities.CapRelease:
		return activities.Declaration{Config: releaseFields()}
	case activities.CapSignals:
		return activities.Declaration{Config: kubeconn.With(
			activities.Field{Name: "selector", Type: activities.TypeString, Doc: "label selector (app=web) that version and role scopes narrow; default: every pod of the namespace"},
			activities.Field{Name: "deployment", Type: activities.TypeString, Doc: "the Deployment a query without a scope is about"},
		), Metrics: signalMetrics()}
	case activities.CapFaults:
		return declareFaults()
	}
	return activities.Declaration{}
}

func releaseFields() []activities.Field {
	mode := func(name, def, doc string) activities.Field {
		return activities.Field{Name: name, Type: activities.TypeString, Enum: []string{Refuse, Warn, Off}, Default: def, Doc: doc}
	}
	return kubeconn.With(
		activities.Field{Name: "deployment", Type: activities.TypeString, Required: true, Doc: "the stable Deployment; Promote rolls it onto the new version"},
		activities.Field{Name: "canary", Type: activities.TypeString, Doc: "the canary Deployment drillship creates beside it (pods labelled drillship.dev/role: canary); default: <deployment>-canary"},
		activities.Field{Name: "container", Type: activities.TypeString, Doc: "the container whose image tag is the version; default: the only one"},
		activities.Field{Name: "canaryReplicas", Type: activities.TypeInt, Default: "1", Min: activities.Num(1), Max: activities.Num(1000), Doc: "replicas of the canary Deployment"},
		activities.Field{Name: "rolloutTimeout", Type: activities.TypeDuration, Default: "5m", Min: activities.Num(1), Max: activities.Num(24 * 3600),
			Doc: "how long Promote waits for the stable rollout; a rollout that fails or takes longer is set back to the version it replaced"},
		activities.Field{Name: "preflight", Type: activities.TypeObject, Doc: "what each check does when it fails before a run: refuse, warn or off",
			Fields: []activities.Field{
				mode("pdb", Warn, "a PodDisruptionBudget selects the stable pods"),
				mode("readinessProbe", Warn, "the versioned container has a readiness probe"),
				mode("minReadySeconds", Warn, "the stable Deployment has minReadySeconds above 0"),
				mode("hpaRoom", Warn, "an HPA scaling the stable Deployment has room for the canary replicas"),
				mode("rolledOut", Refuse, "the stable Deployment is fully rolled out"),
			}},
	)
}

func signalMetrics() []activities.MetricDecl {
	scopes := []string{ScopeDeployment, ScopeVersion, ScopeRole}
	return []activities.MetricDecl{
		{Name: MetricReadyRatio, Unit: "ratio 0..1", Doc: "Ready pods over desired replicas", Scopes: scopes, Min: activities.Num(0), Max: activities.Num(1)},
		{Name: MetricAvailableReplicas, Unit: "replicas", Doc: "available replicas (Ready for minReadySeconds) of the Deployments in scope", Scopes: scopes, Min: activities.Num(0)},
		{Name: MetricRestarts, Unit: "restarts", Doc: "container restarts of the pods in scope; the detail names pods in CrashLoopBackOff", Scopes: scopes, Min: activities.Num(0)},
		{Name: MetricHPAAtMax, Unit: "1|0", Doc: "1 when an HPA scaling a Deployment in scope runs at its maxReplicas", Scopes: scopes, Min: activities.Num(0), Max: activities.Num(1)},
	}
}
