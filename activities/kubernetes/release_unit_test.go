package kubernetes

import (
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/retention"
)

func TestSplitImage(t *testing.T) {
	for _, tc := range []struct{ image, repo, tag, v3 string }{
		{"lab.drillship.dev/web:v1", "lab.drillship.dev/web", "v1", "lab.drillship.dev/web:v3"},
		{"localhost:5000/web:v1.2", "localhost:5000/web", "v1.2", "localhost:5000/web:v3"},
		{"localhost:5000/web", "localhost:5000/web", "latest", "localhost:5000/web:v3"},
		{"web", "web", "latest", "web:v3"},
		{"web:v1@sha256:abcd", "web", "v1", "web:v3"},
		{"web@sha256:abcd", "web", "sha256:abcd", "web:v3"},
	} {
		repo, tag := splitImage(tc.image)
		if repo != tc.repo || tag != tc.tag {
			t.Errorf("splitImage(%q) = %q, %q; want %q, %q", tc.image, repo, tag, tc.repo, tc.tag)
		}
		if got := withTag(tc.image, "v3"); got != tc.v3 {
			t.Errorf("withTag(%q, v3) = %q, want %q", tc.image, got, tc.v3)
		}
	}
}

func TestParseRelease(t *testing.T) {
	c, _, err := parseRelease(map[string]any{"deployment": "web"})
	if err != nil {
		t.Fatal(err)
	}
	want := PreflightConfig{PDB: Warn, ReadinessProbe: Warn, MinReadySeconds: Warn, HPARoom: Warn, RolledOut: Refuse}
	if c.Canary != "web-canary" || c.canaryReplicas != 1 || c.rolloutTimeout.String() != "5m0s" || c.Preflight != want {
		t.Errorf("defaults: canary %q replicas %d timeout %s preflight %+v", c.Canary, c.canaryReplicas, c.rolloutTimeout, c.Preflight)
	}
	for _, tc := range []struct {
		cfg  map[string]any
		want string
	}{
		{map[string]any{}, "deployment is required"},
		{map[string]any{"deployment": "Web"}, "not a Kubernetes name"},
		{map[string]any{"deployment": "web", "canary": "web"}, "canary must differ"},
		{map[string]any{"deployment": "web", "canaryReplicas": 0}, "canaryReplicas 0"},
		{map[string]any{"deployment": "web", "rolloutTimeout": "soon"}, "rolloutTimeout"},
		{map[string]any{"deployment": "web", "preflight": map[string]any{"pdb": "maybe"}}, "preflight.pdb"},
		{map[string]any{"deployment": "web", "preflight": map[string]any{"pbd": "warn"}}, "pbd"},
		{map[string]any{"deployment": "web", "kubeconfig": "kube.yaml"}, "absolute"},
	} {
		if _, _, err := parseRelease(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseRelease(%v) = %v, want an error with %q", tc.cfg, err, tc.want)
		}
	}
}

func relDeployment(name, image string, gen, observed int64, want, updated, total, available int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Generation: gen},
		Spec: appsv1.DeploymentSpec{Replicas: &want, Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "web", Image: image}}}}},
		Status: appsv1.DeploymentStatus{ObservedGeneration: observed, UpdatedReplicas: updated, Replicas: total,
			AvailableReplicas: available, ReadyReplicas: available},
	}
}

func TestRollout(t *testing.T) {
	failed := relDeployment("web", "w:v2", 3, 3, 4, 1, 5, 4)
	failed.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Reason: "ProgressDeadlineExceeded", Message: "too slow"}}
	for _, tc := range []struct {
		name    string
		d       *appsv1.Deployment
		gen     int64
		done    bool
		failed  string
		waiting string
	}{
		{"absent", nil, 1, false, "", "appear"},
		{"written generation not observed", relDeployment("web", "w:v2", 2, 2, 4, 4, 4, 4), 3, false, "", "observe generation 3"},
		{"cache behind the write", relDeployment("web", "w:v2", 3, 2, 4, 4, 4, 4), 2, false, "", "observe generation 3"},
		{"updating", relDeployment("web", "w:v2", 3, 3, 4, 2, 5, 4), 3, false, "", "2 of 4 replicas updated"},
		{"old pods left", relDeployment("web", "w:v2", 3, 3, 4, 4, 5, 4), 3, false, "", "1 old replicas"},
		{"not yet available (minReadySeconds)", relDeployment("web", "w:v2", 3, 3, 4, 4, 4, 3), 3, false, "", "3 of 4 updated replicas available"},
		{"done", relDeployment("web", "w:v2", 3, 3, 4, 4, 4, 4), 3, true, "", ""},
		{"progress deadline", failed, 3, false, "exceeded its progress deadline: too slow", ""},
	} {
		done, f, w := rollout(tc.d, tc.gen)
		if done != tc.done || !strings.Contains(f, tc.failed) || (tc.failed == "") != (f == "") || !strings.Contains(w, tc.waiting) {
			t.Errorf("%s: rollout = %v, %q, %q", tc.name, done, f, w)
		}
	}
}

