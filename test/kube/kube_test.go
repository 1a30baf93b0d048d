// Package kube runs drillship end to end on the lab's Kubernetes control
// plane (etcd, kube-apiserver, controller-manager, scheduler, kwok nodes in
// two zones) through the embedded Temporal server, with real requests
// steered by the HTTPRoute through the lab's HAProxy data plane. The worker
// runs as a ServiceAccount holding exactly what `drillship rbac` prints for
// the specs, never as cluster admin.
package kube

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/deploys"
	"github.com/drillship/drillship/devenv"
	"github.com/drillship/drillship/drills"
	"github.com/drillship/drillship/lab"
	"github.com/drillship/drillship/lab/kube"
	"github.com/drillship/drillship/ledger"
	"github.com/drillship/drillship/rbac"
	"github.com/drillship/drillship/test/harness"
	"github.com/drillship/drillship/workflows"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

const ns = "web"

// world is one lab with a cluster and the embedded Temporal server.
type world struct {
	l   *lab.Lab
	env *devenv.Env
	kc  kubernetes.Interface // admin: for reading back, never for the run
	gw  gatewayclient.Interface
	reg *activities.Registry
	// kubeconfig of the worker's ServiceAccount drillship/worker.
	kubeconfig string
}

// start brings up the lab with Kubernetes and a ServiceAccount
// drillship/worker with no rights yet (addRole binds them), and starts
// Temporal with an in-process worker using that account, unless noWorker.
func start(t *testing.T, noWorker bool) *world {
	t.Helper()
	l := lab.Start(t, lab.Options{Parts: lab.PartHAProxy | lab.PartPrometheus | lab.PartKubernetes, LoadRPS: 100})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := l.Cluster()
	sa, err := c.ServiceAccountKubeconfig(ctx, "drillship", "worker")
	if err != nil {
		t.Fatal(err)
	}
	w := &world{l: l, kc: c.Client(), kubeconfig: sa}
	if w.gw, err = gatewayclient.NewForConfig(c.RESTConfig()); err != nil {
		t.Fatal(err)
	}
	// The specs name the cluster and the lab by path (pin): tests run in
	// parallel, each with its own lab, so the environment cannot say.
	w.env, err = devenv.Start(ctx, devenv.Options{NoLocal: true, NoWorker: noWorker})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.env.Close() })
	w.reg = w.env.Registry
	return w
}

// addRole binds to drillship/worker exactly what `drillship rbac` prints
// for uses, after edit (nil: as printed).
func (w *world) addRole(t *testing.T, uses []activities.Use, edit func(*rbac.Grants)) {
	t.Helper()
	o := rbac.Options{Name: "drillship-worker", Namespace: ns, ServiceAccount: "drillship/worker"}
	g, err := rbac.Build(w.reg.Provider, uses, o)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(&g)
	}
	role, err := rbac.YAML(g, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := w.l.Cluster().Apply(ctx, role); err != nil {
		t.Fatalf("applying the worker's role: %v\n%s", err, role)
	}
	t.Logf("the worker's role (drillship rbac):\n%s", role)
	// A new binding takes a moment to be enforced: wait until every rule is
	// (a preflight check made before then would rightly refuse).
	for _, r := range roleRules(g) {
		for _, verb := range r.rule.Verbs {
			attrs := &authorizationv1.ResourceAttributes{Namespace: r.namespace, Verb: verb, Group: r.rule.APIGroups[0], Resource: r.rule.Resources[0]}
			if len(r.rule.ResourceNames) > 0 {
				attrs.Name = r.rule.ResourceNames[0]
			}
			harness.WaitUntil(t, "the role's "+verb+" "+r.rule.Resources[0]+" enforced", 30*time.Second, func() bool {
				sar, err := w.kc.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), &authorizationv1.SubjectAccessReview{
					Spec: authorizationv1.SubjectAccessReviewSpec{User: kube.ServiceAccountUser("drillship", "worker"),
						Groups: []string{"system:serviceaccounts", "system:serviceaccounts:drillship"}, ResourceAttributes: attrs},
				}, metav1.CreateOptions{})
				return err == nil && sar.Status.Allowed
			})
		}
	}
}

type scopedRule struct {
	namespace string
	rule      rbacv1.PolicyRule
}

func roleRules(g rbac.Grants) []scopedRule {
	var out []scopedRule
	for _, r := range g.Roles {
		for _, pr := range r.Rules {
			out = append(out, scopedRule{r.Namespace, pr})
		}
	}
	if g.ClusterRole != nil {
		for _, pr := range g.ClusterRole.Rules {
			out = append(out, scopedRule{"", pr})
		}
	}
	return out
}

