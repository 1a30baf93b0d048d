package gatewayapi_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/gatewayapi"
	"github.com/drillship/drillship/lab/kube"
)

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  map[string]any
		want string
	}{
		{map[string]any{"backends": map[string]any{"stable": "a", "canary": "b"}}, "route is required"},
		{map[string]any{"route": "web", "backends": map[string]any{"stable": "a"}}, "both stable and canary"},
		{map[string]any{"route": "web", "backends": map[string]any{"stable": "a", "canary": "b", "v2": "c"}}, "backends.v2"},
		{map[string]any{"route": "web", "rule": 16, "backends": map[string]any{"stable": "a", "canary": "b"}}, "rule 16"},
		{map[string]any{"route": "web", "backends": map[string]any{"stable": "a", "canary": "b"}, "header": map[string]any{"name": "x-canary"}}, "header.value"},
		{map[string]any{"route": "web", "backends": map[string]any{"stable": "a", "canary": "b"}, "programmedTimeout": "soon"}, "programmedTimeout"},
		{map[string]any{"route": "web", "backends": map[string]any{"stable": "a", "canary": "b"}, "weight": 1}, "unknown field"},
	} {
		if _, err := gatewayapi.New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%v) = %v, want an error with %q", tc.cfg, err, tc.want)
		}
	}
	rules, err := gatewayapi.Rules(activities.CapTraffic, map[string]any{"namespace": "web", "route": "web", "backends": map[string]any{"stable": "a", "canary": "b"}})
	// Least privilege: the provider reads (get, and list/watch by name for
	// the wait) and writes with update; it never patches, and it reads the
	// status from the resource itself.
	if err != nil || len(rules) != 1 || rules[0].ResourceNames[0] != "web" || rules[0].Namespace != "web" ||
		strings.Join(rules[0].Resources, ",") != "httproutes" || strings.Join(rules[0].Verbs, ",") != "get,list,watch,update" {
		t.Fatalf("rules = %+v, %v; want get, list, watch, update on httproutes web only", rules, err)
	}
}

// lab is one control plane for all the subtests (it takes seconds to start
// and more to stop).
type lab struct {
	c  *kube.Cluster
	gw gatewayclient.Interface
}

func TestGatewayAPI(t *testing.T) {
	c := kube.StartTest(t)
	gw, err := gatewayclient.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.Client().CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "web"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	l := &lab{c: c, gw: gw}
	t.Run("WithoutController", l.withoutController)
	t.Run("WaitsForController", l.waitsForController)
	t.Run("ControllerNeverReports", l.controllerNeverReports)
	t.Run("ConflictRetried", l.conflictRetried)
	t.Run("HeaderRule", l.headerRule)
	t.Run("Preflight", l.preflight)
	t.Run("RuleInsertedAhead", l.ruleInsertedAhead)
	t.Run("TwoRulesHoldBoth", l.twoRulesHoldBoth)
}