// replicaSet is a ReplicaSet of the stable Deployment running version at
// revision rev (history: earlier revisions it had).
func replicaSet(version string, rev int, n int32, history ...string) appsv1.ReplicaSet {
	ann := map[string]string{annRevision: strconv.Itoa(rev)}
	if len(history) > 0 {
		ann["deployment.kubernetes.io/revision-history"] = strings.Join(history, ",")
	}
	return appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web-" + version, Annotations: ann},
		Spec: appsv1.ReplicaSetSpec{Replicas: &n, Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "web", Image: "lab/web:" + version}}}}},
		Status: appsv1.ReplicaSetStatus{Replicas: n},
	}
}

func TestStateAndArtifacts(t *testing.T) {
	r := &Release{cfg: ReleaseConfig{Deployment: "web", Canary: "web-canary"}}
	st := relDeployment("web", "lab/web:v2", 5, 5, 4, 4, 4, 4)
	st.Labels = map[string]string{"app": "web"}
	can := relDeployment("web-canary", "lab/web:v4", 1, 1, 1, 1, 1, 0) // not ready yet: still running
	// v1, v2 and v3 promoted in turn, then v2 again (a rollback by hand):
	// v2's ReplicaSet moved to revision 4.
	rss := []appsv1.ReplicaSet{replicaSet("v1", 1, 0), replicaSet("v3", 3, 0), replicaSet("v2", 4, 4, "2")}
	got := r.state(st, can, rss)
	want := activities.ReleaseState{Service: "web", Stable: "v2", Running: []string{"v2", "v4"}, Artifacts: []string{"v1", "v3", "v2"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("state = %+v, want %+v", got, want)
	}
	var zero int32
	can.Spec.Replicas, can.Status.Replicas = &zero, 0
	if got := r.state(st, can, rss); !reflect.DeepEqual(got.Running, []string{"v2"}) {
		t.Errorf("running with the canary at 0 = %v, want [v2]", got.Running)
	}

	arts := r.artifacts(rss, "v2", nil)
	wantArts := []retention.Artifact{
		{Version: "v1", Deployed: 1, Promoted: 1},
		{Version: "v3", Deployed: 3, Promoted: 3},
		{Version: "v2", Deployed: 2, Promoted: 4, Running: true},
	}
	if !reflect.DeepEqual(arts, wantArts) {
		t.Errorf("artifacts = %+v, want %+v", arts, wantArts)
	}
	// v2's rollback target is v3 (the one it replaced), not v1.
	if kept, removed := retention.Plan(arts, "v2", 1); !reflect.DeepEqual(kept, []string{"v3", "v2"}) || !reflect.DeepEqual(removed, []string{"v1"}) {
		t.Errorf("plan keep 1 = %v / %v, want [v3 v2] / [v1]", kept, removed)
	}
	// Had v3's promotion failed and been set back, v2's target is v1 and
	// v3 goes first, as a canary that never served.
	arts = r.artifacts(rss, "v2", []string{"v3"})
	if kept, removed := retention.Plan(arts, "v2", 1); !reflect.DeepEqual(kept, []string{"v1", "v2"}) || !reflect.DeepEqual(removed, []string{"v3"}) {
		t.Errorf("plan keep 1 after a failed v3 = %v / %v, want [v1 v2] / [v3]", kept, removed)
	}
}

func TestCanaryFor(t *testing.T) {
	r := &Release{cfg: ReleaseConfig{Deployment: "web", Canary: "web-canary", canaryReplicas: 2}}
	st := relDeployment("web", "lab/web:v1", 1, 1, 4, 4, 4, 4)
	st.Labels = map[string]string{"app": "web"}
	st.Spec.MinReadySeconds = 2
	st.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web", LabelRole: RoleStable}}
	st.Spec.Template.Labels = map[string]string{"app": "web", LabelRole: RoleStable, LabelVersion: "v1"}
	c, err := r.canaryFor(st, "v2", "deploy-web-v2")
	if err != nil {
		t.Fatal(err)
	}
	if c.Annotations[AnnDeploy] != "deploy-web-v2" {
		t.Errorf("canary annotations = %v, want the deploy's id", c.Annotations)
	}
	wantPod := map[string]string{"app": "web", LabelRole: RoleCanary, LabelVersion: "v2", LabelManagedBy: ManagedBy}
	if !reflect.DeepEqual(c.Spec.Template.Labels, wantPod) || c.Spec.Template.Spec.Containers[0].Image != "lab/web:v2" ||
		*c.Spec.Replicas != 2 || c.Spec.MinReadySeconds != 2 || c.Name != "web-canary" ||
		!reflect.DeepEqual(c.Spec.Selector.MatchLabels, map[string]string{"app": "web", LabelRole: RoleCanary}) ||
		c.Labels[LabelManagedBy] != ManagedBy || c.Labels[LabelVersion] != "v2" {
		t.Errorf("canary = %+v", c)
	}
	if st.Spec.Template.Spec.Containers[0].Image != "lab/web:v1" || st.Spec.Selector.MatchLabels[LabelRole] != RoleStable {
		t.Error("canaryFor changed the stable Deployment")
	}
	// A stable selector that would take the canary's pods is refused.
	st.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	if _, err := r.canaryFor(st, "v2", ""); err == nil || !strings.Contains(err.Error(), "would also select the canary's pods") {
		t.Errorf("overlapping selector: %v", err)
	}
	// Two containers and none named: refused, naming them.
	st.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web", LabelRole: RoleStable}}
	st.Spec.Template.Spec.Containers = append(st.Spec.Template.Spec.Containers, corev1.Container{Name: "proxy", Image: "envoy:1"})
	if _, err := r.canaryFor(st, "v2", ""); err == nil || !strings.Contains(err.Error(), "2 containers (web, proxy)") {
		t.Errorf("two containers: %v", err)
	}
}

func TestVersionsMustBeLabelValues(t *testing.T) {
	for v, ok := range map[string]bool{"v2": true, "1.4.0-rc.1": true, "v2_x": true, "": false, "-v2": false, "v2/x": false, strings.Repeat("a", 64): false} {
		if err := validVersion(v); (err == nil) != ok {
			t.Errorf("validVersion(%q) = %v", v, err)
		}
	}
}

func TestScopeSelector(t *testing.T) {
	base, _ := labels.Parse("app=web")
	sel, err := scopeSelector(base, map[string]string{"version": "v2", "role": "canary"})
	if err != nil {
		t.Fatal(err)
	}
	if got := sel.String(); got != "app=web,drillship.dev/role=canary,drillship.dev/version=v2" {
		t.Errorf("selector = %s", got)
	}
	if _, err := scopeSelector(base, map[string]string{"region": "east"}); err == nil || !strings.Contains(err.Error(), "want deployment, version or role") {
		t.Errorf("unknown scope: %v", err)
	}
}

func TestRestartsAndReadyRatio(t *testing.T) {
	pod := func(name string, ready bool, restarts int32, waiting string) corev1.Pod {
		st := corev1.ConditionFalse
		if ready {
			st = corev1.ConditionTrue
		}
		cs := corev1.ContainerStatus{Name: "web", RestartCount: restarts}
		if waiting != "" {
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: waiting}
		}
		return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.PodStatus{
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}, ContainerStatuses: []corev1.ContainerStatus{cs}}}
	}
	p := population{what: "pods app=web",
		deployments: []appsv1.Deployment{*relDeployment("web", "w:v1", 1, 1, 4, 4, 4, 3)},
		pods:        []corev1.Pod{pod("a", true, 0, ""), pod("b", true, 1, ""), pod("c", false, 5, "CrashLoopBackOff"), pod("d", true, 0, "")}}
	if s := restarts(p, 7); s.Value != 6 || s.Detail != "in CrashLoopBackOff: c" || s.At != 7 {
		t.Errorf("restarts = %+v", s)
	}
	if s := readyRatio(p, 7); s.Value != 0.75 || s.NoData {
		t.Errorf("ready_ratio = %+v", s)
	}
	var zero int32
	p.deployments[0].Spec.Replicas = &zero
	if s := readyRatio(p, 7); !s.NoData {
		t.Errorf("ready_ratio with nothing desired = %+v, want no data", s)
	}
}

