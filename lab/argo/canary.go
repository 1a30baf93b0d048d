package argo

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
)

// Resources of the Argo Rollouts API.
var (
	RolloutGVR     = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"}
	AnalysisRunGVR = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "analysisruns"}
	TemplateGVR    = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "analysistemplates"}
)

// Step is one canary step: set the canary's share, then pause.
type Step struct {
	Weight int
	Pause  time.Duration
}

// Canary is a Rollout whose canary is judged by one Prometheus metric in
// the background. Without a traffic router, Argo Rollouts shifts by
// replicas: a step's weight is the canary's share of Replicas, and a
// Service selecting both ReplicaSets splits requests by Ready pods.
type Canary struct {
	Namespace string
	Name      string // the Rollout, its Service and its pods' app label
	Replicas  int
	Steps     []Step
	// Labels are added to the pod template; VersionLabel carries the version.
	VersionLabel string
	Image        func(version string) string
	// The analysis: Query is PromQL in which {{version}} is the canary's
	// version; a sample fails when its value is above Max, and the run
	// fails on sample FailureLimit+1. No data (no requests yet) passes.
	PrometheusURL string
	Query         string
	Interval      time.Duration
	FailureLimit  int
	Max           float64
	// MinReadySeconds, as the stable Deployment's.
	MinReadySeconds int
}

func (c Canary) template() string { return c.Name + "-analysis" }

// Create creates (or replaces the spec of) the analysis template, the
// Service and the Rollout at version, with admin's clients.
func (c Canary) Create(ctx context.Context, kc kubernetes.Interface, dc dynamic.Interface, version string) error {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: c.Name, Namespace: c.Namespace, Labels: map[string]string{"app": c.Name}},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": c.Name},
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	if _, err := kc.CoreV1().Services(c.Namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("argo: service %s: %w", c.Name, err)
	}
	query := strings.ReplaceAll(c.Query, "{{version}}", "{{args.version}}")
	at := map[string]any{
		"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate",
		"metadata": map[string]any{"name": c.template(), "namespace": c.Namespace},
		"spec": map[string]any{
			"args": []any{map[string]any{"name": "version"}},
			"metrics": []any{map[string]any{
				"name":         "error-rate",
				"interval":     c.Interval.String(),
				"failureLimit": int64(c.FailureLimit),
				// No requests yet gives no sample or NaN: not a failure,
				// as drillship counts such a sample inconclusive.
				"successCondition": fmt.Sprintf("len(result) == 0 || isNaN(result[0]) || result[0] <= %g", c.Max),
				"provider": map[string]any{"prometheus": map[string]any{
					"address": c.PrometheusURL, "query": query,
				}},
			}},
		},
	}
	if err := apply(ctx, dc, TemplateGVR, c.Namespace, at); err != nil {
		return err
	}
	var steps []any
	for _, s := range c.Steps {
		steps = append(steps, map[string]any{"setWeight": int64(s.Weight)})
		if s.Pause > 0 {
			steps = append(steps, map[string]any{"pause": map[string]any{"duration": strconv.Itoa(int(s.Pause/time.Second)) + "s"}})
		}
	}
	ro := map[string]any{
		"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
		"metadata": map[string]any{"name": c.Name, "namespace": c.Namespace, "labels": map[string]any{"app": c.Name}},
		"spec": map[string]any{
			"replicas":             int64(c.Replicas),
			"minReadySeconds":      int64(c.MinReadySeconds),
			"revisionHistoryLimit": int64(10),
			"selector":             map[string]any{"matchLabels": map[string]any{"app": c.Name}},
			"template":             c.podTemplate(version),
			"strategy": map[string]any{"canary": map[string]any{
				"steps": steps,
				// Background analysis from the first pause on: the canary
				// has its first share of traffic then.
				"analysis": map[string]any{
					"templates":    []any{map[string]any{"templateName": c.template()}},
					"startingStep": int64(1),
					"args":         []any{map[string]any{"name": "version", "value": version}},
				},
			}},
		},
	}
	return apply(ctx, dc, RolloutGVR, c.Namespace, ro)
}

func (c Canary) podTemplate(version string) map[string]any {
	return map[string]any{
		"metadata": map[string]any{"labels": map[string]any{"app": c.Name, c.VersionLabel: version}},
		"spec": map[string]any{
			"terminationGracePeriodSeconds": int64(0),
			"topologySpreadConstraints": []any{map[string]any{
				"maxSkew": int64(1), "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway",
				"labelSelector": map[string]any{"matchLabels": map[string]any{"app": c.Name}},
			}},
			"containers": []any{map[string]any{
				"name": "web", "image": c.Image(version),
				"ports":          []any{map[string]any{"containerPort": int64(8080)}},
				"readinessProbe": map[string]any{"httpGet": map[string]any{"path": "/healthz", "port": int64(8080)}, "periodSeconds": int64(1)},
			}},
		},
	}
}

