package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	kretry "k8s.io/client-go/util/retry"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"
	gwinformers "sigs.k8s.io/gateway-api/pkg/client/informers/externalversions"
	gwlisters "sigs.k8s.io/gateway-api/pkg/client/listers/apis/v1"
)

// The lab's data plane. No Gateway API implementation runs here, so the lab
// host follows HTTPRoute `web` itself: each backendRef's weight is split over
// the Ready pods of its Service by their version label, and the result
// becomes the weights of the lab HAProxy's servers (one per version, each a
// sample service in the lab host). Then it reports the route's generation as
// accepted in status.parents, which is what the gateway-api traffic provider
// waits for. It is driven by informers only: a change of the route, a
// Service or a pod is applied as it arrives.

// Data-plane names (see the lab's objects in kubernetes.go).
const (
	// DataPlaneController is the GatewayClass controllerName the lab's
	// data plane answers for.
	DataPlaneController = "drillship.dev/lab-data-plane"
	// VersionLabel is the pod label the data plane splits weights by.
	VersionLabel = "drillship.dev/version"
)

// DataPlaneState is what the data plane last applied.
type DataPlaneState struct {
	// Generation of the route whose weights are applied (0: none yet).
	Generation int64
	// Weights are the HAProxy server weights by version.
	Weights map[string]int
	// Ready counts the Ready pods of each backend Service.
	Ready map[string]int
	// Applies counts the syncs that changed HAProxy or the route status.
	Applies int
	At      time.Time
}

type dataPlane struct {
	kube    kubernetes.Interface
	gw      gatewayclient.Interface
	ns      string
	route   string
	gateway string
	haproxy weightSetter
	log     *slog.Logger

	routes gwlisters.HTTPRouteLister
	svcs   corelisters.ServiceLister
	pods   corelisters.PodLister

	kick   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	since   time.Time // arrival of the oldest change not yet applied
	state   DataPlaneState
	changed chan struct{} // closed (and replaced) at each apply
}

func startDataPlane(ctx context.Context, kube kubernetes.Interface, gw gatewayclient.Interface, ns, route, gateway string, h weightSetter, log *slog.Logger) (*dataPlane, error) {
	d := &dataPlane{
		kube: kube, gw: gw, ns: ns, route: route, gateway: gateway, haproxy: h, log: log,
		kick: make(chan struct{}, 1), done: make(chan struct{}), changed: make(chan struct{}),
	}
	kf := informers.NewSharedInformerFactoryWithOptions(kube, 0, informers.WithNamespace(ns))
	gf := gwinformers.NewSharedInformerFactoryWithOptions(gw, 0, gwinformers.WithNamespace(ns),
		gwinformers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = "metadata.name=" + route }))
	ri := gf.Gateway().V1().HTTPRoutes()
	si := kf.Core().V1().Services()
	pi := kf.Core().V1().Pods()
	d.routes, d.svcs, d.pods = ri.Lister(), si.Lister(), pi.Lister()
	h2 := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { d.poke() },
		UpdateFunc: func(any, any) { d.poke() },
		DeleteFunc: func(any) { d.poke() },
	}
	for _, inf := range []cache.SharedIndexInformer{ri.Informer(), si.Informer(), pi.Informer()} {
		if _, err := inf.AddEventHandler(h2); err != nil {
			return nil, fmt.Errorf("lab: data plane: %w", err)
		}
	}
	runCtx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	kf.Start(runCtx.Done())
	gf.Start(runCtx.Done())
	synced := func() bool {
		for _, ok := range kf.WaitForCacheSync(ctx.Done()) {
			if !ok {
				return false
			}
		}
		for _, ok := range gf.WaitForCacheSync(ctx.Done()) {
			if !ok {
				return false
			}
		}
		return true
	}
	if !synced() {
		cancel()
		kf.Shutdown()
		gf.Shutdown()
		return nil, fmt.Errorf("lab: data plane: informers did not sync: %w", ctx.Err())
	}
	go func() {
		defer close(d.done)
		defer gf.Shutdown()
		defer kf.Shutdown()
		d.run(runCtx)
	}()
	d.poke()
	return d, nil
}

