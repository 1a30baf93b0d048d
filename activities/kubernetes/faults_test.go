package kubernetes

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	kubeclient "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/lab/kube"
)

func TestFaultSettle(t *testing.T) {
	fake := "fake"
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{AnnKwokNode: fake}},
		Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: "other", Effect: corev1.TaintEffectNoSchedule}}}}
	// Two owners take the zone down, one drains the node too.
	joinOwner(n, FaultZoneDown, "drill-a", func(r *record) { r.Zone = "zone-a" })
	r, _ := readRecord(n.Annotations, FaultZoneDown)
	r.Heartbeat = "kwok"
	writeRecord(n.Annotations, FaultZoneDown, r)
	joinOwner(n, FaultZoneDown, "drill-b", func(*record) { t.Fatal("init of an existing record") })
	joinOwner(n, FaultNodeDrain, "drill-c", func(*record) {})
	settle(n)
	if !n.Spec.Unschedulable || len(n.Spec.Taints) != 2 || n.Spec.Taints[1].Key != TaintZoneDown || n.Spec.Taints[1].Value != "zone-a" ||
		n.Annotations[AnnKwokNode] != "" || n.Annotations[AnnFaultOwner] != "drill-a,drill-b,drill-c" || n.Annotations[AnnFaultKind] != "node_drain,zone_down" {
		t.Fatalf("down: %+v %+v", n.Spec, n.Annotations)
	}
	leave := func(kind, owner string) {
		r, _ := readRecord(n.Annotations, kind)
		i := slices.Index(r.Owners, owner)
		r.Owners = slices.Delete(r.Owners, i, i+1)
		writeRecord(n.Annotations, kind, r)
		settle(n)
	}
	leave(FaultZoneDown, "drill-a")
	if len(n.Spec.Taints) != 2 || n.Annotations[AnnFaultOwner] != "drill-b,drill-c" {
		t.Fatalf("drill-b's zone_down was undone by drill-a's stop: %+v %+v", n.Spec, n.Annotations)
	}
	leave(FaultZoneDown, "drill-b")
	if !n.Spec.Unschedulable || len(n.Spec.Taints) != 1 || n.Annotations[AnnKwokNode] != fake {
		t.Fatalf("drained only: %+v %+v", n.Spec, n.Annotations)
	}
	leave(FaultNodeDrain, "drill-c")
	if n.Spec.Unschedulable || len(n.Spec.Taints) != 1 || n.Annotations[AnnKwokNode] != fake || len(n.Annotations) != 1 {
		t.Fatalf("restored: %+v %+v", n.Spec, n.Annotations)
	}
}

// A node a person cordoned before the drain stays cordoned after its stop.
func TestFaultSettleKeepsACordon(t *testing.T) {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{}}, Spec: corev1.NodeSpec{Unschedulable: true}}
	joinOwner(n, FaultNodeDrain, "drill-d", func(*record) {})
	settle(n)
	writeRecord(n.Annotations, FaultNodeDrain, record{})
	settle(n)
	if !n.Spec.Unschedulable || len(n.Annotations) != 0 {
		t.Fatalf("after the stop: %+v %v", n.Spec, n.Annotations)
	}
}

