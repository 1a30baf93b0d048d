package kubernetes

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/kubeconn"
)

// Metrics the signals capability answers, read from the API (SLIs come
// from Prometheus).
const (
	MetricReadyRatio        = "ready_ratio"
	MetricAvailableReplicas = "available_replicas"
	MetricRestarts          = "restarts"
	MetricHPAAtMax          = "hpa_at_max"
)

// Scope keys: a Deployment by name, or pods by their drillship labels.
const (
	ScopeDeployment = "deployment"
	ScopeVersion    = "version"
	ScopeRole       = "role"
)

// SignalsConfig is the Signals settings.
//
//	namespace: web
//	selector: app=web      # narrows version and role scopes to these pods
//	deployment: web        # the scope of a query that names none
type SignalsConfig struct {
	kubeconn.Settings
	Selector   string `json:"selector,omitempty"`
	Deployment string `json:"deployment,omitempty"`

	selector labels.Selector
}

// Signals reads readiness, availability, restarts and HPA saturation.
type Signals struct {
	conn *kubeconn.Conn
	cfg  SignalsConfig
}

// NewSignals validates the settings; it does no I/O.
func NewSignals(cfg map[string]any) (*Signals, error) {
	var c SignalsConfig
	if err := activities.DecodeConfig(cfg, &c); err != nil {
		return nil, err
	}
	conn, err := kubeconn.New(c.Settings)
	if err != nil {
		return nil, err
	}
	if c.selector, err = labels.Parse(c.Selector); err != nil {
		return nil, fmt.Errorf("config: selector %q: %w", c.Selector, err)
	}
	if c.Deployment != "" {
		if err := kubeconn.ValidName("deployment", c.Deployment); err != nil {
			return nil, err
		}
	}
	return &Signals{conn: conn, cfg: c}, nil
}

// population is what a scope covers: Deployments and the pods they select.
type population struct {
	deployments []appsv1.Deployment
	pods        []corev1.Pod
	what        string
}

func (s *Signals) population(ctx context.Context, scope map[string]string) (population, error) {
	k, err := s.conn.Kube()
	if err != nil {
		return population{}, err
	}
	ns, err := s.conn.Namespace()
	if err != nil {
		return population{}, err
	}
	var p population
	var podSel labels.Selector
	name := scope[ScopeDeployment]
	if name == "" && scope[ScopeVersion] == "" && scope[ScopeRole] == "" {
		name = s.cfg.Deployment
	}
	switch {
	case name != "":
		if len(scope) > 1 {
			return p, activities.Permanent(fmt.Errorf("kubernetes: scope deployment takes no other key (got %v)", scope))
		}
		p.what = "Deployment " + name
		d, err := k.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return p, nil
		}
		if err != nil {
			return p, kubeconn.Classify(err)
		}
		p.deployments = []appsv1.Deployment{*d}
		if podSel, err = metav1.LabelSelectorAsSelector(d.Spec.Selector); err != nil {
			return p, activities.Permanent(fmt.Errorf("kubernetes: Deployment %s: selector: %w", name, err))
		}
	case len(scope) == 0:
		return p, activities.Permanent(fmt.Errorf("kubernetes: a query needs a scope (deployment, version or role) or config.deployment"))
	default:
		var err error
		if podSel, err = scopeSelector(s.cfg.selector, scope); err != nil {
			return p, err
		}
		p.what = "pods " + podSel.String()
		list, err := k.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return p, kubeconn.Classify(err)
		}
		for _, d := range list.Items {
			if podSel.Matches(labels.Set(d.Spec.Template.Labels)) {
				p.deployments = append(p.deployments, d)
			}
		}
	}
	pods, err := k.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: podSel.String()})
	if err != nil {
		return p, kubeconn.Classify(err)
	}
	for _, pod := range pods.Items {
		if pod.DeletionTimestamp == nil && pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed {
			p.pods = append(p.pods, pod)
		}
	}
	return p, nil
}

