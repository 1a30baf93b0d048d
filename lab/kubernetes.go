package lab

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/drillship/drillship/lab/kube"
)

// The lab's Kubernetes part: a control plane of kwok nodes in two zones
// (package lab/kube), the objects every Kubernetes provider and spec codes
// against (namespace web, Deployment web, its Services, PDB and HPA, a
// cache dependency, a Gateway and HTTPRoute web), and the data plane that
// steers real requests through the lab's HAProxy by that route.

// Names of the lab's Kubernetes objects.
const (
	KubeNamespace  = "web"
	KubeDeployment = "web"
	KubeRoute      = "web"
	KubeGateway    = "web"
	// KubeGatewayClass is the class whose controller is the lab's data plane.
	KubeGatewayClass = "drillship-lab"
	KubeStable       = "web-stable" // Service of the stable pods
	KubeCanary       = "web-canary" // Service of the canary pods (and the canary Deployment)
)

// KubernetesInfo is the lab's cluster: where to reach it and what to stop.
type KubernetesInfo struct {
	Dir        string `json:"dir"`
	Kubeconfig string `json:"kubeconfig"` // admin
	Server     string `json:"server"`
	PIDs       []int  `json:"pids"`
	Namespace  string `json:"namespace"`
	Route      string `json:"route"`
	// Nodes by zone.
	Nodes map[string][]string `json:"nodes"`
	// StartMs: the control plane up with its nodes Ready; ReadyMs: the lab's
	// objects applied and Deployment web Available.
	StartMs int64 `json:"startMs"`
	ReadyMs int64 `json:"readyMs"`
}

// labObjects are the lab's objects (server-side applied in this order).
//
// The zone spread is ScheduleAnyway: with DoNotSchedule, a zone whose nodes
// are all down still counts as a domain with no pods, and the replacements
// of its pods could not be scheduled in the other zone, which is what the
// zone-outage drill expects to happen.
const labObjects = `apiVersion: v1
kind: Namespace
metadata:
  name: web
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: web
  labels: {app: web}
spec:
  replicas: 4
  minReadySeconds: 2
  revisionHistoryLimit: 10
  selector:
    matchLabels: {app: web, drillship.dev/role: stable}
  template:
    metadata:
      labels: {app: web, drillship.dev/role: stable, drillship.dev/version: v1}
    spec:
      terminationGracePeriodSeconds: 0
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: topology.kubernetes.io/zone
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels: {app: web}
      containers:
        - name: web
          image: lab.drillship.dev/web:v1
          ports:
            - containerPort: 8080
          readinessProbe:
            httpGet: {path: /healthz, port: 8080}
            periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web-stable
  namespace: web
  labels: {app: web}
spec:
  selector: {app: web, drillship.dev/role: stable}
  ports:
    - port: 80
      targetPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: web-canary
  namespace: web
  labels: {app: web}
spec:
  selector: {app: web, drillship.dev/role: canary}
  ports:
    - port: 80
      targetPort: 8080
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: web
  namespace: web
spec:
  minAvailable: 2
  selector:
    matchLabels: {app: web, drillship.dev/role: stable}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: web
  namespace: web
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 4
  maxReplicas: 8
  metrics:
    - type: Resource
      resource:
        name: cpu
        target: {type: Utilization, averageUtilization: 80}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: cache
  namespace: web
  labels: {app: cache}
spec:
  replicas: 2
  selector:
    matchLabels: {app: cache}
  template:
    metadata:
      labels: {app: cache}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
        - name: cache
          image: lab.drillship.dev/cache:v1
          ports:
            - containerPort: 6379
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: drillship-lab
spec:
  controllerName: drillship.dev/lab-data-plane
  description: the lab HAProxy, steered by the lab host
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: web
  namespace: web
spec:
  gatewayClassName: drillship-lab
  listeners:
    - name: http
      protocol: HTTP
      port: 80
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web
  namespace: web
spec:
  parentRefs:
    - name: web
  rules:
    - backendRefs:
        - name: web-stable
          port: 80
          weight: 100
        - name: web-canary
          port: 80
          weight: 0
`