func TestFaultRules(t *testing.T) {
	rules, err := faultRules(map[string]any{"namespace": "web", "kinds": []any{"zone_down", "scale_to_zero"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"deployments get,list,patch in web", "nodes get,list,watch,patch cluster"}
	var got []string
	for _, r := range rules {
		where := "in " + r.Namespace
		if r.Cluster {
			where = "cluster"
		}
		got = append(got, r.Resources[0]+" "+strings.Join(r.Verbs, ",")+" "+where)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("rules = %v, want %v", got, want)
	}
	if _, err := faultRules(map[string]any{"kinds": []any{"region_down"}}); err == nil {
		t.Fatal("an unknown kind was accepted")
	}
	f, _ := NewFaults(map[string]any{"kinds": []any{"pod_kill"}})
	if _, err := f.Inject(context.Background(), activities.Fault{Kind: FaultZoneDown, Owner: "d"}); err == nil || !activities.IsPermanent(err) {
		t.Fatalf("a kind outside config.kinds: %v", err)
	}
	if len(declareFaults().Faults) != len(faultKinds) {
		t.Fatal("every kind is declared")
	}
}

// A kind the settings cannot inject was never injected through them: its
// Stop finds nothing (no error, no API call), so a drill whose inject was
// refused does not end asking for a check by hand. validate knows the same
// kinds.
func TestFaultStopOfAKindNotInKinds(t *testing.T) {
	f, err := NewFaults(map[string]any{"kinds": []any{"pod_kill"}, "kubeconfig": "/nonexistent/kubeconfig"})
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{FaultZoneDown, "region_down"} {
		res, err := f.Stop(context.Background(), activities.Fault{Kind: kind, Params: map[string]string{"zone": "zone-a"}, Owner: "d"}, "")
		if err != nil || !res.NotFound || len(res.Stopped) != 0 || res.NotOurs != "" {
			t.Errorf("stop %s = %+v, %v; want NotFound", kind, res, err)
		}
	}
	for _, tc := range []struct {
		kinds any
		want  []string // nil: all
	}{
		{nil, nil},
		{[]any{}, nil},
		{[]any{"zone_down", "pod_kill", "zone_down"}, []string{"pod_kill", "zone_down"}},
		{[]string{"scale_to_zero"}, []string{"scale_to_zero"}},
		{[]any{"region_down"}, nil}, // refused by the settings check instead
		{"pod_kill", nil},
	} {
		got, where := allowedKinds(map[string]any{"kinds": tc.kinds})
		if !slices.Equal(got, tc.want) || (got != nil && where != "config.kinds") {
			t.Errorf("allowedKinds(%v) = %v %q, want %v", tc.kinds, got, where, tc.want)
		}
	}
}

// faultLab is one control plane for all the fault subtests.
type faultLab struct {
	c    *kube.Cluster
	kube kubeclient.Interface
	f    *Faults
	last string // what the last wait saw, for its timeout's message
}

func TestFaultsOnCluster(t *testing.T) {
	c := kube.StartTest(t)
	l := &faultLab{c: c, kube: c.Client()}
	ctx := context.Background()
	if _, err := l.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "web"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f, err := NewFaults(map[string]any{"kubeconfig": c.Kubeconfig, "namespace": "web"})
	if err != nil {
		t.Fatal(err)
	}
	l.f = f
	l.deployment(t, "web", 4, nil)
	l.deployment(t, "cache", 2, nil)
	l.waitPods(t, "app=web", "4 web pods Ready", func(ps []*corev1.Pod) bool { return countReady(ps) == 4 })
	t.Run("NothingToTarget", l.nothingToTarget)
	t.Run("PodKill", l.podKill)
	t.Run("ScaleToZero", l.scaleToZero)
	t.Run("ZoneDownTwoOwners", l.zoneDown)
	t.Run("NodeDrainBlockedByPDB", l.nodeDrain)
	t.Run("PreflightMissingVerb", l.preflight)
	t.Run("ExactRules", l.exactRules)
}

func (l *faultLab) deployment(t *testing.T, name string, replicas int32, nodeSelector map[string]string) {
	t.Helper()
	zero := int64(0)
	lbl := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "web", Labels: lbl},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: lbl},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: lbl},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: &zero,
					NodeSelector:                  nodeSelector,
					TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: LabelZone,
						WhenUnsatisfiable: corev1.ScheduleAnyway, LabelSelector: &metav1.LabelSelector{MatchLabels: lbl}}},
					Containers: []corev1.Container{{Name: name, Image: "lab.drillship.dev/" + name + ":v1"}},
				},
			},
		},
	}
	if _, err := l.kube.AppsV1().Deployments("web").Create(context.Background(), d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func countReady(ps []*corev1.Pod) int {
	n := 0
	for _, p := range ps {
		if p.DeletionTimestamp == nil && podReady(p) {
			n++
		}
	}
	return n
}

// waitPods watches the pods of selector until cond holds for them.
func (l *faultLab) waitPods(t *testing.T, selector, what string, cond func([]*corev1.Pod) bool) []*corev1.Pod {
	t.Helper()
	lw := cache.NewFilteredListWatchFromClient(l.kube.CoreV1().RESTClient(), "pods", "web", func(o *metav1.ListOptions) { o.LabelSelector = selector })
	var out []*corev1.Pod
	l.until(t, lw, &corev1.Pod{}, what, func(s cache.Store) bool {
		out = out[:0]
		var seen []string
		for _, o := range s.List() {
			p := o.(*corev1.Pod)
			out = append(out, p)
			seen = append(seen, fmt.Sprintf("%s on %q %s ready=%v deleting=%v", p.Name, p.Spec.NodeName, p.Status.Phase, podReady(p), p.DeletionTimestamp != nil))
		}
		l.last = strings.Join(seen, "; ")
		return cond(out)
	})
	return out
}

// waitNodes watches the nodes until cond holds for them.
func (l *faultLab) waitNodes(t *testing.T, what string, cond func(map[string]*corev1.Node) bool) {
	t.Helper()
	lw := cache.NewListWatchFromClient(l.kube.CoreV1().RESTClient(), "nodes", "", fields.Everything())
	l.until(t, lw, &corev1.Node{}, what, func(s cache.Store) bool {
		m := map[string]*corev1.Node{}
		for _, o := range s.List() {
			m[o.(*corev1.Node).Name] = o.(*corev1.Node)
		}
		return cond(m)
	})
}

func (l *faultLab) until(t *testing.T, lw cache.ListerWatcher, obj runtime.Object, what string, cond func(cache.Store) bool) {
	t.Helper()
	inf := cache.NewSharedIndexInformer(lw, obj, 0, cache.Indexers{})
	changed := make(chan struct{}, 1)
	poke := func(any) {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: poke, UpdateFunc: func(_, o any) { poke(o) }, DeleteFunc: poke})
	stop := make(chan struct{})
	defer close(stop)
	go inf.Run(stop)
	// The initial list's events can all be handled before HasSynced turns
	// true: wait for the sync, then judge on every change.
	if !cache.WaitForCacheSync(stop, inf.HasSynced) {
		t.Fatalf("%s: the informer did not sync", what)
	}
	timeout := time.After(90 * time.Second)
	for {
		if cond(inf.GetStore()) {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("timed out waiting for %s; last seen: %s", what, l.last)
		}
	}
}