func (l *lab) route(t *testing.T, name string) *gwv1.HTTPRoute {
	t.Helper()
	ref := func(svc string, w int32) gwv1.HTTPBackendRef {
		port := gwv1.PortNumber(80)
		return gwv1.HTTPBackendRef{BackendRef: gwv1.BackendRef{Weight: &w,
			BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(svc), Port: &port}}}
	}
	r := &gwv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "web"},
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "web"}}},
			Rules:           []gwv1.HTTPRouteRule{{BackendRefs: []gwv1.HTTPBackendRef{ref("web-stable", 100), ref("web-canary", 0)}}},
		},
	}
	out, err := l.gw.GatewayV1().HTTPRoutes("web").Create(context.Background(), r, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (l *lab) client(t *testing.T, kubeconfig, route string, extra map[string]any) *gatewayapi.Client {
	t.Helper()
	cfg := map[string]any{"kubeconfig": kubeconfig, "namespace": "web", "route": route,
		"backends": map[string]any{"stable": "web-stable", "canary": "web-canary"}}
	for k, v := range extra {
		cfg[k] = v
	}
	c, err := gatewayapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// specWeights reads the weights straight from the API server.
func (l *lab) specWeights(t *testing.T, name string) (map[string]int32, *gwv1.HTTPRoute) {
	t.Helper()
	r, err := l.gw.GatewayV1().HTTPRoutes("web").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int32{}
	for _, b := range r.Spec.Rules[0].BackendRefs {
		out[string(b.Name)] = *b.Weight
	}
	return out, r
}

// report writes what the lab's data plane writes after applying a
// generation: parent web, condition Accepted at observedGeneration gen.
func (l *lab) report(ctx context.Context, r *gwv1.HTTPRoute, gen int64) error {
	r = r.DeepCopy()
	r.Status.Parents = []gwv1.RouteParentStatus{{
		ParentRef:      gwv1.ParentReference{Name: "web"},
		ControllerName: "drillship.dev/lab-data-plane",
		Conditions: []metav1.Condition{{Type: string(gwv1.RouteConditionAccepted), Status: metav1.ConditionTrue,
			Reason: "Accepted", ObservedGeneration: gen, LastTransitionTime: metav1.Now()}},
	}}
	_, err := l.gw.GatewayV1().HTTPRoutes("web").UpdateStatus(ctx, r, metav1.UpdateOptions{})
	return err
}

func (l *lab) withoutController(t *testing.T) {
	l.route(t, "plain")
	c := l.client(t, l.c.Kubeconfig, "plain", nil)
	ctx := context.Background()
	if err := c.SetWeights(ctx, activities.Weights{"canary": 10, "stable": 90}); err != nil {
		t.Fatal(err)
	}
	if got, _ := l.specWeights(t, "plain"); got["web-stable"] != 90 || got["web-canary"] != 10 {
		t.Fatalf("route weights = %v, want web-stable 90, web-canary 10", got)
	}
	// A role not named keeps its weight.
	if err := c.SetWeights(ctx, activities.Weights{"canary": 25}); err != nil {
		t.Fatal(err)
	}
	w, err := c.Weights(ctx)
	if err != nil || w["canary"] != 25 || w["stable"] != 90 {
		t.Fatalf("Weights = %v, %v; want canary 25, stable 90", w, err)
	}
	if err := c.SetWeights(ctx, activities.Weights{"v2": 5}); err == nil || !activities.IsPermanent(err) {
		t.Fatalf("SetWeights(v2) = %v, want a permanent error", err)
	}
}

// follow plays the route's controller: it reports each new generation of
// route name as Accepted lag after seeing it, until t ends.
func (l *lab) follow(t *testing.T, name string, lag time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r, err := l.gw.GatewayV1().HTTPRoutes("web").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.report(ctx, r, r.Generation); err != nil {
		t.Fatal(err)
	}
	w, err := l.gw.GatewayV1().HTTPRoutes("web").Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	go func() {
		for ev := range w.ResultChan() {
			r, ok := ev.Object.(*gwv1.HTTPRoute)
			if !ok || ev.Type != watch.Modified || len(r.Status.Parents) == 0 || r.Status.Parents[0].Conditions[0].ObservedGeneration >= r.Generation {
				continue
			}
			time.Sleep(lag) // the data plane applying the weights
			_ = l.report(ctx, r, r.Generation)
		}
	}()
}

func (l *lab) waitsForController(t *testing.T) {
	l.route(t, "followed")
	ctx := context.Background()
	const lag = 300 * time.Millisecond
	l.follow(t, "followed", lag)
	c := l.client(t, l.c.Kubeconfig, "followed", nil)
	start := time.Now()
	if err := c.SetWeights(ctx, activities.Weights{"canary": 50, "stable": 50}); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	got, after := l.specWeights(t, "followed")
	if got["web-canary"] != 50 || got["web-stable"] != 50 {
		t.Fatalf("weights = %v", got)
	}
	if og := after.Status.Parents[0].Conditions[0].ObservedGeneration; og < after.Generation || took < lag {
		t.Fatalf("SetWeights returned after %s with the parent at generation %d of %d: it did not wait for the controller", took, og, after.Generation)
	}
	t.Logf("SetWeights returned %s after the write (data plane lag %s)", took, lag)
}

func (l *lab) controllerNeverReports(t *testing.T) {
	r := l.route(t, "stale")
	ctx := context.Background()
	if err := l.report(ctx, r, r.Generation); err != nil {
		t.Fatal(err)
	}
	c := l.client(t, l.c.Kubeconfig, "stale", map[string]any{"programmedTimeout": "1s"})
	start := time.Now()
	err := c.SetWeights(ctx, activities.Weights{"canary": 5, "stable": 95})
	if err == nil || activities.IsPermanent(err) || !strings.Contains(err.Error(), "not accepted by its controller within 1s") ||
		!strings.Contains(err.Error(), "has generation 1") {
		t.Fatalf("SetWeights = %v, want a retryable timeout naming the parent's generation", err)
	}
	if d := time.Since(start); d < time.Second || d > 10*time.Second {
		t.Fatalf("the timeout took %s", d)
	}
	// The write itself landed; a retry finds it and waits again.
	if got, _ := l.specWeights(t, "stale"); got["web-canary"] != 5 {
		t.Fatalf("weights = %v", got)
	}
}

// conflictRetried puts a proxy between the client and the API server that,
// before passing on the first PUT of the route, changes the route itself:
// the PUT is refused with a conflict and must be retried on a fresh read.
func (l *lab) conflictRetried(t *testing.T) {
	l.route(t, "contended")
	target, _ := url.Parse(l.c.Server)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(l.c.CA)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	var puts atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodPut && strings.HasSuffix(req.URL.Path, "/httproutes/contended") {
			if puts.Add(1) == 1 {
				ctx := req.Context()
				r, err := l.gw.GatewayV1().HTTPRoutes("web").Get(ctx, "contended", metav1.GetOptions{})
				if err == nil {
					r.Labels = map[string]string{"touched": "by-someone-else"}
					_, err = l.gw.GatewayV1().HTTPRoutes("web").Update(ctx, r, metav1.UpdateOptions{})
				}
				if err != nil {
					t.Errorf("concurrent update: %v", err)
				}
			}
		}
		// The proxy authenticates: the client talks plain HTTP to it.
		req.Header.Set("Authorization", "Bearer "+l.c.AdminToken)
		rp.ServeHTTP(w, req)
	}))
	defer proxy.Close()
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["p"] = &clientcmdapi.Cluster{Server: proxy.URL}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{}
	cfg.Contexts["p"] = &clientcmdapi.Context{Cluster: "p", AuthInfo: "admin", Namespace: "web"}
	cfg.CurrentContext = "p"
	if err := clientcmd.WriteToFile(*cfg, kc); err != nil {
		t.Fatal(err)
	}
	c := l.client(t, kc, "contended", nil)
	if err := c.SetWeights(context.Background(), activities.Weights{"canary": 20, "stable": 80}); err != nil {
		t.Fatal(err)
	}
	got, r := l.specWeights(t, "contended")
	if puts.Load() != 2 || got["web-canary"] != 20 || got["web-stable"] != 80 || r.Labels["touched"] != "by-someone-else" {
		t.Fatalf("after a conflict: %d PUTs, weights %v, labels %v; want 2 PUTs, 20/80, the other writer's label kept", puts.Load(), got, r.Labels)
	}
}