// poke asks for a sync; changes arriving before it runs are applied together.
func (d *dataPlane) poke() {
	d.mu.Lock()
	if d.since.IsZero() {
		d.since = time.Now()
	}
	d.mu.Unlock()
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

func (d *dataPlane) stop() {
	if d == nil {
		return
	}
	d.cancel()
	<-d.done
}

func (d *dataPlane) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.kick:
		}
		d.mu.Lock()
		since := d.since
		d.since = time.Time{}
		d.mu.Unlock()
		if err := d.sync(ctx, since); err != nil && ctx.Err() == nil {
			d.log.Warn("lab: data plane: sync failed, retrying", "err", err)
			d.mu.Lock()
			if d.since.IsZero() || since.Before(d.since) {
				d.since = since // the latency counts from the first arrival
			}
			d.mu.Unlock()
			// Nothing else would bring the change back: retry it.
			time.AfterFunc(500*time.Millisecond, d.poke)
		}
	}
}

// split is what a route asks of the data plane at one moment.
type split struct {
	weights  map[string]float64 // by version
	ready    map[string]int     // Ready pods by backend Service
	resolved bool
	reason   gwv1.RouteConditionReason
	message  string
	// skipped counts rules with header, query or method matches, which
	// this data plane does not route.
	skipped int
}

// compute splits each backendRef's weight over its Service's Ready pods by
// their version. Rules with header or query matches are left out: HAProxy
// here balances by weight only.
func (d *dataPlane) compute(rt *gwv1.HTTPRoute) split {
	s := split{weights: map[string]float64{}, ready: map[string]int{}, resolved: true, reason: gwv1.RouteReasonResolvedRefs}
	var problems []string
	for _, rule := range rt.Spec.Rules {
		if conditional(rule) {
			s.skipped++
			continue
		}
		for _, ref := range rule.BackendRefs {
			if ref.Group != nil && *ref.Group != "" || ref.Kind != nil && *ref.Kind != "Service" {
				s.resolved, s.reason = false, gwv1.RouteReasonInvalidKind
				problems = append(problems, fmt.Sprintf("backendRef %s is not a Service", ref.Name))
				continue
			}
			if ref.Namespace != nil && string(*ref.Namespace) != rt.Namespace {
				s.resolved, s.reason = false, gwv1.RouteReasonRefNotPermitted
				problems = append(problems, fmt.Sprintf("backendRef %s/%s is in another namespace", *ref.Namespace, ref.Name))
				continue
			}
			w := 1.0 // the API's default weight
			if ref.Weight != nil {
				w = float64(*ref.Weight)
			}
			svc, err := d.svcs.Services(rt.Namespace).Get(string(ref.Name))
			if err != nil {
				s.resolved, s.reason = false, gwv1.RouteReasonBackendNotFound
				problems = append(problems, fmt.Sprintf("Service %s not found", ref.Name))
				continue
			}
			pods := d.readyPods(svc)
			s.ready[svc.Name] = len(pods)
			if w == 0 || len(pods) == 0 {
				continue // a backend without Ready pods gets nothing
			}
			for _, p := range pods {
				s.weights[p.Labels[VersionLabel]] += w / float64(len(pods))
			}
		}
	}
	if len(problems) > 0 {
		s.message = strings.Join(problems, "; ")
	} else {
		s.message = "all backendRefs are Services of this namespace"
	}
	return s
}

func conditional(r gwv1.HTTPRouteRule) bool {
	for _, m := range r.Matches {
		if len(m.Headers) > 0 || len(m.QueryParams) > 0 || m.Method != nil {
			return true
		}
	}
	return false
}