// SetVersion starts a rollout of version: the pod template's image and
// version label, and the analysis argument, in one merge patch (what
// `kubectl argo rollouts set image` and an edit of the args would do).
func (c Canary) SetVersion(ctx context.Context, dc dynamic.Interface, version string) error {
	patch := map[string]any{"spec": map[string]any{
		"template": c.podTemplate(version),
		"strategy": map[string]any{"canary": map[string]any{"analysis": map[string]any{
			"templates":    []any{map[string]any{"templateName": c.template()}},
			"startingStep": int64(1),
			"args":         []any{map[string]any{"name": "version", "value": version}},
		}}},
	}}
	b, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	if _, err := dc.Resource(RolloutGVR).Namespace(c.Namespace).Patch(ctx, c.Name, types.MergePatchType, b, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("argo: set %s to %s: %w", c.Name, version, err)
	}
	return nil
}

func apply(ctx context.Context, dc dynamic.Interface, gvr schema.GroupVersionResource, ns string, obj map[string]any) error {
	u := &unstructured.Unstructured{Object: obj}
	if _, err := dc.Resource(gvr).Namespace(ns).Apply(ctx, u.GetName(), u, metav1.ApplyOptions{FieldManager: "drillship-bench", Force: true}); err != nil {
		return fmt.Errorf("argo: apply %s %s: %w", u.GetKind(), u.GetName(), err)
	}
	return nil
}

// RolloutStatus is what the bench reads of a Rollout.
type RolloutStatus struct {
	Phase          string
	Aborted        bool
	StableRS       string
	CurrentPodHash string
	Version        string // the spec's pod template version label
	Generation     int64
	Observed       string // status.observedGeneration (a string in this API)
}

// Healthy: the controller has seen the spec and its current pods are the
// stable ones, fully available.
func (s RolloutStatus) Healthy() bool {
	return s.Phase == "Healthy" && !s.Aborted && s.StableRS != "" && s.StableRS == s.CurrentPodHash &&
		s.Observed == strconv.FormatInt(s.Generation, 10)
}

func (c Canary) status(u *unstructured.Unstructured) RolloutStatus {
	var s RolloutStatus
	s.Phase, _, _ = unstructured.NestedString(u.Object, "status", "phase")
	s.Aborted, _, _ = unstructured.NestedBool(u.Object, "status", "abort")
	s.StableRS, _, _ = unstructured.NestedString(u.Object, "status", "stableRS")
	s.CurrentPodHash, _, _ = unstructured.NestedString(u.Object, "status", "currentPodHash")
	s.Version, _, _ = unstructured.NestedString(u.Object, "spec", "template", "metadata", "labels", c.VersionLabel)
	s.Observed, _, _ = unstructured.NestedString(u.Object, "status", "observedGeneration")
	s.Generation = u.GetGeneration()
	return s
}

// WaitRollout blocks until the Rollout's status satisfies cond (watch, not
// polling) and returns it.
func (c Canary) WaitRollout(ctx context.Context, dc dynamic.Interface, cond func(RolloutStatus) bool) (RolloutStatus, error) {
	var last RolloutStatus
	_, err := watchtools.UntilWithSync(ctx, c.listWatch(dc, RolloutGVR, fields.OneTermEqualSelector("metadata.name", c.Name).String()),
		&unstructured.Unstructured{}, nil, func(ev watch.Event) (bool, error) {
			u, ok := ev.Object.(*unstructured.Unstructured)
			if !ok {
				return false, nil
			}
			last = c.status(u)
			return cond(last), nil
		})
	if err != nil {
		return last, fmt.Errorf("argo: rollout %s: %w (last: %+v)", c.Name, err, last)
	}
	return last, nil
}

// WaitDecisiveFailure returns when an AnalysisRun of this Rollout created
// at or after since first shows FailureLimit+1 failed measurements: the
// sample that fails the analysis, as drillship's failed sample is the one
// past its failure limit. The time is when the status carrying it reached
// this watch (Argo records measurement times in whole seconds only).
func (c Canary) WaitDecisiveFailure(ctx context.Context, dc dynamic.Interface, since time.Time) (time.Time, error) {
	var at time.Time
	_, err := watchtools.UntilWithSync(ctx, c.listWatch(dc, AnalysisRunGVR, ""), &unstructured.Unstructured{}, nil,
		func(ev watch.Event) (bool, error) {
			u, ok := ev.Object.(*unstructured.Unstructured)
			if !ok || !c.owns(u) || u.GetCreationTimestamp().Time.Before(since.Truncate(time.Second)) {
				return false, nil
			}
			results, _, _ := unstructured.NestedSlice(u.Object, "status", "metricResults")
			for _, r := range results {
				m, _ := r.(map[string]any)
				if f, _ := m["failed"].(int64); f > int64(c.FailureLimit) {
					at = time.Now()
					return true, nil
				}
			}
			return false, nil
		})
	if err != nil {
		return time.Time{}, fmt.Errorf("argo: analysis of %s: no failed judgement: %w", c.Name, err)
	}
	return at, nil
}

func (c Canary) owns(u *unstructured.Unstructured) bool {
	for _, o := range u.GetOwnerReferences() {
		if o.Kind == "Rollout" && o.Name == c.Name {
			return true
		}
	}
	return false
}

func (c Canary) listWatch(dc dynamic.Interface, gvr schema.GroupVersionResource, fieldSelector string) *cache.ListWatch {
	ri := dc.Resource(gvr).Namespace(c.Namespace)
	return &cache.ListWatch{
		ListFunc: func(o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = fieldSelector
			return ri.List(context.Background(), o)
		},
		WatchFunc: func(o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = fieldSelector
			return ri.Watch(context.Background(), o)
		},
	}
}