func TestRules(t *testing.T) {
	rules, err := Rules(activities.CapRelease, map[string]any{"namespace": "web", "deployment": "web"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		if r.Namespace != "web" || r.Cluster {
			t.Errorf("rule %+v: want namespaced in web", r)
		}
		for _, v := range r.Verbs {
			if len(r.ResourceNames) > 0 && (v == "list" || v == "watch" || v == "create") {
				t.Errorf("rule %+v: %s cannot be narrowed by name", r, v)
			}
		}
	}
	if got := rules[1]; !reflect.DeepEqual(got.Verbs, []string{"delete"}) || !reflect.DeepEqual(got.ResourceNames, []string{"web-canary"}) {
		t.Errorf("delete rule = %+v, want the canary only", got)
	}
	sig, err := Rules(activities.CapSignals, map[string]any{"namespace": "web"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range sig {
		for _, v := range r.Verbs {
			if v != "get" && v != "list" {
				t.Errorf("signals rule %+v: %s is not read-only", r, v)
			}
		}
	}
	if _, err := Rules(activities.CapTraffic, nil); err == nil {
		t.Error("traffic rules: want an error")
	}
}

// jsonNames lists the settings a struct decodes, embedded ones included.
func jsonNames(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		switch {
		case f.Anonymous:
			out = append(out, jsonNames(f.Type)...)
		case f.IsExported():
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func fieldNames(fs []activities.Field) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Name)
	}
	slices.Sort(out)
	return out
}

// The declarations cannot drift from what the constructors decode.
func TestDeclarationsMatchConfigs(t *testing.T) {
	p := Provider()
	for capability, cfg := range map[string]any{activities.CapRelease: ReleaseConfig{}, activities.CapSignals: SignalsConfig{}} {
		d := p.Declare(capability)
		if got, want := fieldNames(d.Config), jsonNames(reflect.TypeOf(cfg)); !slices.Equal(got, want) {
			t.Errorf("%s: declared %v, decoded %v", capability, got, want)
		}
	}
	for _, f := range p.Declare(activities.CapRelease).Config {
		if f.Name == "preflight" {
			if got, want := fieldNames(f.Fields), jsonNames(reflect.TypeOf(PreflightConfig{})); !slices.Equal(got, want) {
				t.Errorf("preflight: declared %v, decoded %v", got, want)
			}
		}
	}
	var names []string
	for _, m := range p.Declare(activities.CapSignals).Metrics {
		names = append(names, m.Name)
	}
	if !slices.Equal(names, []string{MetricReadyRatio, MetricAvailableReplicas, MetricRestarts, MetricHPAAtMax}) {
		t.Errorf("declared metrics %v", names)
	}
	good := map[string]any{"namespace": "web", "deployment": "web", "canaryReplicas": 2, "rolloutTimeout": "2m",
		"preflight": map[string]any{"pdb": "refuse", "rolledOut": "off"}}
	if probs := activities.CheckConfig(p.Declare(activities.CapRelease).Config, good); len(probs) > 0 {
		t.Errorf("a good release config: %+v", probs)
	}
	if _, err := p.Release(good); err != nil {
		t.Errorf("a good release config: %v", err)
	}
	bad := map[string]any{"deployment": "web", "preflight": map[string]any{"pdb": "sometimes"}}
	if probs := activities.CheckConfig(p.Declare(activities.CapRelease).Config, bad); len(probs) != 1 || probs[0].Path != "preflight.pdb" {
		t.Errorf("a bad preflight mode: %+v", probs)
	}
}

var (
	_ activities.Release     = (*Release)(nil)
	_ activities.Preflighter = (*Release)(nil)
	_ activities.Signals     = (*Signals)(nil)
)

func TestStuckPod(t *testing.T) {
	pod := func(name string, reason string, restarts int32) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}}
		cs := corev1.ContainerStatus{Name: "web", RestartCount: restarts}
		if reason != "" {
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: reason, Message: "m"}
		}
		p.Status.ContainerStatuses = []corev1.ContainerStatus{cs}
		return p
	}
	if stuck, slow := stuckPod([]*corev1.Pod{pod("a", "", 0), pod("b", "ImagePullBackOff", 0), pod("c", "ContainerCreating", 0)}); stuck != "" || slow != "b ImagePullBackOff" {
		t.Errorf("slow pods: %q, %q", stuck, slow)
	}
	if stuck, _ := stuckPod([]*corev1.Pod{pod("a", "", 0), pod("b", "CrashLoopBackOff", 4)}); stuck != "pod b: container web is in CrashLoopBackOff (4 restarts): m" {
		t.Errorf("crash loop: %q", stuck)
	}
	gone := pod("d", "CrashLoopBackOff", 1)
	gone.DeletionTimestamp = &metav1.Time{}
	if stuck, _ := stuckPod([]*corev1.Pod{gone}); stuck != "" {
		t.Errorf("a terminating pod counted: %q", stuck)
	}
}
