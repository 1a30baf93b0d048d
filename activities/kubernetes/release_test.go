package kubernetes

import (
	"context"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authv1 "k8s.io/api/authorization/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/testsuite"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/lab/kube"
)

const relNS = "web"

// webDeployment is the lab's stable Deployment (k8s-shared brief), with
// or without the safety a careful operator wants (probe, minReadySeconds).
func webDeployment(name string, careful bool) *appsv1.Deployment {
	n := int32(4)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: relNS, Labels: map[string]string{"app": name}},
		Spec: appsv1.DeploymentSpec{
			Replicas: &n,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name, LabelRole: RoleStable}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name, LabelRole: RoleStable, LabelVersion: "v1"}},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: new(int64),
					Containers:                    []corev1.Container{{Name: "web", Image: "lab.drillship.dev/web:v1", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}},
				},
			},
		},
	}
	if careful {
		d.Spec.MinReadySeconds = 2
		d.Spec.Template.Spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
			HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}}, PeriodSeconds: 1}
	}
	return d
}

func relMust(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// lab creates namespace web with Deployment web, its PDB and HPA (as the
// lab has them) and Deployment bare (no PDB, probe or minReadySeconds).
func relLab(t *testing.T, ctx context.Context, k kubernetes.Interface) {
	_, err := k.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: relNS}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	for _, d := range []*appsv1.Deployment{webDeployment("web", true), webDeployment("bare", false)} {
		_, err := k.AppsV1().Deployments(relNS).Create(ctx, d, metav1.CreateOptions{})
		relMust(t, err)
	}
	two := intstr.FromInt32(2)
	_, err = k.PolicyV1().PodDisruptionBudgets(relNS).Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: relNS},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: &two,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web", LabelRole: RoleStable}}},
	}, metav1.CreateOptions{})
	relMust(t, err)
	four := int32(4)
	for name, max := range map[string]int32{"web": 8, "bare": 4} {
		_, err = k.AutoscalingV2().HorizontalPodAutoscalers(relNS).Create(ctx, &autoscalingv2.HorizontalPodAutoscaler{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: relNS},
			Spec: autoscalingv2.HorizontalPodAutoscalerSpec{MinReplicas: &four, MaxReplicas: max,
				ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name}},
		}, metav1.CreateOptions{})
		relMust(t, err)
	}
}

// worker returns a kubeconfig of ServiceAccount web/name bound to a Role
// holding exactly rules, once the API server's authorizer says so.
func relWorker(t *testing.T, ctx context.Context, c *kube.Cluster, name string, rules []activities.Rule) string {
	k := c.Client()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: relNS}}
	for _, r := range rules {
		if r.Cluster || r.Namespace != relNS {
			t.Fatalf("rule %+v: want namespaced in %s", r, relNS)
		}
		role.Rules = append(role.Rules, rbacv1.PolicyRule{APIGroups: r.APIGroups, Resources: r.Resources, Verbs: r.Verbs, ResourceNames: r.ResourceNames})
	}
	_, err := k.RbacV1().Roles(relNS).Create(ctx, role, metav1.CreateOptions{})
	relMust(t, err)
	path, err := c.ServiceAccountKubeconfig(ctx, relNS, name)
	relMust(t, err)
	_, err = k.RbacV1().RoleBindings(relNS).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: relNS},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: relNS}},
	}, metav1.CreateOptions{})
	relMust(t, err)
	// The authorizer learns of the binding through its own informers.
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	relMust(t, err)
	sa := kubernetes.NewForConfigOrDie(cfg)
	last := rules[len(rules)-1]
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		rev, err := sa.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authv1.SelfSubjectAccessReview{Spec: authv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authv1.ResourceAttributes{Namespace: relNS, Group: last.APIGroups[0], Resource: last.Resources[0], Verb: last.Verbs[0]}}}, metav1.CreateOptions{})
		return err == nil && rev.Status.Allowed, nil
	})
	relMust(t, err)
	return path
}

func newRelease(t *testing.T, cfg map[string]any) *Release {
	r, err := NewRelease(cfg)
	relMust(t, err)
	t.Cleanup(r.conn.Close)
	return r
}

