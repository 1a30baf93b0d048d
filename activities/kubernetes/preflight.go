package kubernetes

import (
	"context"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/kubeconn"
)

// Preflight checks, before anything changes, what a careful operator
// would: the worker may do what the release needs (always refuses), the
// stable Deployment has a PodDisruptionBudget, a readiness probe and
// minReadySeconds, its HPA has room for the canary, and it is fully rolled
// out (each refuses, warns or is off per config.preflight). It only reads.
func (r *Release) Preflight(ctx context.Context) ([]activities.Finding, error) {
	k, ns, err := r.client()
	if err != nil {
		return nil, err
	}
	// Asked first: the checks below need some of these grants to run.
	out, err := r.conn.Access(ctx, releaseRules(r.cfg))
	if err != nil {
		return nil, err
	}
	st, err := r.stable(ctx, k, ns)
	if err != nil {
		return nil, err
	}
	ci, err := containerIndex(r.cfg.Container, "Deployment "+st.Name, &st.Spec.Template)
	if err != nil {
		return nil, err
	}
	out = append(out, r.canaryCheck(ctx, k, st))
	p := r.cfg.Preflight
	checks := []struct {
		check, mode string
		run         func() (bool, string, error)
	}{
		{"pdb", p.PDB, func() (bool, string, error) { return r.pdbCovers(ctx, k, st) }},
		{"readiness-probe", p.ReadinessProbe, func() (bool, string, error) {
			c := st.Spec.Template.Spec.Containers[ci]
			if c.ReadinessProbe == nil {
				return false, fmt.Sprintf("container %s of Deployment %s has no readiness probe: its pods count as ready as soon as they start, before they can serve", c.Name, st.Name), nil
			}
			return true, fmt.Sprintf("container %s of Deployment %s has a readiness probe", c.Name, st.Name), nil
		}},
		{"min-ready-seconds", p.MinReadySeconds, func() (bool, string, error) {
			if st.Spec.MinReadySeconds <= 0 {
				return false, fmt.Sprintf("Deployment %s has minReadySeconds 0: a pod that fails right after turning Ready still counts as available and the rollout moves on", st.Name), nil
			}
			return true, fmt.Sprintf("Deployment %s has minReadySeconds %d", st.Name, st.Spec.MinReadySeconds), nil
		}},
		{"hpa-room", p.HPARoom, func() (bool, string, error) { return r.hpaRoom(ctx, k, st) }},
		{"rolled-out", p.RolledOut, func() (bool, string, error) {
			done, failed, waiting := rollout(st, st.Generation)
			switch {
			case failed != "":
				return false, failed + ": a deploy now would start from a broken stable", nil
			case !done:
				return false, fmt.Sprintf("Deployment %s is not fully rolled out (%s): a deploy now would start from a moving stable", st.Name, waiting), nil
			}
			return true, fmt.Sprintf("Deployment %s is fully rolled out (%d available)", st.Name, st.Status.AvailableReplicas), nil
		}},
	}
	for _, c := range checks {
		if c.mode == Off {
			continue
		}
		ok, detail, err := c.run()
		if apierrors.IsForbidden(err) {
			// The rbac finding names the grant; this check could not run.
			ok, detail, err = false, "could not check: "+err.Error(), nil
		}
		if err != nil {
			return nil, kubeconn.Classify(err)
		}
		out = append(out, activities.Finding{Check: c.check, OK: ok, Detail: detail, Refuse: !ok && c.mode == Refuse})
	}
	return out, nil
}

// pdbCovers finds a PodDisruptionBudget selecting the stable pods.
func (r *Release) pdbCovers(ctx context.Context, k kubernetes.Interface, st *appsv1.Deployment) (bool, string, error) {
	list, err := k.PolicyV1().PodDisruptionBudgets(st.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return false, "", err
	}
	pod := labels.Set(st.Spec.Template.Labels)
	for _, b := range list.Items {
		sel, err := metav1.LabelSelectorAsSelector(b.Spec.Selector)
		// An empty selector in policy/v1 selects every pod of the namespace.
		if err != nil || !sel.Matches(pod) {
			continue
		}
		var rule string
		switch {
		case b.Spec.MinAvailable != nil:
			rule = "minAvailable " + b.Spec.MinAvailable.String()
		case b.Spec.MaxUnavailable != nil:
			rule = "maxUnavailable " + b.Spec.MaxUnavailable.String()
		}
		return true, strings.TrimSpace(fmt.Sprintf("Deployment %s is covered by PodDisruptionBudget %s %s", st.Name, b.Name, rule)), nil
	}
	return false, fmt.Sprintf("Deployment %s has no PodDisruptionBudget: a node drain may take all its pods at once", st.Name), nil
}

// hpaRoom checks that an HPA scaling the stable Deployment can take the
// canary's replicas on top of what it runs now.
func (r *Release) hpaRoom(ctx context.Context, k kubernetes.Interface, st *appsv1.Deployment) (bool, string, error) {
	list, err := k.AutoscalingV2().HorizontalPodAutoscalers(st.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return false, "", err
	}
	for _, h := range list.Items {
		ref := h.Spec.ScaleTargetRef
		if ref.Kind != "Deployment" || ref.Name != st.Name {
			continue
		}
		cur := h.Status.CurrentReplicas
		if cur == 0 {
			cur = replicas(st)
		}
		need := cur + r.cfg.canaryReplicas
		if h.Spec.MaxReplicas < need {
			return false, fmt.Sprintf("HPA %s runs Deployment %s at %d of max %d: no room for %d canary replicas (%d needed)",
				h.Name, st.Name, cur, h.Spec.MaxReplicas, r.cfg.canaryReplicas, need), nil
		}
		return true, fmt.Sprintf("HPA %s runs Deployment %s at %d of max %d: room for %d canary replicas", h.Name, st.Name, cur, h.Spec.MaxReplicas, r.cfg.canaryReplicas), nil
	}
	return true, fmt.Sprintf("no HPA scales Deployment %s", st.Name), nil
}

// canaryCheck refuses what would stop Deploy: a stable selector that would
// take the canary's pods, or a Deployment of the canary's name that is not
// drillship's.
func (r *Release) canaryCheck(ctx context.Context, k kubernetes.Interface, st *appsv1.Deployment) activities.Finding {
	f := activities.Finding{Check: "canary"}
	if _, err := r.canaryFor(st, r.versionOf(&st.Spec.Template), ""); err != nil {
		f.Detail, f.Refuse = strings.TrimPrefix(err.Error(), "kubernetes: "), true
		return f
	}
	can, err := r.canary(ctx, k, st.Namespace)
	switch {
	case err != nil:
		f.Detail = "could not check: " + err.Error()
	case can == nil:
		f.OK, f.Detail = true, fmt.Sprintf("Deployment %s will be created for the canary", r.cfg.Canary)
	case !managed(can):
		f.Detail, f.Refuse = fmt.Sprintf("Deployment %s exists and is not drillship's (no %s=%s label): the canary cannot use that name", can.Name, LabelManagedBy, ManagedBy), true
	default:
		f.OK, f.Detail = true, fmt.Sprintf("Deployment %s is drillship's canary (running %s, %d replicas)", can.Name, r.versionOf(&can.Spec.Template), replicas(can))
	}
	return f
}
