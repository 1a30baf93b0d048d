package kubernetes

import (
	"fmt"

	"github.com/drillship/drillship/activities"
)

// Rules lists the RBAC grants a capability needs with cfg: what the code
// calls, no more. Verbs that name one object (get, update, delete) are
// narrowed to the objects the settings name; list, watch and create cannot
// be.
func Rules(capability string, cfg map[string]any) ([]activities.Rule, error) {
	switch capability {
	case activities.CapRelease:
		c, _, err := parseRelease(cfg)
		if err != nil {
			return nil, err
		}
		return releaseRules(c), nil
	case activities.CapSignals:
		s, err := NewSignals(cfg)
		if err != nil {
			return nil, err
		}
		return signalsRules(s.cfg.Namespace), nil
	case activities.CapFaults:
		return faultRules(cfg)
	}
	return nil, fmt.Errorf("kubernetes: no %s capability", capability)
}

func releaseRules(c ReleaseConfig) []activities.Rule {
	ns := c.Namespace
	return []activities.Rule{
		// State, Deploy and Promote read both and write them (Update with
		// conflict retry); Stop scales the canary down and deletes it.
		{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "update"}, ResourceNames: []string{c.Deployment, c.Canary}, Namespace: ns},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"delete"}, ResourceNames: []string{c.Canary}, Namespace: ns},
		// Deploy creates the canary; rollouts are waited for through a
		// Deployment informer.
		{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"create", "list", "watch"}, Namespace: ns},
		// The stable Deployment's history is listed (State, Prune) and
		// pruned.
		{APIGroups: []string{"apps"}, Resources: []string{"replicasets"}, Verbs: []string{"delete", "list"}, Namespace: ns},
		// Stop waits for the canary's pods to be gone through a pod
		// informer.
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list", "watch"}, Namespace: ns},
		// Preflight: the budgets and autoscalers covering the Deployment.
		{APIGroups: []string{"policy"}, Resources: []string{"poddisruptionbudgets"}, Verbs: []string{"list"}, Namespace: ns},
		{APIGroups: []string{"autoscaling"}, Resources: []string{"horizontalpodautoscalers"}, Verbs: []string{"list"}, Namespace: ns},
	}
}

// signalsRules is read-only. A query names its Deployment, so get cannot
// be narrowed by the settings.
func signalsRules(ns string) []activities.Rule {
	return []activities.Rule{
		{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "list"}, Namespace: ns},
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}, Namespace: ns},
		{APIGroups: []string{"autoscaling"}, Resources: []string{"horizontalpodautoscalers"}, Verbs: []string{"list"}, Namespace: ns},
	}
}