func (l *faultLab) podKill(t *testing.T) {
	ctx := context.Background()
	before := l.waitPods(t, "app=web", "4 web pods Ready", func(ps []*corev1.Pod) bool { return countReady(ps) == 4 })
	uids := map[string]bool{}
	for _, p := range before {
		uids[string(p.UID)] = true
	}
	ft := activities.Fault{Kind: FaultPodKill, Params: map[string]string{"selector": "app=web", "percent": "50"}, Owner: "drill-kill"}
	h, err := l.f.Inject(ctx, ft)
	if err != nil {
		t.Fatal(err)
	}
	// Two of the four are gone and replaced; the other two are untouched.
	after := l.waitPods(t, "app=web", "2 killed web pods replaced", func(ps []*corev1.Pod) bool {
		old := 0
		for _, p := range ps {
			if uids[string(p.UID)] {
				old++
			}
		}
		return old == 2 && countReady(ps) == 4 && len(ps) == 4
	})
	// A retried inject finds its record and kills nothing more.
	h2, err := l.f.Inject(ctx, ft)
	if err != nil || h2 != h {
		t.Fatalf("retried inject = %q, %v; want %q", h2, err, h)
	}
	for _, p := range after {
		if _, err := l.kube.CoreV1().Pods("web").Get(ctx, p.Name, metav1.GetOptions{}); err != nil {
			t.Fatalf("the retried inject deleted %s: %v", p.Name, err)
		}
	}
	// Another drill's stop leaves it alone; the owner's stop, handle lost, finds it.
	other, err := l.f.Stop(ctx, activities.Fault{Kind: FaultPodKill, Params: ft.Params, Owner: "drill-other"}, h)
	if err != nil || other.NotOurs != h+" belongs to drill-kill" || !other.NotFound {
		t.Fatalf("other owner's stop = %+v, %v", other, err)
	}
	res, err := l.f.Stop(ctx, ft, "")
	if err != nil || len(res.Stopped) != 1 || res.Stopped[0] != h || res.NotFound {
		t.Fatalf("stop = %+v, %v; want %s stopped", res, err, h)
	}
}