func (l *lab) headerRule(t *testing.T) {
	l.route(t, "headers")
	ctx := context.Background()
	c := l.client(t, l.c.Kubeconfig, "headers", map[string]any{"header": map[string]any{"name": "x-canary", "value": "always"}})
	if err := c.SetWeights(ctx, activities.Weights{"canary": 10, "stable": 90}); err != nil {
		t.Fatal(err)
	}
	_, r := l.specWeights(t, "headers")
	if len(r.Spec.Rules) != 2 {
		t.Fatalf("rules = %d, want the weighted one and the header rule", len(r.Spec.Rules))
	}
	h := r.Spec.Rules[1]
	if h.Name == nil || string(*h.Name) != gatewayapi.HeaderRuleName || len(h.BackendRefs) != 1 || h.BackendRefs[0].Name != "web-canary" ||
		len(h.Matches) != 1 || len(h.Matches[0].Headers) != 1 || h.Matches[0].Headers[0].Name != "x-canary" || h.Matches[0].Headers[0].Value != "always" {
		t.Fatalf("header rule = %+v", h)
	}
	gen := r.Generation
	// Again: nothing to change, nothing written.
	if err := c.SetWeights(ctx, activities.Weights{"canary": 10}); err != nil {
		t.Fatal(err)
	}
	if _, r := l.specWeights(t, "headers"); r.Generation != gen {
		t.Fatalf("an unchanged SetWeights wrote the route (generation %d -> %d)", gen, r.Generation)
	}
	if err := c.SetWeights(ctx, activities.Weights{"canary": 0, "stable": 100}); err != nil {
		t.Fatal(err)
	}
	got, r := l.specWeights(t, "headers")
	if len(r.Spec.Rules) != 1 || got["web-canary"] != 0 || got["web-stable"] != 100 {
		t.Fatalf("after canary 0: %d rules, weights %v; want the header rule gone and 0/100", len(r.Spec.Rules), got)
	}
}