// deploySpec is the shipped k8s-canary spec pointed at w's cluster (as the
// worker's ServiceAccount) and lab.
func (w *world) deploySpec(t *testing.T) deploys.Spec {
	t.Helper()
	s, err := deploys.Load("../../deploys/k8s-canary.yaml", w.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range []*activities.Target{&s.Traffic, &s.Release, &s.Analysis.Target} {
		w.pin(tg)
	}
	return *s
}

// drillSpec is a shipped drill spec pointed at w's cluster and lab.
func (w *world) drillSpec(t *testing.T, name string) drills.Spec {
	t.Helper()
	s, err := drills.Load("../../drills/"+name+".yaml", w.reg)
	if err != nil {
		t.Fatal(err)
	}
	p := &s.Providers
	for _, tg := range []*activities.Target{p.Traffic, p.Signals, p.Faults, p.Runner, p.Database} {
		w.pin(tg)
	}
	for _, cs := range [][]activities.Check{s.SteadyState, s.Detection.Signals, s.Mitigation.SLO, s.Recovery.Checks, s.Guardrails.Checks} {
		for i := range cs {
			w.pin(cs[i].Target)
		}
	}
	for _, ss := range [][]drills.Step{s.Inject, s.Mitigation.Steps, s.Restore} {
		for i := range ss {
			w.pin(ss[i].Target)
		}
	}
	return *s
}

// pin gives a Kubernetes target the worker's kubeconfig and a lab target
// this lab's state file.
func (w *world) pin(tg *activities.Target) {
	if tg == nil {
		return
	}
	cfg := map[string]any{}
	for k, v := range tg.Config {
		cfg[k] = v
	}
	switch tg.Provider {
	case "kubernetes", "gateway-api":
		cfg["kubeconfig"] = w.kubeconfig
	case "lab":
		cfg["lab"] = w.l.StatePath()
	default:
		return
	}
	tg.Config = cfg
}

// routeWeights reads the HTTPRoute's backend weights from the API server.
func (w *world) routeWeights(t *testing.T) map[string]int32 {
	t.Helper()
	r, err := w.gw.GatewayV1().HTTPRoutes(ns).Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int32{}
	for _, b := range r.Spec.Rules[0].BackendRefs {
		if b.Weight != nil {
			out[string(b.Name)] = *b.Weight
		}
	}
	return out
}

func (w *world) deployment(t *testing.T, name string) *appsv1.Deployment {
	t.Helper()
	d, err := w.kc.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func imageTag(d *appsv1.Deployment) string {
	img := d.Spec.Template.Spec.Containers[0].Image
	return img[strings.LastIndex(img, ":")+1:]
}

// replicaSetVersions lists the versions of the stable Deployment's
// ReplicaSets.
func (w *world) replicaSetVersions(t *testing.T) []string {
	t.Helper()
	rss, err := w.kc.AppsV1().ReplicaSets(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=web,drillship.dev/role=stable"})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, rs := range rss.Items {
		out = append(out, rs.Spec.Template.Labels["drillship.dev/version"])
	}
	slices.Sort(out)
	return out
}

// assertOnStable: the route sends everything to web-stable, the data plane
// applied it (all weight on want), the stable Deployment runs want fully
// rolled out and available, and no canary Deployment is left.
func (w *world) assertSettled(t *testing.T, want string) {
	t.Helper()
	if rw := w.routeWeights(t); rw["web-stable"] != 100 || rw["web-canary"] != 0 {
		t.Errorf("HTTPRoute weights %v, want web-stable 100, web-canary 0", rw)
	}
	d := w.deployment(t, "web")
	if d == nil || imageTag(d) != want {
		t.Fatalf("stable Deployment %v, want image tag %s", d, want)
	}
	st := d.Status
	if st.ObservedGeneration < d.Generation || st.UpdatedReplicas != *d.Spec.Replicas || st.AvailableReplicas != *d.Spec.Replicas {
		t.Errorf("stable Deployment not rolled out: %+v", st)
	}
	if c := w.deployment(t, "web-canary"); c != nil {
		t.Errorf("the canary Deployment is still there: replicas %d", *c.Spec.Replicas)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := w.l.WaitDataPlane(ctx, func(s lab.DataPlaneState) bool {
		for v, wt := range s.Weights {
			if (v == want) != (wt > 0) {
				return false
			}
		}
		return s.Weights[want] > 0
	}); err != nil {
		t.Errorf("the data plane does not send everything to %s: %v (%+v)", want, err, w.l.DataPlane())
	}
}

// TestK8sCanary: a bad version (errors on real requests through the data
// plane) rolls back with the route on stable and the canary removed; a
// deploy cancelled from the Temporal API ends the same way; then a good one
// is promoted: the stable Deployment rolled onto it, its ReplicaSets kept,
// the route back on the stable backend.
func TestK8sCanary(t *testing.T) {
	t.Parallel()
	w := start(t, false)
	spec := w.deploySpec(t)
	w.addRole(t, spec.Uses(), nil)

	w.l.Service("v2").SetErrorRate(0.3)
	res := harness.RunDeploy(t, w.env, spec, "v2")
	t.Logf("bad v2: %s (%s); time to rollback %v ms; preflight %v", res.Outcome, res.Reason, deref(res.TimeToRollbackMs), res.Preflight)
	if res.Outcome != workflows.OutcomeRolledBack || !strings.Contains(res.Reason, "error-rate") {
		t.Fatalf("bad v2: outcome %s (%s), want rolled back on error-rate", res.Outcome, res.Reason)
	}
	if res.TimeToRollbackMs == nil {
		t.Error("no time to rollback recorded")
	}
	if len(res.Preflight) == 0 {
		t.Error("no preflight findings recorded")
	}
	for _, f := range res.Preflight {
		if !f.OK && f.Refuse {
			t.Errorf("a refusing preflight finding on a deploy that ran: %+v", f)
		}
	}
	w.assertSettled(t, "v1")

	// Cancelled from the Temporal API (the UI's Cancel) with the canary at
	// 10% of the route: an abort, the same way back.
	w.l.Service("v2").SetErrorRate(0)
	run := harness.StartDeploy(t, w.env, spec, "v2", "cancel-test")
	harness.WaitUntil(t, "the canary at 10% on the route", 2*time.Minute, func() bool { return w.routeWeights(t)["web-canary"] == 10 })
	if err := w.env.Client.CancelWorkflow(context.Background(), run.GetID(), ""); err != nil {
		t.Fatal(err)
	}
	res, _ = harness.DeployResultOf(t, run, 3*time.Minute)
	t.Logf("cancelled at 10%%: %s (%s)", res.Outcome, res.Reason)
	if res.Outcome != workflows.OutcomeAborted {
		t.Fatalf("cancelled: outcome %s (%s), want aborted", res.Outcome, res.Reason)
	}
	w.assertSettled(t, "v1")

	time.Sleep(7 * time.Second) // the bad run's errors leave the 5s rate window
	res = harness.RunDeploy(t, w.env, spec, "v2")
	t.Logf("good v2: %s (%s) in %d ms", res.Outcome, res.Reason, res.DurationMs)
	if res.Outcome != workflows.OutcomePromoted {
		t.Fatalf("good v2: outcome %s (%s), want promoted", res.Outcome, res.Reason)
	}
	w.assertSettled(t, "v2")
	if v := w.replicaSetVersions(t); !slices.Contains(v, "v1") || !slices.Contains(v, "v2") {
		t.Errorf("ReplicaSets of web: %v, want v1 (the rollback target) and v2", v)
	}
}

func deref(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestK8sWorkerKilledMidRollout: a separate `drillship worker` process is
// SIGKILLed while the canary takes half the traffic; a new one finishes the
// deploy, which is promoted with everything read back from the API server.
func TestK8sWorkerKilledMidRollout(t *testing.T) {
	t.Parallel()
	w := start(t, true)
	spec := w.deploySpec(t)
	w.addRole(t, spec.Uses(), nil)
	first := w.worker(t)
	run := harness.StartDeploy(t, w.env, spec, "v2", "kill-test")
	harness.WaitUntil(t, "the canary at 50% on the route", 3*time.Minute, func() bool { return w.routeWeights(t)["web-canary"] == 50 })
	// The canary was sized for half of what the stable Deployment carries
	// before the route gave it half the traffic.
	if c := w.deployment(t, "web-canary"); c == nil {
		t.Error("half the route goes to a canary Deployment that does not exist")
	} else if c.Status.AvailableReplicas < 2 {
		t.Errorf("the canary has half the route with %d available replicas, want 2 (half of web's 4)", c.Status.AvailableReplicas)
	}
	time.Sleep(2 * time.Second) // inside the 50% window's watch
	first.kill()
	t.Logf("worker SIGKILLed with the route at %v", w.routeWeights(t))
	w.worker(t)
	res, err := harness.DeployResultOf(t, run, 5*time.Minute)
	if err != nil || res.Outcome != workflows.OutcomePromoted {
		t.Fatalf("after the kill: outcome %s (%s) err %v, want promoted", res.Outcome, res.Reason, err)
	}
	t.Logf("promoted after a worker kill in %d ms", res.DurationMs)
	w.assertSettled(t, "v2")
	if blind := harness.BlindPasses(spec, harness.Steps(t, res.Steps)); len(blind) > 0 {
		t.Errorf("steps passed without enough evidence: %v", blind)
	}
}

type workerProc struct{ cmd *exec.Cmd }

// worker runs `drillship worker` against w's Temporal (the specs name the
// cluster and the lab by path).
func (w *world) worker(t *testing.T) *workerProc {
	t.Helper()
	cmd := exec.Command(harness.Binary(t), "worker", "--address", w.env.Stack.Address())
	if os.Getenv("DRILLSHIP_WORKER_LOGS") != "" {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &workerProc{cmd}
	t.Cleanup(p.kill)
	return p
}

func (p *workerProc) kill() {
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		_ = p.cmd.Wait()
	}
}

func zoneNodes(t *testing.T, kc kubernetes.Interface, zone string) []corev1.Node {
	t.Helper()
	nodes, err := kc.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{LabelSelector: "topology.kubernetes.io/zone=" + zone})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes.Items) == 0 {
		t.Fatalf("no nodes in %s", zone)
	}
	return nodes.Items
}

func nodeReady(n corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// assertZoneBack: every node of zone is schedulable, carries no drillship
// taint or fault annotation and is Ready.
func assertZoneBack(t *testing.T, kc kubernetes.Interface, zone string) {
	t.Helper()
	harness.WaitUntil(t, zone+" Ready again", time.Minute, func() bool {
		for _, n := range zoneNodes(t, kc, zone) {
			if !nodeReady(n) {
				return false
			}
		}
		return true
	})
	for _, n := range zoneNodes(t, kc, zone) {
		if n.Spec.Unschedulable {
			t.Errorf("node %s is still cordoned", n.Name)
		}
		for _, tn := range n.Spec.Taints {
			if strings.HasPrefix(tn.Key, "drillship.dev/") {
				t.Errorf("node %s still has taint %s", n.Name, tn.Key)
			}
		}
		for k := range n.Annotations {
			if strings.HasPrefix(k, "drillship.dev/fault") {
				t.Errorf("node %s still has annotation %s", n.Name, k)
			}
		}
	}
}

// TestK8sZoneOutageDrill: zone-a's nodes go NotReady and their pods are
// evicted; web is Available again from zone-b within the target, the drill
// is scored recovered on what it observed, and restore brings the zone back.
// Then the pod-kill drill runs on the same cluster.
func TestK8sZoneOutageDrill(t *testing.T) {
	t.Parallel()
	w := start(t, false)
	spec := w.drillSpec(t, "k8s-zone-outage")
	w.addRole(t, spec.Uses(), nil)
	rec := harness.RunDrill(t, w.env, spec, drills.ModeAutomated)
	t.Logf("zone outage: %s (%s); marks %v; findings %v", rec.Outcome, rec.Reason, rec.Marks, rec.Findings)
	if rec.Outcome != ledger.OutcomeRecovered {
		t.Fatalf("outcome %s (%s), want recovered", rec.Outcome, rec.Reason)
	}
	for _, m := range []string{ledger.Injected, ledger.Detected, ledger.Mitigated, ledger.Recovered} {
		if _, ok := rec.MarkAt(m); !ok {
			t.Errorf("no %s mark", m)
		}
	}
	if !rec.Restored {
		t.Error("the record does not say restored")
	}
	assertZoneBack(t, w.kc, "zone-a")
	d := w.deployment(t, "web")
	if d.Status.AvailableReplicas != *d.Spec.Replicas {
		t.Errorf("web available %d of %d after the drill", d.Status.AvailableReplicas, *d.Spec.Replicas)
	}

	// Then the pod-kill drill on the same cluster: half of web's pods
	// deleted, replaced by the Deployment, scored on what was observed.
	spec = w.drillSpec(t, "k8s-pod-kill")
	w.addRole(t, spec.Uses(), nil)
	before := w.podNames(t)
	rec = harness.RunDrill(t, w.env, spec, drills.ModeAutomated)
	t.Logf("pod kill: %s (%s); marks %v; findings %v", rec.Outcome, rec.Reason, rec.Marks, rec.Findings)
	if rec.Outcome != ledger.OutcomeRecovered {
		t.Fatalf("pod kill: outcome %s (%s), want recovered", rec.Outcome, rec.Reason)
	}
	if _, ok := rec.MarkAt(ledger.Detected); !ok {
		t.Error("pod kill: no detected mark")
	}
	after := w.podNames(t)
	gone := 0
	for _, n := range before {
		if !slices.Contains(after, n) {
			gone++
		}
	}
	if gone != len(before)/2 || len(after) != len(before) {
		t.Errorf("pod kill: %d of %d pods replaced (want half), %d now", gone, len(before), len(after))
	}
}

// podNames lists the stable web pods that are not being deleted.
func (w *world) podNames(t *testing.T) []string {
	t.Helper()
	pods, err := w.kc.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=web,drillship.dev/role=stable"})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p.Name)
		}
	}
	return out
}

// TestK8sDrillRBACMissingVerb: with the worker's role missing one verb the
// zone fault needs (patch on nodes), the drill is refused before injecting
// and says which verb; no node is touched.
func TestK8sDrillRBACMissingVerb(t *testing.T) {
	t.Parallel()
	w := start(t, false)
	spec := w.drillSpec(t, "k8s-zone-outage")
	removed := false
	w.addRole(t, spec.Uses(), func(g *rbac.Grants) {
		if g.ClusterRole == nil {
			return
		}
		for i, r := range g.ClusterRole.Rules {
			if slices.Contains(r.Resources, "nodes") && slices.Contains(r.Verbs, "patch") {
				g.ClusterRole.Rules[i].Verbs = slices.DeleteFunc(slices.Clone(r.Verbs), func(v string) bool { return v == "patch" })
				removed = true
			}
		}
	})
	if !removed {
		t.Fatal("the zone fault's role has no patch on nodes to remove")
	}
	run := harness.StartDrill(t, w.env, spec, drills.ModeAutomated, "rbac-test")
	rec, _ := harness.DrillRecordOf(t, run, 3*time.Minute)
	t.Logf("drill with a role missing patch nodes: %s (%s)", rec.Outcome, rec.Reason)
	if rec.Outcome != ledger.OutcomeRefused || !strings.Contains(rec.Reason, "patch") || !strings.Contains(rec.Reason, "nodes") {
		t.Fatalf("outcome %s (%s), want refused naming patch on nodes", rec.Outcome, rec.Reason)
	}
	if _, ok := rec.MarkAt(ledger.Injected); ok {
		t.Error("an injected mark on a refused drill")
	}
	for _, z := range []string{"zone-a", "zone-b"} {
		for _, n := range zoneNodes(t, w.kc, z) {
			if n.Spec.Unschedulable || len(n.Spec.Taints) > 0 {
				t.Errorf("node %s was touched: unschedulable %v taints %v", n.Name, n.Spec.Unschedulable, n.Spec.Taints)
			}
		}
	}
}

// TestK8sCanaryDeletedByHand: someone deletes the canary Deployment while
// it has half the route. The deploy must not shift more traffic to a canary
// with no pods: it rolls back with the route on stable, and a canary that
// someone else scales to 0 is still removed at the end.
func TestK8sCanaryDeletedByHand(t *testing.T) {
	t.Parallel()
	w := start(t, false)
	spec := w.deploySpec(t)
	w.addRole(t, spec.Uses(), nil)
	run := harness.StartDeploy(t, w.env, spec, "v2", "by-hand")
	harness.WaitUntil(t, "the canary at 50% on the route", 3*time.Minute, func() bool { return w.routeWeights(t)["web-canary"] == 50 })
	if err := w.kc.AppsV1().Deployments(ns).Delete(context.Background(), "web-canary", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	var most int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			time.Sleep(200 * time.Millisecond)
			r, err := w.gw.GatewayV1().HTTPRoutes(ns).Get(context.Background(), "web", metav1.GetOptions{})
			if err == nil {
				for _, b := range r.Spec.Rules[0].BackendRefs {
					if b.Name == "web-canary" && b.Weight != nil && *b.Weight > most {
						most = *b.Weight
					}
				}
			}
			if s, _ := harness.Status(context.Background(), w.env.Client, run.GetID()); s != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
				return
			}
		}
	}()
	res, _ := harness.DeployResultOf(t, run, 3*time.Minute)
	<-done
	t.Logf("canary deleted at 50%%: %s (%s); most canary weight seen after %d", res.Outcome, res.Reason, most)
	if res.Outcome == workflows.OutcomePromoted {
		t.Fatalf("promoted a canary deleted by hand: %s", res.Reason)
	}
	if most > 50 {
		t.Errorf("the route gave %d%% to a canary with no pods", most)
	}
	w.assertSettled(t, "v1")
}