// nothingToTarget: a zone no node is in and a selector no pod matches are
// refused, permanently and before anything changed, naming what there is;
// the restore's Stop then finds nothing, without an error.
func (l *faultLab) nothingToTarget(t *testing.T) {
	ctx := context.Background()
	before := l.snapshot(t)
	for _, tc := range []struct {
		ft   activities.Fault
		want string
	}{
		{activities.Fault{Kind: FaultZoneDown, Params: map[string]string{"zone": "zone-c", "heartbeat": "kwok"}, Owner: "drill-none"},
			"kubernetes: zone_down: no node has topology.kubernetes.io/zone=zone-c (zones: zone-a, zone-b)"},
		{activities.Fault{Kind: FaultPodKill, Params: map[string]string{"selector": "app=wbe"}, Owner: "drill-none"},
			"kubernetes: pod_kill: no pod matches app=wbe in web"},
	} {
		h, err := l.f.Inject(ctx, tc.ft)
		if h != "" || err == nil || !activities.IsPermanent(err) || err.Error() != tc.want {
			t.Fatalf("inject %s = %q, %v; want a permanent %q", tc.ft.Kind, h, err, tc.want)
		}
		res, err := l.f.Stop(ctx, tc.ft, "")
		if err != nil || !res.NotFound || len(res.Stopped) != 0 {
			t.Fatalf("stop %s after the refused inject = %+v, %v; want NotFound", tc.ft.Kind, res, err)
		}
	}
	if after := l.snapshot(t); after != before {
		t.Fatalf("the refused injects changed the cluster:\nbefore %s\nafter  %s", before, after)
	}
}

// snapshot is what a fault could change: nodes' spec and annotations, the
// web namespace's pods and ConfigMaps.
func (l *faultLab) snapshot(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	nodes, err := l.kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes.Items {
		var ours []corev1.Taint
		for _, x := range n.Spec.Taints {
			if x.Key == TaintZoneDown {
				ours = append(ours, x)
			}
		}
		// Only the annotations a fault writes: controllers add their own.
		ann := map[string]string{}
		for k, v := range n.Annotations {
			if strings.Contains(k, "drillship.dev") || k == AnnKwokNode {
				ann[k] = v
			}
		}
		fmt.Fprintf(&b, "node %s unschedulable=%v taints=%v annotations=%v; ", n.Name, n.Spec.Unschedulable, ours, ann)
	}
	pods, err := l.kube.CoreV1().Pods("web").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		fmt.Fprintf(&b, "pod %s/%s; ", p.Name, p.UID)
	}
	cms, err := l.kube.CoreV1().ConfigMaps("web").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cms.Items {
		fmt.Fprintf(&b, "configmap %s; ", c.Name)
	}
	return b.String()
}