func (l *lab) preflight(t *testing.T) {
	ctx := context.Background()
	l.route(t, "checked")
	fs, err := l.client(t, l.c.Kubeconfig, "checked", nil).Preflight(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if !f.OK {
			t.Fatalf("admin preflight: %+v", f)
		}
	}
	fs, err = l.client(t, l.c.Kubeconfig, "missing", nil).Preflight(ctx)
	if err != nil || !refused(fs, "httproute", "not found") {
		t.Fatalf("preflight of a missing route = %+v, %v", fs, err)
	}
	// A service account granted the rules but for update.
	kc, err := l.c.ServiceAccountKubeconfig(ctx, "web", "traffic")
	if err != nil {
		t.Fatal(err)
	}
	c := l.client(t, kc, "checked", nil)
	rules, _ := gatewayapi.Rules(activities.CapTraffic, map[string]any{"namespace": "web", "route": "checked",
		"backends": map[string]any{"stable": "web-stable", "canary": "web-canary"}})
	var pr []rbacv1.PolicyRule
	for _, r := range rules {
		var verbs []string
		for _, v := range r.Verbs {
			if v != "update" {
				verbs = append(verbs, v)
			}
		}
		pr = append(pr, rbacv1.PolicyRule{APIGroups: r.APIGroups, Resources: r.Resources, Verbs: verbs, ResourceNames: r.ResourceNames})
	}
	kc2 := l.c.Client()
	if _, err := kc2.RbacV1().Roles("web").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "traffic"}, Rules: pr}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kc2.RbacV1().RoleBindings("web").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "traffic"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "traffic"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "traffic", Namespace: "web"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	fs, err = c.Preflight(ctx)
	if err != nil || !refused(fs, "rbac", "the worker may not update httproutes checked in namespace web") {
		t.Fatalf("preflight without update = %+v, %v", fs, err)
	}
	for _, f := range fs {
		if !f.OK && !strings.Contains(f.Detail, "update") {
			t.Errorf("refused for something else: %+v", f)
		}
	}
	// With update granted too, the rules are all SetWeights needs: the
	// write, and the wait for the controller (list and watch by name).
	role, err := kc2.RbacV1().Roles("web").Get(ctx, "traffic", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	role.Rules[0].Verbs = append(role.Rules[0].Verbs, "update")
	if _, err := kc2.RbacV1().Roles("web").Update(ctx, role, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	l.follow(t, "checked", 50*time.Millisecond)
	if fs, err := c.Preflight(ctx); err != nil || refused(fs, "rbac", "") {
		t.Fatalf("preflight with the rules = %+v, %v", fs, err)
	}
	if err := c.SetWeights(ctx, activities.Weights{"canary": 30, "stable": 70}); err != nil {
		t.Fatalf("SetWeights as the service account with exactly the rules: %v", err)
	}
	got, r := l.specWeights(t, "checked")
	if got["web-canary"] != 30 || r.Status.Parents[0].Conditions[0].ObservedGeneration < r.Generation {
		t.Fatalf("weights %v at generation %d, parent at %d", got, r.Generation, r.Status.Parents[0].Conditions[0].ObservedGeneration)
	}
}

func refused(fs []activities.Finding, check, detail string) bool {
	for _, f := range fs {
		if f.Check == check && !f.OK && f.Refuse && strings.Contains(f.Detail, detail) {
			return true
		}
	}
	return false
}

// weightsAt reads the weights of rule i straight from the API server, by
// Service; a backendRef without a weight reads as the API's default 1.
func (l *lab) weightsAt(t *testing.T, name string, i int) (map[string]int32, *gwv1.HTTPRoute) {
	t.Helper()
	r, err := l.gw.GatewayV1().HTTPRoutes("web").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if i >= len(r.Spec.Rules) {
		t.Fatalf("HTTPRoute %s has %d rules, want rule %d", name, len(r.Spec.Rules), i)
	}
	out := map[string]int32{}
	for _, b := range r.Spec.Rules[i].BackendRefs {
		out[string(b.Name)] = 1
		if b.Weight != nil {
			out[string(b.Name)] = *b.Weight
		}
	}
	return out, r
}

// insertRule puts rule at index 0 of the route, as a person would with
// kubectl edit.
func (l *lab) insertRule(t *testing.T, name string, rule gwv1.HTTPRouteRule) {
	t.Helper()
	ctx := context.Background()
	r, err := l.gw.GatewayV1().HTTPRoutes("web").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r.Spec.Rules = append([]gwv1.HTTPRouteRule{rule}, r.Spec.Rules...)
	if _, err := l.gw.GatewayV1().HTTPRoutes("web").Update(ctx, r, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func backendRef(svc string, w *int32) gwv1.HTTPBackendRef {
	port := gwv1.PortNumber(80)
	return gwv1.HTTPBackendRef{BackendRef: gwv1.BackendRef{Weight: w,
		BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(svc), Port: &port}}}
}

func pathRule(prefix string, refs ...gwv1.HTTPBackendRef) gwv1.HTTPRouteRule {
	pp := gwv1.PathMatchPathPrefix
	return gwv1.HTTPRouteRule{Matches: []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: &pp, Value: &prefix}}}, BackendRefs: refs}
}