func (d *dataPlane) readyPods(svc *corev1.Service) []*corev1.Pod {
	if len(svc.Spec.Selector) == 0 {
		return nil // a Service without selector has no pods of its own
	}
	pods, err := d.pods.Pods(svc.Namespace).List(labels.SelectorFromSet(svc.Spec.Selector))
	if err != nil {
		return nil
	}
	var out []*corev1.Pod
	for _, p := range pods {
		if p.DeletionTimestamp == nil && podReady(p) {
			out = append(out, p)
		}
	}
	return out
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// serverWeights turns version shares into HAProxy weights: route weights
// as they are while they fit HAProxy's 0..256, scaled down when they do not;
// a positive share never rounds to nothing. Versions the lab does not run
// are returned apart.
func serverWeights(shares map[string]float64, versions []string) (map[string]int, []string) {
	max := 0.0
	for _, w := range shares {
		max = math.Max(max, w)
	}
	scale := 1.0
	if max > maxServerWeight {
		scale = maxServerWeight / max
	}
	out := map[string]int{}
	for _, v := range versions {
		w := shares[v] * scale
		n := int(math.Round(w))
		if n == 0 && w > 0 {
			n = 1
		}
		out[v] = n
	}
	var unknown []string
	for v, w := range shares {
		if _, ok := out[v]; !ok && w > 0 {
			unknown = append(unknown, v)
		}
	}
	sort.Strings(unknown)
	return out, unknown
}

const maxServerWeight = 256

func (d *dataPlane) sync(ctx context.Context, since time.Time) error {
	rt, err := d.routes.HTTPRoutes(d.ns).Get(d.route)
	var s split
	var gen int64
	switch {
	case apierrors.IsNotFound(err):
		// No route: nothing is routed anywhere.
		s = split{weights: map[string]float64{}, ready: map[string]int{}}
	case err != nil:
		return err
	default:
		s, gen = d.compute(rt), rt.Generation
	}
	weights, unknown := serverWeights(s.weights, d.haproxy.versions())
	if len(unknown) > 0 {
		d.log.Warn("lab: data plane: pods of versions the lab does not run get no traffic", "versions", unknown)
	}
	changedHAProxy, err := d.haproxy.set(ctx, weights)
	if err != nil {
		return err
	}
	changedStatus := false
	if rt != nil {
		if changedStatus, err = d.writeStatus(ctx, rt, s); err != nil {
			return err
		}
	}
	d.mu.Lock()
	prev := d.state
	d.state = DataPlaneState{Generation: gen, Weights: weights, Ready: s.ready, Applies: prev.Applies, At: time.Now()}
	if changedHAProxy || changedStatus {
		d.state.Applies++
	}
	close(d.changed)
	d.changed = make(chan struct{})
	st := d.state
	d.mu.Unlock()
	if changedHAProxy || changedStatus || gen != prev.Generation {
		d.log.Info("lab: data plane applied",
			"route", d.ns+"/"+d.route, "generation", gen, "weights", formatWeights(weights), "ready", s.ready,
			"latency", st.At.Sub(since).Round(time.Microsecond).String())
	}
	return nil
}

func formatWeights(w map[string]int) string {
	var parts []string
	for _, v := range sortedKeys(w) {
		parts = append(parts, fmt.Sprintf("%s=%d", v, w[v]))
	}
	return strings.Join(parts, " ")
}

// writeStatus records in the route's status.parents entry for the lab's
// Gateway that this controller applied the route's generation; it writes
// only when that entry would change.
func (d *dataPlane) writeStatus(ctx context.Context, rt *gwv1.HTTPRoute, s split) (bool, error) {
	if !d.wantsStatus(rt, rt, s) {
		return false, nil
	}
	err := kretry.RetryOnConflict(kretry.DefaultRetry, func() error {
		cur, err := d.gw.GatewayV1().HTTPRoutes(rt.Namespace).Get(ctx, rt.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.Generation != rt.Generation {
			// The route moved on; its own event brings the next sync.
			return nil
		}
		if !d.wantsStatus(cur, rt, s) {
			return nil
		}
		cur = cur.DeepCopy()
		d.setParent(cur, s)
		_, err = d.gw.GatewayV1().HTTPRoutes(cur.Namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{FieldManager: "drillship-lab-data-plane"})
		return err
	})
	if err != nil {
		return false, fmt.Errorf("lab: data plane: route status: %w", err)
	}
	return true, nil
}

// wantsStatus reports whether cur's status lacks what applying rt gave.
func (d *dataPlane) wantsStatus(cur, rt *gwv1.HTTPRoute, s split) bool {
	want := cur.DeepCopy()
	d.setParent(want, s)
	p := d.parentIndex(cur)
	if p < 0 {
		return true
	}
	have, next := cur.Status.Parents[p], want.Status.Parents[d.parentIndex(want)]
	for _, c := range next.Conditions {
		h := meta.FindStatusCondition(have.Conditions, c.Type)
		if h == nil || h.Status != c.Status || h.Reason != c.Reason || h.Message != c.Message || h.ObservedGeneration != rt.Generation {
			return true
		}
	}
	return false
}

func (d *dataPlane) parentIndex(rt *gwv1.HTTPRoute) int {
	for i, p := range rt.Status.Parents {
		if string(p.ControllerName) == DataPlaneController && string(p.ParentRef.Name) == d.gateway {
			return i
		}
	}
	return -1
}

func (d *dataPlane) setParent(rt *gwv1.HTTPRoute, s split) {
	i := d.parentIndex(rt)
	if i < 0 {
		rt.Status.Parents = append(rt.Status.Parents, gwv1.RouteParentStatus{
			ParentRef:      gwv1.ParentReference{Name: gwv1.ObjectName(d.gateway)},
			ControllerName: DataPlaneController,
		})
		i = len(rt.Status.Parents) - 1
	}
	p := &rt.Status.Parents[i]
	msg := "weights applied to the lab HAProxy"
	if s.skipped > 0 {
		msg += fmt.Sprintf(" (%d rule(s) with header, query or method matches not routed: the lab HAProxy balances by weight only)", s.skipped)
	}
	meta.SetStatusCondition(&p.Conditions, metav1.Condition{
		Type: string(gwv1.RouteConditionAccepted), Status: metav1.ConditionTrue, Reason: string(gwv1.RouteReasonAccepted),
		Message: msg, ObservedGeneration: rt.Generation,
	})
	resolved := metav1.ConditionTrue
	if !s.resolved {
		resolved = metav1.ConditionFalse
	}
	meta.SetStatusCondition(&p.Conditions, metav1.Condition{
		Type: string(gwv1.RouteConditionResolvedRefs), Status: resolved, Reason: string(s.reason),
		Message: s.message, ObservedGeneration: rt.Generation,
	})
}

// acceptGateway reports, once at start, that the lab's data plane serves
// GatewayClass class and Gateway ns/name at addr (the HAProxy frontend's
// IP), as a Gateway controller would: kubectl and preflights then see
// them Accepted and Programmed rather than waiting for a controller.
func acceptGateway(ctx context.Context, gw gatewayclient.Interface, class, ns, name, addr string) error {
	err := kretry.RetryOnConflict(kretry.DefaultRetry, func() error {
		gc, err := gw.GatewayV1().GatewayClasses().Get(ctx, class, metav1.GetOptions{})
		if err != nil {
			return err
		}
		meta.SetStatusCondition(&gc.Status.Conditions, metav1.Condition{
			Type: string(gwv1.GatewayClassConditionStatusAccepted), Status: metav1.ConditionTrue,
			Reason: string(gwv1.GatewayClassReasonAccepted), Message: "served by the drillship lab's data plane", ObservedGeneration: gc.Generation,
		})
		_, err = gw.GatewayV1().GatewayClasses().UpdateStatus(ctx, gc, metav1.UpdateOptions{FieldManager: "drillship-lab-data-plane"})
		return err
	})
	if err != nil {
		return fmt.Errorf("lab: data plane: GatewayClass %s status: %w", class, err)
	}
	err = kretry.RetryOnConflict(kretry.DefaultRetry, func() error {
		g, err := gw.GatewayV1().Gateways(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		ip := gwv1.IPAddressType
		g.Status.Addresses = []gwv1.GatewayStatusAddress{{Type: &ip, Value: addr}}
		for _, c := range []struct{ typ, reason string }{
			{string(gwv1.GatewayConditionAccepted), string(gwv1.GatewayReasonAccepted)},
			{string(gwv1.GatewayConditionProgrammed), string(gwv1.GatewayReasonProgrammed)},
		} {
			meta.SetStatusCondition(&g.Status.Conditions, metav1.Condition{
				Type: c.typ, Status: metav1.ConditionTrue, Reason: c.reason,
				Message: "the lab HAProxy's frontend", ObservedGeneration: g.Generation,
			})
		}
		_, err = gw.GatewayV1().Gateways(ns).UpdateStatus(ctx, g, metav1.UpdateOptions{FieldManager: "drillship-lab-data-plane"})
		return err
	})
	if err != nil {
		return fmt.Errorf("lab: data plane: Gateway %s/%s status: %w", ns, name, err)
	}
	return nil
}

// state returns the last applied state and a channel closed at the next apply.
func (d *dataPlane) current() (DataPlaneState, <-chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.state, d.changed
}

// DataPlane returns what the lab's data plane last applied (zero without
// Kubernetes).
func (l *Lab) DataPlane() DataPlaneState {
	if l.dataplane == nil {
		return DataPlaneState{}
	}
	st, _ := l.dataplane.current()
	return st
}

// WaitDataPlane blocks until the data plane has applied a state for which
// cond holds, and returns it.
func (l *Lab) WaitDataPlane(ctx context.Context, cond func(DataPlaneState) bool) (DataPlaneState, error) {
	if l.dataplane == nil {
		return DataPlaneState{}, errors.New("lab: no data plane (the lab runs without Kubernetes)")
	}
	for {
		st, changed := l.dataplane.current()
		if !st.At.IsZero() && cond(st) {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("lab: data plane: %w (last applied: generation %d, weights %s)", ctx.Err(), st.Generation, formatWeights(st.Weights))
		case <-changed:
		}
	}
}

// weightSetter sets the lab HAProxy's server weights through its runtime
// API. (activities/haproxy does the same for the haproxy provider, but its
// tests import this package, so this package cannot import it.)
type weightSetter struct {
	socket  string
	backend string
	servers map[string]string // version -> server
}

func (h weightSetter) versions() []string { return sortedKeys(h.servers) }

func (h weightSetter) do(ctx context.Context, cmd string) (string, error) {
	var dl net.Dialer
	c, err := dl.DialContext(ctx, "unix", h.socket)
	if err != nil {
		return "", fmt.Errorf("lab: haproxy runtime API: %w", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, cmd+"\n"); err != nil {
		return "", fmt.Errorf("lab: haproxy %q: %w", cmd, err)
	}
	b, err := io.ReadAll(io.LimitReader(c, 1<<20))
	if err != nil {
		return "", fmt.Errorf("lab: haproxy %q: %w", cmd, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// weight reads a server's current weight ("get weight" answers "N (initial M)").
func (h weightSetter) weight(ctx context.Context, server string) (int, error) {
	out, err := h.do(ctx, "get weight "+h.backend+"/"+server)
	if err != nil {
		return 0, err
	}
	f := strings.Fields(out)
	if len(f) == 0 {
		return 0, fmt.Errorf("lab: haproxy get weight %s/%s: empty answer", h.backend, server)
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 0, fmt.Errorf("lab: haproxy get weight %s/%s: %q", h.backend, server, out)
	}
	return n, nil
}

// set reads each server's weight and sets those that differ (so a weight
// put there by anything else is put back), then reads them back.
func (h weightSetter) set(ctx context.Context, w map[string]int) (bool, error) {
	changed := false
	for _, v := range sortedKeys(w) {
		server := h.servers[v]
		cur, err := h.weight(ctx, server)
		if err != nil {
			return changed, err
		}
		if cur == w[v] {
			continue
		}
		cmd := fmt.Sprintf("set server %s/%s weight %d", h.backend, server, w[v])
		out, err := h.do(ctx, cmd)
		if err != nil {
			return changed, err
		}
		if out != "" {
			return changed, fmt.Errorf("lab: haproxy %q: %s", cmd, out)
		}
		changed = true
		if got, err := h.weight(ctx, server); err != nil || got != w[v] {
			return changed, fmt.Errorf("lab: haproxy %s/%s: weight %d after setting %d (%v)", h.backend, server, got, w[v], err)
		}
	}
	return changed, nil
}