func (l *faultLab) scaleToZero(t *testing.T) {
	ctx := context.Background()
	ft := activities.Fault{Kind: FaultScaleToZero, Params: map[string]string{"deployment": "cache"}, Owner: "drill-dep"}
	h, err := l.f.Inject(ctx, ft)
	if err != nil {
		t.Fatal(err)
	}
	l.waitPods(t, "app=cache", "no cache pods", func(ps []*corev1.Pod) bool { return len(ps) == 0 })
	d, _ := l.kube.AppsV1().Deployments("web").Get(ctx, "cache", metav1.GetOptions{})
	if *d.Spec.Replicas != 0 || d.Annotations[AnnFaultOwner] != "drill-dep" || d.Annotations[AnnFaultKind] != FaultScaleToZero {
		t.Fatalf("cache: replicas %d, annotations %v", *d.Spec.Replicas, d.Annotations)
	}
	if h2, err := l.f.Inject(ctx, ft); err != nil || h2 != h {
		t.Fatalf("retried inject = %q, %v", h2, err)
	}
	res, err := l.f.Stop(ctx, ft, h)
	if err != nil || len(res.Stopped) != 1 {
		t.Fatalf("stop = %+v, %v", res, err)
	}
	d, _ = l.kube.AppsV1().Deployments("web").Get(ctx, "cache", metav1.GetOptions{})
	if *d.Spec.Replicas != 2 || d.Annotations[AnnFaultOwner] != "" || d.Annotations[annRecord+FaultScaleToZero] != "" {
		t.Fatalf("cache after stop: replicas %d, annotations %v", *d.Spec.Replicas, d.Annotations)
	}
	l.waitPods(t, "app=cache", "2 cache pods Ready", func(ps []*corev1.Pod) bool { return countReady(ps) == 2 })
	// A second stop finds nothing left: the fault was already over.
	if res, err := l.f.Stop(ctx, ft, h); err != nil || !res.NotFound {
		t.Fatalf("second stop = %+v, %v", res, err)
	}
}