// ruleInsertedAhead: mid-deploy, a person inserts an /admin -> web-stable
// rule at index 0. The rollback to stable that follows must still set the
// weighted rule (now rule 1), leave the person's rule alone, and remove the
// header rule.
func (l *lab) ruleInsertedAhead(t *testing.T) {
	l.route(t, "edited")
	ctx := context.Background()
	l.follow(t, "edited", 20*time.Millisecond)
	c := l.client(t, l.c.Kubeconfig, "edited", map[string]any{"header": map[string]any{"name": "x-canary", "value": "always"}})
	if err := c.SetWeights(ctx, activities.Weights{"canary": 10, "stable": 90}); err != nil {
		t.Fatal(err)
	}
	l.insertRule(t, "edited", pathRule("/admin", backendRef("web-stable", nil)))
	if w, err := c.Weights(ctx); err != nil || w["canary"] != 10 || w["stable"] != 90 {
		t.Fatalf("Weights after the insert = %v, %v; want canary 10, stable 90 (the weighted rule, now rule 1)", w, err)
	}
	if err := c.SetWeights(ctx, activities.Weights{"canary": 0, "stable": 100}); err != nil {
		t.Fatalf("rollback after a rule was inserted ahead: %v", err)
	}
	admin, r := l.weightsAt(t, "edited", 0)
	weighted, _ := l.weightsAt(t, "edited", 1)
	if len(r.Spec.Rules) != 2 || weighted["web-canary"] != 0 || weighted["web-stable"] != 100 ||
		len(admin) != 1 || admin["web-stable"] != 1 {
		t.Fatalf("after the rollback: %d rules, /admin rule %v, weighted rule %v; want 2 rules (header rule gone), /admin untouched, 0/100",
			len(r.Spec.Rules), admin, weighted)
	}
	if og := r.Status.Parents[0].Conditions[0].ObservedGeneration; og < r.Generation {
		t.Fatalf("SetWeights returned with the parent at generation %d of %d", og, r.Generation)
	}
	// A configured index is checked, not trusted: rule 0 is now the /admin
	// rule, and the error says which rule to set.
	stale := l.client(t, l.c.Kubeconfig, "edited", map[string]any{"rule": 0})
	err := stale.SetWeights(ctx, activities.Weights{"canary": 5, "stable": 95})
	if err == nil || !activities.IsPermanent(err) || !strings.Contains(err.Error(), "rule 0 (config.rule) has no backendRef to Service web-canary") ||
		!strings.Contains(err.Error(), "rule 1 holds both backends") {
		t.Fatalf("SetWeights with rule: 0 = %v, want a permanent error saying rule 1 holds both", err)
	}
	if fs, err := stale.Preflight(ctx); err != nil || !refused(fs, "httproute", "rule 1 holds both backends") {
		t.Fatalf("preflight with rule: 0 = %+v, %v", fs, err)
	}
	if got, _ := l.weightsAt(t, "edited", 1); got["web-canary"] != 0 {
		t.Fatalf("a refused SetWeights wrote: %v", got)
	}
	if err := l.client(t, l.c.Kubeconfig, "edited", map[string]any{"rule": 1}).SetWeights(ctx, activities.Weights{"canary": 5, "stable": 95}); err != nil {
		t.Fatal(err)
	}
	if got, _ := l.weightsAt(t, "edited", 1); got["web-canary"] != 5 || got["web-stable"] != 95 {
		t.Fatalf("with rule: 1, weights %v; want 5/95", got)
	}
}