// upKubernetes starts the cluster, applies the lab's objects, waits for
// Deployment web to be Available and starts the data plane.
func (l *Lab) upKubernetes(ctx context.Context, o Options) error {
	start := time.Now()
	dir := filepath.Join(l.Dir, "kube")
	c, err := kube.Start(ctx, kube.Options{Dir: dir, DieWithParent: o.DieWithParent, Logger: l.log})
	if err != nil {
		return fmt.Errorf("lab: kubernetes: %w", err)
	}
	l.cluster = c
	k := &KubernetesInfo{Dir: dir, Kubeconfig: c.Kubeconfig, Server: c.Server, PIDs: c.PIDs(),
		Namespace: KubeNamespace, Route: KubeRoute, StartMs: time.Since(start).Milliseconds()}
	l.Kubernetes = k
	if err := l.save(); err != nil {
		return err
	}
	cfg := c.RESTConfig()
	cfg.UserAgent = "drillship-lab"
	cfg.QPS, cfg.Burst = 50, 100
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("lab: kubernetes: %w", err)
	}
	gw, err := gatewayclient.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("lab: kubernetes: %w", err)
	}
	if k.Nodes, err = nodesByZone(ctx, kc); err != nil {
		return err
	}
	if err := c.Apply(ctx, []byte(labObjects)); err != nil {
		return fmt.Errorf("lab: kubernetes: applying the lab's objects: %w", err)
	}
	if err := waitAvailable(ctx, kc, KubeNamespace, KubeDeployment, 2*time.Minute); err != nil {
		return err
	}
	if err := acceptGateway(ctx, gw, KubeGatewayClass, KubeNamespace, KubeGateway, "127.0.0.1"); err != nil {
		return err
	}
	h := weightSetter{socket: l.HAProxy.Socket, backend: l.HAProxy.Backend, servers: l.HAProxy.Servers}
	dp, err := startDataPlane(ctx, kc, gw, KubeNamespace, KubeRoute, KubeGateway, h, l.log)
	if err != nil {
		return err
	}
	l.dataplane = dp
	// Up returns once the route's first generation is applied, so that the
	// lab's traffic follows the route from the start.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := l.WaitDataPlane(wctx, func(s DataPlaneState) bool { return s.Generation > 0 }); err != nil {
		return err
	}
	k.ReadyMs = time.Since(start).Milliseconds()
	return l.save()
}

func nodesByZone(ctx context.Context, kc kubernetes.Interface) (map[string][]string, error) {
	nodes, err := kc.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("lab: kubernetes: nodes: %w", err)
	}
	out := map[string][]string{}
	for _, n := range nodes.Items {
		z := n.Labels[corev1.LabelTopologyZone]
		out[z] = append(out[z], n.Name)
	}
	for _, names := range out {
		sort.Strings(names)
	}
	return out, nil
}

// waitAvailable watches Deployment ns/name until its current generation is
// rolled out and its condition Available is True.
func waitAvailable(ctx context.Context, kc kubernetes.Interface, ns, name string, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return kc.AppsV1().Deployments(ns).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return kc.AppsV1().Deployments(ns).Watch(ctx, o)
		},
	}
	var last *appsv1.Deployment
	_, err := watchtools.UntilWithSync(ctx, lw, &appsv1.Deployment{}, nil, func(e watch.Event) (bool, error) {
		d, ok := e.Object.(*appsv1.Deployment)
		if !ok {
			return false, nil
		}
		last = d
		return deploymentAvailable(d), nil
	})
	if err != nil {
		state := "not seen"
		if last != nil {
			state = fmt.Sprintf("%d/%d updated, %d available", last.Status.UpdatedReplicas, deref(last.Spec.Replicas), last.Status.AvailableReplicas)
		}
		return fmt.Errorf("lab: kubernetes: Deployment %s/%s not Available within %s (%s): %w", ns, name, within, state, err)
	}
	return nil
}

func deploymentAvailable(d *appsv1.Deployment) bool {
	if d.Status.ObservedGeneration < d.Generation || d.Status.UpdatedReplicas < deref(d.Spec.Replicas) ||
		d.Status.AvailableReplicas < deref(d.Spec.Replicas) {
		return false
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func deref(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

// downKubernetes stops the data plane and the cluster this process started.
func (l *Lab) downKubernetes() error {
	l.dataplane.stop()
	l.dataplane = nil
	if l.cluster == nil {
		return nil
	}
	err := l.cluster.Stop()
	l.cluster = nil
	return err
}

func (k *KubernetesInfo) down() error {
	if err := kube.StopPIDs(k.PIDs); err != nil {
		return fmt.Errorf("lab: kubernetes: %w", err)
	}
	return nil
}

// checkKubernetes names what the cluster needs and is not built yet.
func checkKubernetes() error {
	if m := kube.Missing(); len(m) > 0 {
		return fmt.Errorf("lab: kubernetes: not built yet in %s: %s (run `drillship lab build`, or `go run . lab build` in the repository)", kube.Dir(), strings.Join(m, ", "))
	}
	return nil
}

func (k *KubernetesInfo) summary() []string {
	var zones []string
	for _, z := range sortedKeys(k.Nodes) {
		zones = append(zones, fmt.Sprintf("%s: %s", z, strings.Join(k.Nodes[z], ", ")))
	}
	return []string{
		fmt.Sprintf("kubernetes %s (pids %v): API %s, kubeconfig %s (admin), up in %.1fs, objects Available in %.1fs",
			kube.KubernetesVersion, k.PIDs, k.Server, k.Kubeconfig, float64(k.StartMs)/1000, float64(k.ReadyMs)/1000),
		fmt.Sprintf("kubernetes nodes (kwok) by zone: %s", strings.Join(zones, "; ")),
		fmt.Sprintf("kubernetes route %s/%s (gateway %s, class drillship-lab): its weights steer the haproxy servers by pod version (data plane in the lab host); Deployment %s/%s at v1",
			k.Namespace, k.Route, KubeGateway, k.Namespace, KubeDeployment),
	}
}

func (k *KubernetesInfo) settings(out map[string]map[string]any) {
	out["kubernetes"] = map[string]any{"kubeconfig": k.Kubeconfig, "namespace": k.Namespace}
	out["gateway-api"] = map[string]any{"kubeconfig": k.Kubeconfig, "namespace": k.Namespace, "route": k.Route}
}