func (l *faultLab) zoneDown(t *testing.T) {
	ctx := context.Background()
	a := activities.Fault{Kind: FaultZoneDown, Params: map[string]string{"zone": "zone-a", "heartbeat": "kwok"}, Owner: "drill-a"}
	b := activities.Fault{Kind: FaultZoneDown, Params: map[string]string{"zone": "zone-a"}, Owner: "drill-b"}
	inZoneA := 0
	for _, p := range l.waitPods(t, "app=web", "4 web pods Ready", func(ps []*corev1.Pod) bool { return countReady(ps) == 4 }) {
		if strings.HasPrefix(p.Spec.NodeName, "zone-a") {
			inZoneA++
		}
	}
	start := time.Now()
	ha, err := l.f.Inject(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	down := func(what string) {
		l.waitNodes(t, what, func(m map[string]*corev1.Node) bool {
			for _, name := range kube.Nodes["zone-a"] {
				n := m[name]
				if n == nil || !n.Spec.Unschedulable || nodeReady(n) || n.Annotations[AnnKwokNode] != "" || !hasTaint(n, TaintZoneDown) {
					if n != nil {
						l.last = fmt.Sprintf("%s: unschedulable=%v ready=%v annotations=%v taints=%v conditions=%v", name, n.Spec.Unschedulable, nodeReady(n), n.Annotations, n.Spec.Taints, n.Status.Conditions)
					}
					return false
				}
			}
			return true
		})
	}
	l.waitPods(t, "app=web", "4 web pods Ready in zone-b", func(ps []*corev1.Pod) bool {
		for _, p := range ps {
			if strings.HasPrefix(p.Spec.NodeName, "zone-a") {
				return false
			}
		}
		return countReady(ps) == 4
	})
	t.Logf("web back to 4 Ready pods, all in zone-b (%d were in zone-a), %s after the inject", inZoneA, time.Since(start).Round(time.Millisecond))
	down("zone-a cordoned, tainted and NotReady")
	t.Logf("zone-a NotReady %s after the inject", time.Since(start).Round(time.Millisecond))
	// A retried inject of the same owner changes nothing of what the fault
	// wrote (the node controller adds its own taints meanwhile).
	ours := func(n *corev1.Node) string {
		var ts []corev1.Taint
		for _, x := range n.Spec.Taints {
			if x.Key == TaintZoneDown {
				ts = append(ts, x)
			}
		}
		return fmt.Sprint(n.Annotations, ts, n.Spec.Unschedulable)
	}
	rv := map[string]string{}
	for _, name := range kube.Nodes["zone-a"] {
		n, _ := l.kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		rv[name] = ours(n)
	}
	if h, err := l.f.Inject(ctx, a); err != nil || h != ha {
		t.Fatalf("retried inject = %q, %v", h, err)
	}
	for _, name := range kube.Nodes["zone-a"] {
		n, _ := l.kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if got := ours(n); got != rv[name] {
			t.Fatalf("%s changed by a retried inject: %s -> %s", name, rv[name], got)
		}
	}
	hb, err := l.f.Inject(ctx, b)
	if err != nil || hb != ha {
		t.Fatalf("second owner's inject = %q, %v", hb, err)
	}
	// drill-a stops: drill-b still holds the zone down.
	res, err := l.f.Stop(ctx, a, ha)
	if err != nil || len(res.Stopped) != 1 || res.Stopped[0] != ha {
		t.Fatalf("drill-a stop = %+v, %v", res, err)
	}
	for _, name := range kube.Nodes["zone-a"] {
		n, _ := l.kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if !n.Spec.Unschedulable || !hasTaint(n, TaintZoneDown) || n.Annotations[AnnKwokNode] != "" || n.Annotations[AnnFaultOwner] != "drill-b" {
			t.Fatalf("%s after drill-a's stop: drill-b's zone_down undone: %+v %v", name, n.Spec, n.Annotations)
		}
	}
	// A third drill naming the zone's handle gets told whose it is.
	res, err = l.f.Stop(ctx, activities.Fault{Kind: FaultZoneDown, Params: map[string]string{"zone": "zone-a"}, Owner: "drill-c"}, ha)
	if err != nil || res.NotOurs != ha+" belongs to drill-b" || !res.NotFound {
		t.Fatalf("drill-c stop = %+v, %v", res, err)
	}
	// drill-b stops with its handle lost: found by its record, and the zone
	// comes back exactly as it was; Stop returns once the nodes are Ready.
	start = time.Now()
	res, err = l.f.Stop(ctx, b, "")
	if err != nil || len(res.Stopped) != 1 || res.Stopped[0] != ha {
		t.Fatalf("drill-b stop = %+v, %v", res, err)
	}
	t.Logf("zone-a restored and Ready %s after drill-b's stop began", time.Since(start).Round(time.Millisecond))
	for _, name := range kube.Nodes["zone-a"] {
		n, _ := l.kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if n.Spec.Unschedulable || hasTaint(n, TaintZoneDown) || n.Annotations[AnnKwokNode] != kube.KwokAnnotationFake || !nodeReady(n) {
			t.Fatalf("%s after the last stop: %+v %v ready=%v", name, n.Spec, n.Annotations, nodeReady(n))
		}
		for k := range n.Annotations {
			if strings.Contains(k, "drillship.dev") {
				t.Fatalf("%s keeps %s", name, k)
			}
		}
	}
}

func hasTaint(n *corev1.Node, key string) bool {
	for _, t := range n.Spec.Taints {
		if t.Key == key {
			return true
		}
	}
	return false
}

func (l *faultLab) nodeDrain(t *testing.T) {
	ctx := context.Background()
	const node = "zone-b-1"
	// solo: one pod on the node, a budget that allows no disruption.
	// loose: one pod on the node, no budget.
	pin := map[string]string{"kubernetes.io/hostname": node}
	l.deployment(t, "solo", 1, pin)
	l.deployment(t, "loose", 1, pin)
	one := intstr.FromInt32(1)
	if _, err := l.kube.PolicyV1().PodDisruptionBudgets("web").Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "solo"},
		Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "solo"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	solo := l.waitPods(t, "app=solo", "solo Ready", func(ps []*corev1.Pod) bool { return countReady(ps) == 1 })[0].Name
	loose := l.waitPods(t, "app=loose", "loose Ready", func(ps []*corev1.Pod) bool { return countReady(ps) == 1 })[0].Name
	// The budget controller must have counted solo's pod before the drain.
	l.until(t, cache.NewListWatchFromClient(l.kube.PolicyV1().RESTClient(), "poddisruptionbudgets", "web", fields.Everything()),
		&policyv1.PodDisruptionBudget{}, "PDB solo observed", func(s cache.Store) bool {
			o, ok, _ := s.GetByKey("web/solo")
			return ok && o.(*policyv1.PodDisruptionBudget).Status.CurrentHealthy == 1
		})
	ft := activities.Fault{Kind: FaultNodeDrain, Params: map[string]string{"node": node}, Owner: "drill-drain"}
	h, err := l.f.Inject(ctx, ft)
	if h != "node_drain/"+node || err == nil || activities.IsPermanent(err) ||
		!strings.Contains(err.Error(), "web/"+solo+" (PDB solo: 0 disruptions allowed)") || strings.Contains(err.Error(), loose) {
		t.Fatalf("drain = %q, %v; want the handle and a retryable error naming %s and PDB solo", h, err, solo)
	}
	t.Logf("drain: %v", err)
	n, _ := l.kube.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if !n.Spec.Unschedulable || n.Annotations[AnnFaultOwner] != "drill-drain" {
		t.Fatalf("%s not cordoned by drill-drain: %+v %v", node, n.Spec, n.Annotations)
	}
	if _, err := l.kube.CoreV1().Pods("web").Get(ctx, loose, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("pod %s without a budget was not evicted: %v", loose, err)
	}
	if _, err := l.kube.CoreV1().Pods("web").Get(ctx, solo, metav1.GetOptions{}); err != nil {
		t.Fatalf("pod %s under its budget: %v", solo, err)
	}
	res, err := l.f.Stop(ctx, ft, h)
	if err != nil || len(res.Stopped) != 1 || res.Stopped[0] != h {
		t.Fatalf("stop = %+v, %v", res, err)
	}
	n, _ = l.kube.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if n.Spec.Unschedulable || n.Annotations[AnnFaultOwner] != "" {
		t.Fatalf("%s after stop: %+v %v", node, n.Spec, n.Annotations)
	}
	l.waitPods(t, "app=loose", "loose back on "+node, func(ps []*corev1.Pod) bool { return countReady(ps) == 1 })
}