// versions of the ReplicaSets Deployment name owns, by revision.
func replicaSetVersions(t *testing.T, ctx context.Context, k kubernetes.Interface, r *Release, name string) []string {
	d, err := k.AppsV1().Deployments(relNS).Get(ctx, name, metav1.GetOptions{})
	relMust(t, err)
	rss, err := history(ctx, k, d)
	relMust(t, err)
	var out []string
	for i := range rss {
		out = append(out, r.versionOf(&rss[i].Spec.Template))
	}
	return out
}

func readyPods(t *testing.T, ctx context.Context, k kubernetes.Interface, selector string) []string {
	pods, err := k.CoreV1().Pods(relNS).List(ctx, metav1.ListOptions{LabelSelector: selector})
	relMust(t, err)
	var out []string
	for i := range pods.Items {
		if podReady(&pods.Items[i]) && pods.Items[i].DeletionTimestamp == nil {
			out = append(out, pods.Items[i].Labels[LabelVersion])
		}
	}
	sort.Strings(out)
	return out
}

// TestReleaseOnCluster drives a canary through its life on a real control
// plane, as a worker whose ServiceAccount holds exactly the release's
// Rules: deploy, promote, stop, three versions, prune; then a promotion
// whose rollout cannot finish is set back.
func TestReleaseOnCluster(t *testing.T) {
	c := kube.StartTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	admin := c.Client()
	relLab(t, ctx, admin)

	base := map[string]any{"namespace": relNS, "deployment": "web", "rolloutTimeout": "1m"}
	rules, err := Rules(activities.CapRelease, base)
	relMust(t, err)
	cfg := map[string]any{"kubeconfig": relWorker(t, ctx, c, "release", rules)}
	for k, v := range base {
		cfg[k] = v
	}
	r := newRelease(t, cfg)
	relMust(t, r.waitRollout(ctx, "web", 1, "", "the lab's Deployment web"))

	fs, err := r.Preflight(ctx)
	relMust(t, err)
	checks := map[string]bool{}
	for _, f := range fs {
		checks[f.Check] = true
		if !f.OK || f.Refuse {
			t.Errorf("preflight finding %+v: want OK for the careful lab Deployment", f)
		}
	}
	for _, want := range []string{"rbac", "canary", "pdb", "readiness-probe", "min-ready-seconds", "hpa-room", "rolled-out"} {
		if !checks[want] {
			t.Errorf("preflight has no %s finding: %+v", want, fs)
		}
	}

	state := func() activities.ReleaseState {
		t.Helper()
		st, err := r.State(ctx)
		relMust(t, err)
		return st
	}
	if st, want := state(), (activities.ReleaseState{Service: "web", Stable: "v1", Running: []string{"v1"}, Artifacts: []string{"v1"}}); !reflect.DeepEqual(st, want) {
		t.Fatalf("state = %+v, want %+v", st, want)
	}

	// Deploy, as an activity: the canary is Available when Deploy returns,
	// and marked with the deploy's workflow id.
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivityWithOptions(func(ctx context.Context, v string) error { return r.Deploy(ctx, v) }, activity.RegisterOptions{Name: "Deploy"})
	start := time.Now()
	_, err = env.ExecuteActivity("Deploy", "v2")
	relMust(t, err)
	t.Logf("deploy v2: canary available in %s", time.Since(start).Round(time.Millisecond))
	can, err := admin.AppsV1().Deployments(relNS).Get(ctx, "web-canary", metav1.GetOptions{})
	relMust(t, err)
	if can.Status.AvailableReplicas != 1 || can.Spec.Template.Spec.Containers[0].Image != "lab.drillship.dev/web:v2" ||
		can.Labels[LabelRole] != RoleCanary || can.Labels[LabelVersion] != "v2" || can.Labels[LabelManagedBy] != ManagedBy {
		t.Errorf("canary: available %d, image %s, labels %v", can.Status.AvailableReplicas, can.Spec.Template.Spec.Containers[0].Image, can.Labels)
	}
	if can.Annotations[AnnDeploy] != "default-test-workflow-id" {
		t.Errorf("canary annotations %v, want %s: the test environment's workflow id", can.Annotations, AnnDeploy)
	}
	if got := readyPods(t, ctx, admin, "app=web,drillship.dev/role=canary"); !reflect.DeepEqual(got, []string{"v2"}) {
		t.Errorf("ready canary pods by version = %v, want [v2]", got)
	}
	relMust(t, r.Deploy(ctx, "v2"))
	if again, _ := admin.AppsV1().Deployments(relNS).Get(ctx, "web-canary", metav1.GetOptions{}); again.Generation != can.Generation {
		t.Errorf("a second Deploy changed the canary: generation %d -> %d", can.Generation, again.Generation)
	}
	if st := state(); !reflect.DeepEqual(st.Running, []string{"v1", "v2"}) {
		t.Errorf("running = %v, want [v1 v2]", st.Running)
	}

	// ScaleCanary: sized for half of web's 4 replicas before half the
	// traffic, available when it returns; a smaller share changes nothing;
	// a version the canary does not run is refused.
	n, err := r.ScaleCanary(ctx, "v2", 50)
	relMust(t, err)
	can, err = admin.AppsV1().Deployments(relNS).Get(ctx, "web-canary", metav1.GetOptions{})
	relMust(t, err)
	if n != 2 || *can.Spec.Replicas != 2 || can.Status.AvailableReplicas != 2 {
		t.Errorf("canary for 50%%: ScaleCanary said %d, spec %d, available %d; want 2", n, *can.Spec.Replicas, can.Status.AvailableReplicas)
	}
	if n, err := r.ScaleCanary(ctx, "v2", 10); err != nil || n != 2 {
		t.Errorf("canary for 10%% after 50%%: %d, %v; want left at 2", n, err)
	}
	if again, _ := admin.AppsV1().Deployments(relNS).Get(ctx, "web-canary", metav1.GetOptions{}); again.Generation != can.Generation {
		t.Errorf("a smaller share changed the canary: generation %d -> %d", can.Generation, again.Generation)
	}
	if _, err := r.ScaleCanary(ctx, "v9", 100); err == nil || !activities.IsPermanent(err) {
		t.Errorf("sizing a canary for a version it does not run: %v, want a permanent error", err)
	}

	// Promote: the stable Deployment runs v2, its history holds v1 and v2.
	start = time.Now()
	relMust(t, r.Promote(ctx, "v2"))
	t.Logf("promote v2: stable rolled out in %s", time.Since(start).Round(time.Millisecond))
	st, err := admin.AppsV1().Deployments(relNS).Get(ctx, "web", metav1.GetOptions{})
	relMust(t, err)
	if st.Spec.Template.Spec.Containers[0].Image != "lab.drillship.dev/web:v2" || st.Spec.Template.Labels[LabelVersion] != "v2" ||
		st.Spec.Template.Labels[LabelRole] != RoleStable || st.Status.AvailableReplicas != 4 || st.Status.UpdatedReplicas != 4 {
		t.Errorf("stable after promote: image %s labels %v available %d", st.Spec.Template.Spec.Containers[0].Image, st.Spec.Template.Labels, st.Status.AvailableReplicas)
	}
	if got := replicaSetVersions(t, ctx, admin, r, "web"); !reflect.DeepEqual(got, []string{"v1", "v2"}) {
		t.Errorf("ReplicaSets of web = %v, want [v1 v2]", got)
	}
	if got := readyPods(t, ctx, admin, "app=web,drillship.dev/role=stable"); !reflect.DeepEqual(got, []string{"v2", "v2", "v2", "v2"}) {
		t.Errorf("ready stable pods by version = %v", got)
	}

	// Stop: the canary Deployment and its pods are gone; again is a no-op.
	relMust(t, r.Stop(ctx, "v2"))
	if _, err := admin.AppsV1().Deployments(relNS).Get(ctx, "web-canary", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("canary after stop: %v, want not found", err)
	}
	if pods, _ := admin.CoreV1().Pods(relNS).List(ctx, metav1.ListOptions{LabelSelector: "drillship.dev/role=canary"}); len(pods.Items) != 0 {
		t.Errorf("%d canary pods left after stop", len(pods.Items))
	}
	relMust(t, r.Stop(ctx, "v2"))

	for _, v := range []string{"v3"} {
		relMust(t, r.Deploy(ctx, v))
		relMust(t, r.Promote(ctx, v))
		relMust(t, r.Stop(ctx, v))
	}
	if st, want := state(), (activities.ReleaseState{Service: "web", Stable: "v3", Running: []string{"v3"}, Artifacts: []string{"v1", "v2", "v3"}}); !reflect.DeepEqual(st, want) {
		t.Errorf("state after three versions = %+v, want %+v", st, want)
	}

	// Stop of another version leaves a canary alone.
	relMust(t, r.Deploy(ctx, "v4"))
	relMust(t, r.Stop(ctx, "v3"))
	if _, err := admin.AppsV1().Deployments(relNS).Get(ctx, "web-canary", metav1.GetOptions{}); err != nil {
		t.Errorf("Stop(v3) touched the v4 canary: %v", err)
	}
	relMust(t, r.Stop(ctx, "v4")) // v4 failed as a canary: no artifact of it

	// Prune keep 1: v3 and its rollback target v2 stay, v1 goes.
	deleted, err := r.Prune(ctx, "v3", 1)
	relMust(t, err)
	if !reflect.DeepEqual(deleted, []string{"v1"}) {
		t.Errorf("pruned %v, want [v1]", deleted)
	}
	if got := replicaSetVersions(t, ctx, admin, r, "web"); !reflect.DeepEqual(got, []string{"v2", "v3"}) {
		t.Errorf("ReplicaSets after prune = %v, want [v2 v3]", got)
	}
	if again, err := r.Prune(ctx, "v3", 1); err != nil || len(again) != 0 {
		t.Errorf("second prune: %v %v, want nothing", again, err)
	}

	// A promotion whose rollout cannot finish (no node takes a pod) fails
	// at the progress deadline and is set back to v3.
	_, err = admin.AppsV1().Deployments(relNS).Patch(ctx, "web", "application/merge-patch+json", []byte(`{"spec":{"progressDeadlineSeconds":3}}`), metav1.PatchOptions{})
	relMust(t, err)
	nodes, err := admin.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	relMust(t, err)
	cordon := func(on bool) {
		for _, n := range nodes.Items {
			_, err := admin.CoreV1().Nodes().Patch(ctx, n.Name, "application/merge-patch+json",
				[]byte(`{"spec":{"unschedulable":`+map[bool]string{true: "true", false: "null"}[on]+`}}`), metav1.PatchOptions{})
			relMust(t, err)
		}
	}
	cordon(true)
	start = time.Now()
	err = r.Promote(ctx, "v5")
	t.Logf("promote v5 with every node cordoned: %v after %s", err, time.Since(start).Round(time.Millisecond))
	if err == nil || !strings.Contains(err.Error(), "progress deadline") || !strings.Contains(err.Error(), "set back to v3") || !activities.IsPermanent(err) {
		t.Errorf("promote v5 = %v, want a permanent progress-deadline error that set web back to v3", err)
	}
	cordon(false)
	st, err = admin.AppsV1().Deployments(relNS).Get(ctx, "web", metav1.GetOptions{})
	relMust(t, err)
	if st.Spec.Template.Spec.Containers[0].Image != "lab.drillship.dev/web:v3" || st.Spec.Template.Labels[LabelVersion] != "v3" || st.Annotations[annFailed] != "v5" {
		t.Errorf("stable after the failed promotion: image %s, labels %v, annotations %v", st.Spec.Template.Spec.Containers[0].Image, st.Spec.Template.Labels, st.Annotations)
	}
	relMust(t, r.waitRollout(ctx, "web", st.Generation, "", "web back on v3"))
	// v5 never served: pruning removes it and keeps v2 as v3's target.
	deleted, err = r.Prune(ctx, "v3", 1)
	relMust(t, err)
	if !reflect.DeepEqual(deleted, []string{"v5"}) {
		t.Errorf("pruned after the failed promotion %v, want [v5]", deleted)
	}
	if got := replicaSetVersions(t, ctx, admin, r, "web"); !reflect.DeepEqual(got, []string{"v2", "v3"}) {
		t.Errorf("ReplicaSets = %v, want [v2 v3]", got)
	}
}