// twoRulesHoldBoth: without config.rule the weighted rule is ambiguous;
// nothing is written and the error names the rules. With config.rule set,
// only that one changes.
func (l *lab) twoRulesHoldBoth(t *testing.T) {
	l.route(t, "ambiguous")
	ctx := context.Background()
	w50 := int32(50)
	l.insertRule(t, "ambiguous", pathRule("/api", backendRef("web-stable", &w50), backendRef("web-canary", &w50)))
	_, before := l.weightsAt(t, "ambiguous", 0)
	c := l.client(t, l.c.Kubeconfig, "ambiguous", nil)
	err := c.SetWeights(ctx, activities.Weights{"canary": 10, "stable": 90})
	if err == nil || !activities.IsPermanent(err) || !strings.Contains(err.Error(), "HTTPRoute ambiguous: rules 0, 1 each have backendRefs to both") {
		t.Fatalf("SetWeights with two candidate rules = %v, want a permanent error naming the route and rules 0, 1", err)
	}
	if _, err := c.Weights(ctx); err == nil || !activities.IsPermanent(err) {
		t.Fatalf("Weights with two candidate rules = %v, want a permanent error", err)
	}
	if fs, err := c.Preflight(ctx); err != nil || !refused(fs, "httproute", "rules 0, 1 each have") {
		t.Fatalf("preflight with two candidate rules = %+v, %v", fs, err)
	}
	if _, after := l.weightsAt(t, "ambiguous", 0); after.Generation != before.Generation {
		t.Fatalf("an ambiguous SetWeights wrote the route (generation %d -> %d)", before.Generation, after.Generation)
	}
	if err := l.client(t, l.c.Kubeconfig, "ambiguous", map[string]any{"rule": 1}).SetWeights(ctx, activities.Weights{"canary": 10, "stable": 90}); err != nil {
		t.Fatal(err)
	}
	api, _ := l.weightsAt(t, "ambiguous", 0)
	root, _ := l.weightsAt(t, "ambiguous", 1)
	if api["web-canary"] != 50 || api["web-stable"] != 50 || root["web-canary"] != 10 || root["web-stable"] != 90 {
		t.Fatalf("with rule: 1: /api %v, rule 1 %v; want /api 50/50 untouched, rule 1 10/90", api, root)
	}
}