// preflight runs the faults' preflight as a service account granted the
// rules of zone_down but for patch on nodes.
func (l *faultLab) preflight(t *testing.T) {
	ctx := context.Background()
	kc, err := l.c.ServiceAccountKubeconfig(ctx, "web", "drills")
	if err != nil {
		t.Fatal(err)
	}
	cfg := map[string]any{"kubeconfig": kc, "namespace": "web", "kinds": []any{FaultZoneDown, FaultScaleToZero}}
	rules, err := faultRules(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var cluster, ns []rbacv1.PolicyRule
	for _, r := range rules {
		var verbs []string
		for _, v := range r.Verbs {
			if !(r.Cluster && r.Resources[0] == "nodes" && v == "patch") {
				verbs = append(verbs, v)
			}
		}
		pr := rbacv1.PolicyRule{APIGroups: r.APIGroups, Resources: r.Resources, Verbs: verbs, ResourceNames: r.ResourceNames}
		if r.Cluster {
			cluster = append(cluster, pr)
		} else {
			ns = append(ns, pr)
		}
	}
	sub := []rbacv1.Subject{{Kind: "ServiceAccount", Name: "drills", Namespace: "web"}}
	rb := l.kube.RbacV1()
	if _, err := rb.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "drills"}, Rules: cluster}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rb.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "drills"}, Subjects: sub,
		RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "drills"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rb.Roles("web").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "drills"}, Rules: ns}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rb.RoleBindings("web").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "drills"}, Subjects: sub,
		RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "drills"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f, err := NewFaults(cfg)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := f.Preflight(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var refused []string
	for _, x := range fs {
		if !x.OK {
			if !x.Refuse || x.Check != "rbac" {
				t.Errorf("finding %+v", x)
			}
			refused = append(refused, x.Detail)
		}
	}
	if want := []string{"the worker may not patch nodes (cluster-wide)"}; !slices.Equal(refused, want) {
		t.Fatalf("refused = %q, want %q (all findings %+v)", refused, want, fs)
	}
	// And the inject itself is refused by the API server for that verb.
	_, err = f.Inject(ctx, activities.Fault{Kind: FaultZoneDown, Params: map[string]string{"zone": "zone-b"}, Owner: "drill-rbac"})
	if err == nil || !activities.IsPermanent(err) || !strings.Contains(err.Error(), "forbidden") {
		t.Fatalf("inject without patch nodes = %v", err)
	}
	t.Logf("preflight refused: %s", refused[0])
}