// scopeSelector adds a version or role scope to the configured selector.
func scopeSelector(base labels.Selector, scope map[string]string) (labels.Selector, error) {
	keys := map[string]string{ScopeVersion: LabelVersion, ScopeRole: LabelRole}
	set := labels.Set{}
	for k, v := range scope {
		lbl, ok := keys[k]
		if !ok {
			return nil, activities.Permanent(fmt.Errorf("kubernetes: scope %q: want deployment, version or role", k))
		}
		set[lbl] = v
	}
	extra, err := labels.ValidatedSelectorFromSet(set)
	if err != nil {
		return nil, activities.Permanent(fmt.Errorf("kubernetes: scope %v: %w", scope, err))
	}
	reqs, _ := extra.Requirements()
	return base.Add(reqs...), nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Sample answers one of the declared metrics for the query's scope.
func (s *Signals) Sample(ctx context.Context, q activities.Query) (activities.Sample, error) {
	p, err := s.population(ctx, q.Scope)
	if err != nil {
		return activities.Sample{}, err
	}
	now := time.Now().UnixMilli()
	noData := func(detail string) (activities.Sample, error) {
		return activities.Sample{NoData: true, At: now, Detail: detail}, nil
	}
	if len(p.deployments) == 0 && len(p.pods) == 0 {
		return noData("nothing matches " + p.what)
	}
	switch q.Metric {
	case MetricReadyRatio:
		return readyRatio(p, now), nil
	case MetricAvailableReplicas:
		if len(p.deployments) == 0 {
			return noData("no Deployment runs " + p.what)
		}
		var n int32
		for _, d := range p.deployments {
			n += d.Status.AvailableReplicas
		}
		return activities.Sample{Value: float64(n), At: now}, nil
	case MetricRestarts:
		return restarts(p, now), nil
	case MetricHPAAtMax:
		return s.hpaAtMax(ctx, p, now)
	}
	return activities.Sample{}, activities.Permanent(fmt.Errorf("kubernetes: metric %q: want %s, %s, %s or %s",
		q.Metric, MetricReadyRatio, MetricAvailableReplicas, MetricRestarts, MetricHPAAtMax))
}

// readyRatio is Ready pods over desired replicas (over pods when no
// Deployment says what it wants).
func readyRatio(p population, now int64) activities.Sample {
	ready := 0
	for i := range p.pods {
		if podReady(&p.pods[i]) {
			ready++
		}
	}
	desired := 0
	for _, d := range p.deployments {
		desired += int(replicas(&d))
	}
	if len(p.deployments) == 0 {
		desired = len(p.pods)
	}
	if desired == 0 {
		return activities.Sample{NoData: true, At: now, Detail: p.what + ": 0 replicas desired"}
	}
	return activities.Sample{Value: float64(ready) / float64(desired), At: now,
		Detail: fmt.Sprintf("%s: %d Ready of %d desired", p.what, ready, desired)}
}

// restarts sums container restarts and names the pods in CrashLoopBackOff.
func restarts(p population, now int64) activities.Sample {
	if len(p.pods) == 0 {
		return activities.Sample{NoData: true, At: now, Detail: "no pods in " + p.what}
	}
	var n int32
	var crashing []string
	for _, pod := range p.pods {
		loop := false
		for _, cs := range append(append([]corev1.ContainerStatus{}, pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...) {
			n += cs.RestartCount
			if w := cs.State.Waiting; w != nil && w.Reason == "CrashLoopBackOff" {
				loop = true
			}
		}
		if loop {
			crashing = append(crashing, pod.Name)
		}
	}
	sort.Strings(crashing)
	out := activities.Sample{Value: float64(n), At: now}
	if len(crashing) > 0 {
		out.Detail = "in CrashLoopBackOff: " + strings.Join(crashing, ", ")
	}
	return out
}

// hpaAtMax is 1 when an HPA scaling one of the Deployments is at its
// maximum.
func (s *Signals) hpaAtMax(ctx context.Context, p population, now int64) (activities.Sample, error) {
	k, err := s.conn.Kube()
	if err != nil {
		return activities.Sample{}, err
	}
	ns, err := s.conn.Namespace()
	if err != nil {
		return activities.Sample{}, err
	}
	list, err := k.AutoscalingV2().HorizontalPodAutoscalers(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return activities.Sample{}, kubeconn.Classify(err)
	}
	names := map[string]int32{}
	for _, d := range p.deployments {
		names[d.Name] = replicas(&d)
	}
	found := false
	var details []string
	value := 0.0
	for _, h := range list.Items {
		ref := h.Spec.ScaleTargetRef
		n, ok := names[ref.Name]
		if ref.Kind != "Deployment" || !ok {
			continue
		}
		found = true
		// Before its first sync an HPA reports no replicas; the
		// Deployment's are the ones it would start from.
		cur := h.Status.CurrentReplicas
		if cur == 0 {
			cur = n
		}
		details = append(details, fmt.Sprintf("HPA %s: %d of max %d", h.Name, cur, h.Spec.MaxReplicas))
		if cur >= h.Spec.MaxReplicas {
			value = 1
		}
	}
	if !found {
		return activities.Sample{NoData: true, At: now, Detail: "no HPA scales " + p.what}, nil
	}
	sort.Strings(details)
	return activities.Sample{Value: value, At: now, Detail: strings.Join(details, "; ")}, nil
}