// TestPreflightOnCluster: a Deployment without PDB, readiness probe and
// minReadySeconds, whose HPA is at its maximum, gets a finding for each,
// refusing per the settings; a worker missing one verb is refused, naming
// it.
func TestPreflightOnCluster(t *testing.T) {
	c := kube.StartTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	relLab(t, ctx, c.Client())

	base := map[string]any{"namespace": relNS, "deployment": "bare", "preflight": map[string]any{"pdb": "refuse", "readinessProbe": "warn", "minReadySeconds": "warn"}}
	cfg := map[string]any{"kubeconfig": c.Kubeconfig}
	for k, v := range base {
		cfg[k] = v
	}
	r := newRelease(t, cfg)
	relMust(t, r.waitRollout(ctx, "bare", 1, "", "Deployment bare"))
	// Someone else's Deployment holds the canary's name.
	foreign := webDeployment("bare-canary", false)
	foreign.Spec.Replicas = new(int32)
	_, err := c.Client().AppsV1().Deployments(relNS).Create(ctx, foreign, metav1.CreateOptions{})
	relMust(t, err)
	fs, err := r.Preflight(ctx)
	relMust(t, err)
	got := map[string]activities.Finding{}
	for _, f := range fs {
		if f.Check != "rbac" {
			got[f.Check] = f
		} else if !f.OK {
			t.Errorf("admin rbac finding %+v", f)
		}
	}
	want := map[string]activities.Finding{
		"pdb":               {Check: "pdb", Detail: "Deployment bare has no PodDisruptionBudget: a node drain may take all its pods at once", Refuse: true},
		"readiness-probe":   {Check: "readiness-probe", Detail: "container web of Deployment bare has no readiness probe: its pods count as ready as soon as they start, before they can serve"},
		"min-ready-seconds": {Check: "min-ready-seconds", Detail: "Deployment bare has minReadySeconds 0: a pod that fails right after turning Ready still counts as available and the rollout moves on"},
		"hpa-room":          {Check: "hpa-room", Detail: "HPA bare runs Deployment bare at 4 of max 4: no room for 1 canary replicas (5 needed)"},
		"rolled-out":        {Check: "rolled-out", OK: true, Detail: "Deployment bare is fully rolled out (4 available)"},
		"canary":            {Check: "canary", Detail: "Deployment bare-canary exists and is not drillship's (no app.kubernetes.io/managed-by=drillship label): the canary cannot use that name", Refuse: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("findings:\n got %+v\nwant %+v", got, want)
	}

	// Signals on the same objects.
	s, err := NewSignals(map[string]any{"kubeconfig": c.Kubeconfig, "namespace": relNS, "selector": "app=bare"})
	relMust(t, err)
	t.Cleanup(s.conn.Close)
	for _, tc := range []struct {
		q      activities.Query
		value  float64
		noData bool
	}{
		{activities.Query{Metric: MetricReadyRatio, Scope: map[string]string{"deployment": "bare"}}, 1, false},
		{activities.Query{Metric: MetricAvailableReplicas, Scope: map[string]string{"role": "stable"}}, 4, false},
		{activities.Query{Metric: MetricRestarts, Scope: map[string]string{"version": "v1"}}, 0, false},
		{activities.Query{Metric: MetricHPAAtMax, Scope: map[string]string{"deployment": "bare"}}, 1, false},
		{activities.Query{Metric: MetricReadyRatio, Scope: map[string]string{"version": "v9"}}, 0, true},
	} {
		got, err := s.Sample(ctx, tc.q)
		relMust(t, err)
		if got.Value != tc.value || got.NoData != tc.noData || got.At == 0 {
			t.Errorf("%s %v = %+v, want %g (no data %v)", tc.q.Metric, tc.q.Scope, got, tc.value, tc.noData)
		}
	}

	// The worker's role lacks update on deployments: refused, naming it.
	rules, err := Rules(activities.CapRelease, base)
	relMust(t, err)
	for i := range rules {
		if slices.Contains(rules[i].Resources, "deployments") {
			rules[i].Verbs = slices.DeleteFunc(slices.Clone(rules[i].Verbs), func(v string) bool { return v == "update" })
		}
	}
	rules = slices.DeleteFunc(rules, func(r activities.Rule) bool { return len(r.Verbs) == 0 })
	cfg["kubeconfig"] = relWorker(t, ctx, c, "short", rules)
	r = newRelease(t, cfg)
	fs, err = r.Preflight(ctx)
	relMust(t, err)
	var denied []string
	for _, f := range fs {
		if f.Check == "rbac" && !f.OK {
			if !f.Refuse {
				t.Errorf("rbac finding does not refuse: %+v", f)
			}
			denied = append(denied, f.Detail)
		}
	}
	want2 := []string{"the worker may not update deployments bare in namespace web", "the worker may not update deployments bare-canary in namespace web"}
	if !reflect.DeepEqual(denied, want2) {
		t.Errorf("rbac denials = %q, want %q", denied, want2)
	}
}

// TestCrashLoopFailsFast: a promotion whose new pods crash-loop fails as
// soon as a pod says so, long before minReadySeconds or the progress
// deadline would, naming the pod, and is set back.
func TestCrashLoopFailsFast(t *testing.T) {
	c := kube.StartTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin := c.Client()
	relLab(t, ctx, admin)
	slow := webDeployment("slow", true)
	slow.Spec.MinReadySeconds = 60 // nothing turns available within the test
	_, err := admin.AppsV1().Deployments(relNS).Create(ctx, slow, metav1.CreateOptions{})
	relMust(t, err)
	r := newRelease(t, map[string]any{"kubeconfig": c.Kubeconfig, "namespace": relNS, "deployment": "slow", "rolloutTimeout": "1m"})

	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- r.Promote(ctx, "v2") }()
	// kwok runs the v2 pod; the test then says its container crash-loops,
	// as a kubelet would.
	var crashed string
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		pods, err := admin.CoreV1().Pods(relNS).List(ctx, metav1.ListOptions{LabelSelector: "app=slow,drillship.dev/version=v2"})
		if err != nil || len(pods.Items) == 0 || pods.Items[0].Status.Phase != corev1.PodRunning {
			return false, nil
		}
		p := pods.Items[0]
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "web", Image: "lab.drillship.dev/web:v2", RestartCount: 3,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 40s restarting failed container"}}}}
		if _, err := admin.CoreV1().Pods(relNS).UpdateStatus(ctx, &p, metav1.UpdateOptions{}); err != nil {
			return false, nil
		}
		crashed = p.Name
		return true, nil
	})
	relMust(t, err)
	err = <-done
	took := time.Since(start)
	t.Logf("promote v2 with %s crash-looping: %v after %s", crashed, err, took.Round(time.Millisecond))
	if err == nil || !strings.Contains(err.Error(), "pod "+crashed+": container web is in CrashLoopBackOff (3 restarts)") ||
		!strings.Contains(err.Error(), "set back to v1") || !activities.IsPermanent(err) {
		t.Errorf("promote = %v, want a permanent error naming %s in CrashLoopBackOff, set back to v1", err, crashed)
	}
	if took > 20*time.Second {
		t.Errorf("took %s: the crash loop should end the wait at once", took)
	}
	st, err := admin.AppsV1().Deployments(relNS).Get(ctx, "slow", metav1.GetOptions{})
	relMust(t, err)
	if img := st.Spec.Template.Spec.Containers[0].Image; img != "lab.drillship.dev/web:v1" || st.Annotations[annFailed] != "v2" {
		t.Errorf("slow after the failed promotion: image %s, annotations %v", img, st.Annotations)
	}
}