// exactRules runs every kind, injected and stopped, as a service account
// holding exactly faultRules' grants: the rules are all the faults need.
func (l *faultLab) exactRules(t *testing.T) {
	ctx := context.Background()
	kc, err := l.c.ServiceAccountKubeconfig(ctx, "web", "drills-all")
	if err != nil {
		t.Fatal(err)
	}
	cfg := map[string]any{"kubeconfig": kc, "namespace": "web"}
	rules, err := faultRules(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var cluster, ns []rbacv1.PolicyRule
	for _, r := range rules {
		pr := rbacv1.PolicyRule{APIGroups: r.APIGroups, Resources: r.Resources, Verbs: r.Verbs, ResourceNames: r.ResourceNames}
		if r.Cluster {
			cluster = append(cluster, pr)
		} else {
			ns = append(ns, pr)
		}
	}
	sub := []rbacv1.Subject{{Kind: "ServiceAccount", Name: "drills-all", Namespace: "web"}}
	rb := l.kube.RbacV1()
	if _, err := rb.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "drills-all"}, Rules: cluster}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rb.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "drills-all"}, Subjects: sub,
		RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "drills-all"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rb.Roles("web").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "drills-all"}, Rules: ns}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rb.RoleBindings("web").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "drills-all"}, Subjects: sub,
		RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "drills-all"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f, err := NewFaults(cfg)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := f.Preflight(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range fs {
		if !x.OK {
			t.Fatalf("preflight with exactly the rules: %+v", x)
		}
	}
	for _, ft := range []activities.Fault{
		{Kind: FaultPodKill, Params: map[string]string{"selector": "app=cache", "count": "1"}},
		{Kind: FaultScaleToZero, Params: map[string]string{"deployment": "cache"}},
		{Kind: FaultZoneDown, Params: map[string]string{"zone": "zone-b"}},
		{Kind: FaultNodeDrain, Params: map[string]string{"node": "zone-a-1"}},
	} {
		ft.Owner = "drill-exact"
		h, err := f.Inject(ctx, ft)
		if err != nil {
			t.Fatalf("%s as the service account: %v", ft.Kind, err)
		}
		res, err := f.Stop(ctx, ft, "")
		if err != nil || len(res.Stopped) != 1 || res.Stopped[0] != h {
			t.Fatalf("stop %s as the service account = %+v, %v", ft.Kind, res, err)
		}
	}
	nodes, err := l.kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes.Items {
		if n.Spec.Unschedulable || hasTaint(&n, TaintZoneDown) || n.Annotations[AnnFaultOwner] != "" {
			t.Fatalf("%s left changed: %+v %v", n.Name, n.Spec, n.Annotations)
		}
	}
}
