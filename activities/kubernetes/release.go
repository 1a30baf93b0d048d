package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.temporal.io/sdk/activity"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/kubeconn"
	"github.com/drillship/drillship/retention"
)

// Release drives the stable and the canary Deployment.
type Release struct {
	conn *kubeconn.Conn
	cfg  ReleaseConfig
}

// NewRelease validates the settings; it does no I/O.
func NewRelease(cfg map[string]any) (*Release, error) {
	c, conn, err := parseRelease(cfg)
	if err != nil {
		return nil, err
	}
	return &Release{conn: conn, cfg: c}, nil
}

func (r *Release) client() (kubernetes.Interface, string, error) {
	k, err := r.conn.Kube()
	if err != nil {
		return nil, "", err
	}
	ns, err := r.conn.Namespace()
	return k, ns, err
}

// stable reads the stable Deployment; it must exist.
func (r *Release) stable(ctx context.Context, k kubernetes.Interface, ns string) (*appsv1.Deployment, error) {
	d, err := k.AppsV1().Deployments(ns).Get(ctx, r.cfg.Deployment, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, activities.Permanent(fmt.Errorf("kubernetes: Deployment %s not found in namespace %s", r.cfg.Deployment, ns))
	}
	return d, kubeconn.Classify(err)
}

// canary reads the canary Deployment; nil when there is none.
func (r *Release) canary(ctx context.Context, k kubernetes.Interface, ns string) (*appsv1.Deployment, error) {
	d, err := k.AppsV1().Deployments(ns).Get(ctx, r.cfg.Canary, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return d, kubeconn.Classify(err)
}

// containerIndex picks the versioned container of a pod template.
func containerIndex(name string, owner string, t *corev1.PodTemplateSpec) (int, error) {
	cs := t.Spec.Containers
	if name == "" {
		if len(cs) == 1 {
			return 0, nil
		}
		names := make([]string, len(cs))
		for i, c := range cs {
			names[i] = c.Name
		}
		return -1, activities.Permanent(fmt.Errorf("kubernetes: %s has %d containers (%s); set config.container to the one whose image tag is the version",
			owner, len(cs), strings.Join(names, ", ")))
	}
	for i, c := range cs {
		if c.Name == name {
			return i, nil
		}
	}
	return -1, activities.Permanent(fmt.Errorf("kubernetes: %s has no container %q", owner, name))
}

// versionOf is the image tag of the versioned container ("" if none).
func (r *Release) versionOf(t *corev1.PodTemplateSpec) string {
	i, err := containerIndex(r.cfg.Container, "", t)
	if err != nil {
		return ""
	}
	_, tag := splitImage(t.Spec.Containers[i].Image)
	return tag
}

// serviceName is what the Deployment says it serves.
func serviceName(d *appsv1.Deployment) string {
	for _, k := range []string{"app.kubernetes.io/name", "app"} {
		if v := d.Labels[k]; v != "" {
			return v
		}
	}
	return d.Name
}

func replicas(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

// history lists the ReplicaSets the Deployment owns, oldest revision first.
func history(ctx context.Context, k kubernetes.Interface, d *appsv1.Deployment) ([]appsv1.ReplicaSet, error) {
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return nil, activities.Permanent(fmt.Errorf("kubernetes: Deployment %s: selector: %w", d.Name, err))
	}
	list, err := k.AppsV1().ReplicaSets(d.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, kubeconn.Classify(err)
	}
	var out []appsv1.ReplicaSet
	for _, rs := range list.Items {
		if ref := metav1.GetControllerOf(&rs); ref != nil && ref.UID == d.UID {
			out = append(out, rs)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return revision(&out[i]) < revision(&out[j]) })
	return out, nil
}

func revision(rs *appsv1.ReplicaSet) int64 {
	n, _ := strconv.ParseInt(rs.Annotations[annRevision], 10, 64)
	return n
}

// firstRevision is the revision a ReplicaSet first had: the controller
// moves an old ReplicaSet to a new revision when its template comes back,
// and keeps the ones it had in revision-history.
func firstRevision(rs *appsv1.ReplicaSet) int64 {
	first := revision(rs)
	for _, s := range strings.Split(rs.Annotations["deployment.kubernetes.io/revision-history"], ",") {
		if n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64); err == nil && n > 0 && n < first {
			first = n
		}
	}
	return first
}

// State reads both Deployments and the stable one's ReplicaSet history.
func (r *Release) State(ctx context.Context) (activities.ReleaseState, error) {
	k, ns, err := r.client()
	if err != nil {
		return activities.ReleaseState{}, err
	}
	st, err := r.stable(ctx, k, ns)
	if err != nil {
		return activities.ReleaseState{}, err
	}
	if _, err := containerIndex(r.cfg.Container, "Deployment "+st.Name, &st.Spec.Template); err != nil {
		return activities.ReleaseState{}, err
	}
	can, err := r.canary(ctx, k, ns)
	if err != nil {
		return activities.ReleaseState{}, err
	}
	rss, err := history(ctx, k, st)
	if err != nil {
		return activities.ReleaseState{}, err
	}
	return r.state(st, can, rss), nil
}

func (r *Release) state(st, can *appsv1.Deployment, rss []appsv1.ReplicaSet) activities.ReleaseState {
	out := activities.ReleaseState{Service: serviceName(st), Stable: r.versionOf(&st.Spec.Template), Running: []string{}, Artifacts: []string{}}
	if st.Status.ReadyReplicas > 0 {
		out.Running = append(out.Running, out.Stable)
	}
	// A canary counts as running while it has pods or wants them, ready
	// or not: Stop must still be called for a canary that never got ready.
	if can != nil && (replicas(can) > 0 || can.Status.Replicas > 0) {
		if v := r.versionOf(&can.Spec.Template); v != "" && !slices.Contains(out.Running, v) {
			out.Running = append(out.Running, v)
		}
	}
	sort.Strings(out.Running)
	// A version whose template came back (a re-promotion) moves to its
	// latest revision: walking newest first and reversing keeps that one.
	for i := len(rss) - 1; i >= 0; i-- {
		if v := r.versionOf(&rss[i].Spec.Template); v != "" && !slices.Contains(out.Artifacts, v) {
			out.Artifacts = append(out.Artifacts, v)
		}
	}
	slices.Reverse(out.Artifacts)
	return out
}

// AnnDeploy names, on the canary and the stable Deployment, the deploy
// (workflow id) that last deployed or promoted them.
const AnnDeploy = "drillship.dev/deploy"

// deployID is the workflow id of the activity running ctx ("" outside one).
func deployID(ctx context.Context) string {
	if !activity.IsActivity(ctx) {
		return ""
	}
	return activity.GetInfo(ctx).WorkflowExecution.ID
}

// canaryFor builds the canary Deployment of version from the stable one,
// marked with the deploy that asks for it.
func (r *Release) canaryFor(st *appsv1.Deployment, version, deploy string) (*appsv1.Deployment, error) {
	ci, err := containerIndex(r.cfg.Container, "Deployment "+st.Name, &st.Spec.Template)
	if err != nil {
		return nil, err
	}
	tmpl := st.Spec.Template.DeepCopy()
	if tmpl.Labels == nil {
		tmpl.Labels = map[string]string{}
	}
	tmpl.Labels[LabelRole] = RoleCanary
	tmpl.Labels[LabelVersion] = version
	tmpl.Labels[LabelManagedBy] = ManagedBy
	tmpl.Spec.Containers[ci].Image = withTag(tmpl.Spec.Containers[ci].Image, version)

	sel := st.Spec.Selector.DeepCopy()
	if sel == nil {
		return nil, activities.Permanent(fmt.Errorf("kubernetes: Deployment %s has no selector", st.Name))
	}
	if sel.MatchLabels == nil {
		sel.MatchLabels = map[string]string{}
	}
	sel.MatchLabels[LabelRole] = RoleCanary
	if _, ok := sel.MatchLabels[LabelVersion]; ok {
		sel.MatchLabels[LabelVersion] = version
	}
	// Two Deployments whose selectors overlap fight over the pods: the
	// stable one must not select the canary's.
	stSel, err := metav1.LabelSelectorAsSelector(st.Spec.Selector)
	if err != nil {
		return nil, activities.Permanent(fmt.Errorf("kubernetes: Deployment %s: selector: %w", st.Name, err))
	}
	if stSel.Matches(labels.Set(tmpl.Labels)) {
		return nil, activities.Permanent(fmt.Errorf("kubernetes: the selector of Deployment %s (%s) would also select the canary's pods; add %s: %s to its selector and pod template",
			st.Name, stSel, LabelRole, RoleStable))
	}
	lbl := maps.Clone(st.Labels)
	if lbl == nil {
		lbl = map[string]string{}
	}
	lbl[LabelRole], lbl[LabelVersion], lbl[LabelManagedBy] = RoleCanary, version, ManagedBy
	n := r.cfg.canaryReplicas
	var history int32 // its old ReplicaSets are no artifacts: the stable's history is
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: r.cfg.Canary, Namespace: st.Namespace, Labels: lbl, Annotations: deployAnn(nil, deploy)},
		Spec: appsv1.DeploymentSpec{
			Replicas: &n, Selector: sel, Template: *tmpl,
			Strategy: st.Spec.Strategy, MinReadySeconds: st.Spec.MinReadySeconds,
			ProgressDeadlineSeconds: st.Spec.ProgressDeadlineSeconds, RevisionHistoryLimit: &history,
		},
	}, nil
}

func managed(d *appsv1.Deployment) bool { return d.Labels[LabelManagedBy] == ManagedBy }

// Settles: Deploy and Promote wait for their rollouts and cost nothing when
// called again, while State names a version before it is ready; a retry
// after a crash calls them again (activities.Settling).
func (r *Release) Settles() bool { return true }

// Deploy creates or updates the canary Deployment to run version and waits
// until its rollout is complete and its replicas available.
func (r *Release) Deploy(ctx context.Context, version string) error {
	if err := validVersion(version); err != nil {
		return err
	}
	k, ns, err := r.client()
	if err != nil {
		return err
	}
	var gen int64
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		st, err := r.stable(ctx, k, ns)
		if err != nil {
			return err
		}
		want, err := r.canaryFor(st, version, deployID(ctx))
		if err != nil {
			return err
		}
		cur, err := r.canary(ctx, k, ns)
		if err != nil {
			return err
		}
		if cur == nil {
			got, err := k.AppsV1().Deployments(ns).Create(ctx, want, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) { // created since we looked: read it again
				return apierrors.NewConflict(schema.GroupResource{Group: "apps", Resource: "deployments"}, want.Name, err)
			}
			if err != nil {
				return kubeconn.Classify(err)
			}
			gen = got.Generation
			return nil
		}
		if !managed(cur) {
			return activities.Permanent(fmt.Errorf("kubernetes: Deployment %s exists and is not drillship's (no %s=%s label); rename config.canary or remove it",
				cur.Name, LabelManagedBy, ManagedBy))
		}
		if !equality.Semantic.DeepEqual(cur.Spec.Selector, want.Spec.Selector) {
			return activities.Permanent(fmt.Errorf("kubernetes: Deployment %s's selector (%s) is not the one the stable Deployment implies (%s) and cannot change; delete %s",
				cur.Name, metav1.FormatLabelSelector(cur.Spec.Selector), metav1.FormatLabelSelector(want.Spec.Selector), cur.Name))
		}
		if canaryCurrent(cur, want) {
			gen = cur.Generation
			return nil
		}
		next := cur.DeepCopy()
		next.Labels = want.Labels
		next.Annotations = deployAnn(next.Annotations, want.Annotations[AnnDeploy])
		next.Spec.Replicas, next.Spec.Template = want.Spec.Replicas, want.Spec.Template
		next.Spec.MinReadySeconds, next.Spec.ProgressDeadlineSeconds = want.Spec.MinReadySeconds, want.Spec.ProgressDeadlineSeconds
		next.Spec.RevisionHistoryLimit = want.Spec.RevisionHistoryLimit
		got, err := updateDeployment(ctx, k, ns, next)
		if err != nil {
			return err
		}
		gen = got.Generation
		return nil
	})
	if err != nil {
		return err
	}
	return r.waitRollout(ctx, r.cfg.Canary, gen, version, "the canary "+version)
}

// canaryCurrent reports whether the canary already is what Deploy wants.
func canaryCurrent(cur, want *appsv1.Deployment) bool {
	return replicas(cur) == replicas(want) &&
		equality.Semantic.DeepEqual(cur.Spec.Template, want.Spec.Template) &&
		cur.Spec.MinReadySeconds == want.Spec.MinReadySeconds &&
		(want.Annotations[AnnDeploy] == "" || cur.Annotations[AnnDeploy] == want.Annotations[AnnDeploy]) &&
		cur.Labels[LabelVersion] == want.Labels[LabelVersion]
}

// Promote rolls the stable Deployment onto version and waits for its
// rollout within rolloutTimeout. A rollout that fails or does not finish
// in time is set back to the version it replaced, so that the run's
// rollback finds the stable Deployment as it was.
func (r *Release) Promote(ctx context.Context, version string) error {
	if err := validVersion(version); err != nil {
		return err
	}
	k, ns, err := r.client()
	if err != nil {
		return err
	}
	var gen int64
	var prev string
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		st, err := r.stable(ctx, k, ns)
		if err != nil {
			return err
		}
		ci, err := containerIndex(r.cfg.Container, "Deployment "+st.Name, &st.Spec.Template)
		if err != nil {
			return err
		}
		prev = r.versionOf(&st.Spec.Template)
		if prev == version && st.Spec.Template.Labels[LabelVersion] == version && !slices.Contains(failedVersions(st), version) {
			gen = st.Generation
			return nil
		}
		next := setVersion(st, ci, version)
		next.Annotations = deployAnn(next.Annotations, deployID(ctx))
		got, err := updateDeployment(ctx, k, ns, next)
		if err != nil {
			return err
		}
		gen = got.Generation
		return nil
	})
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, r.cfg.rolloutTimeout)
	defer cancel()
	err = r.waitRollout(wctx, r.cfg.Deployment, gen, version, "the promotion to "+version)
	if err == nil || ctx.Err() != nil {
		return err // done, or the activity itself ends: a retry waits again
	}
	back, berr := r.setBack(ctx, k, ns, version, prev)
	if berr != nil {
		return activities.Permanent(fmt.Errorf("%w; setting Deployment %s back failed: %v", err, r.cfg.Deployment, berr))
	}
	if back == "" {
		return activities.Permanent(fmt.Errorf("%w; no earlier version to set Deployment %s back to", err, r.cfg.Deployment))
	}
	return activities.Permanent(fmt.Errorf("%w; Deployment %s was set back to %s (its rollout goes on)", err, r.cfg.Deployment, back))
}

// annFailed lists, on the stable Deployment, the versions whose promotion
// failed and was set back, so that their ReplicaSets, which look like any
// other revision, are not taken for promotions (one of them would pass for
// the rollback target).
const annFailed = "drillship.dev/failed-promotions"

// maxFailed bounds annFailed.
const maxFailed = 20

func failedVersions(d *appsv1.Deployment) []string {
	if v := d.Annotations[annFailed]; v != "" {
		return strings.Split(v, ",")
	}
	return nil
}

// setFailed adds (or removes) version to the failed promotions of d.
func setFailed(d *appsv1.Deployment, version string, failed bool) {
	list := slices.DeleteFunc(failedVersions(d), func(v string) bool { return v == version })
	if failed {
		list = append(list, version)
	}
	if len(list) > maxFailed {
		list = list[len(list)-maxFailed:]
	}
	if len(list) == 0 {
		delete(d.Annotations, annFailed)
		return
	}
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	d.Annotations[annFailed] = strings.Join(list, ",")
}

// deployAnn returns ann with AnnDeploy set to deploy (unchanged when
// deploy is empty).
func deployAnn(ann map[string]string, deploy string) map[string]string {
	if deploy == "" {
		return ann
	}
	if ann == nil {
		ann = map[string]string{}
	}
	ann[AnnDeploy] = deploy
	return ann
}

// setVersion returns a copy of d running version.
func setVersion(d *appsv1.Deployment, ci int, version string) *appsv1.Deployment {
	next := d.DeepCopy()
	setFailed(next, version, false)
	c := &next.Spec.Template.Spec.Containers[ci]
	c.Image = withTag(c.Image, version)
	if next.Spec.Template.Labels == nil {
		next.Spec.Template.Labels = map[string]string{}
	}
	next.Spec.Template.Labels[LabelVersion] = version
	if _, ok := next.Labels[LabelVersion]; ok {
		next.Labels[LabelVersion] = version
	}
	return next
}

// setBack rolls the stable Deployment from version back to the one it
// replaced: prev when it is another, else the newest other version of its
// history (a retried Promote found version already set). It returns the
// version set back to, "" when there is none.
func (r *Release) setBack(ctx context.Context, k kubernetes.Interface, ns, version, prev string) (string, error) {
	var back string
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		st, err := r.stable(ctx, k, ns)
		if err != nil {
			return err
		}
		if r.versionOf(&st.Spec.Template) != version {
			back = "" // someone else moved it on: leave it
			return nil
		}
		back = prev
		if back == version {
			back = ""
			rss, err := history(ctx, k, st)
			if err != nil {
				return err
			}
			for i := len(rss) - 1; i >= 0 && back == ""; i-- {
				if v := r.versionOf(&rss[i].Spec.Template); v != version {
					back = v
				}
			}
		}
		if back == "" {
			return nil
		}
		ci, err := containerIndex(r.cfg.Container, "Deployment "+st.Name, &st.Spec.Template)
		if err != nil {
			return err
		}
		next := setVersion(st, ci, back)
		setFailed(next, version, true)
		_, err = updateDeployment(ctx, k, ns, next)
		return err
	})
	return back, err
}

// Stop scales the canary Deployment to zero, waits until its pods are
// gone and deletes it, when it runs version. Another version's canary and
// the stable Deployment are left alone.
func (r *Release) Stop(ctx context.Context, version string) error {
	k, ns, err := r.client()
	if err != nil {
		return err
	}
	var can *appsv1.Deployment
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if can, err = r.canary(ctx, k, ns); err != nil || can == nil {
			return err
		}
		if r.versionOf(&can.Spec.Template) != version {
			can = nil
			return nil
		}
		if !managed(can) {
			return activities.Permanent(fmt.Errorf("kubernetes: Deployment %s is not drillship's (no %s=%s label); not stopping it",
				can.Name, LabelManagedBy, ManagedBy))
		}
		if replicas(can) == 0 {
			return nil
		}
		next := can.DeepCopy()
		var zero int32
		next.Spec.Replicas = &zero
		got, err := updateDeployment(ctx, k, ns, next)
		if err != nil {
			return err
		}
		can = got
		return nil
	})
	if err != nil || can == nil {
		return err
	}
	sel, err := metav1.LabelSelectorAsSelector(can.Spec.Selector)
	if err != nil {
		return activities.Permanent(fmt.Errorf("kubernetes: Deployment %s: selector: %w", can.Name, err))
	}
	if err := r.waitPodsGone(ctx, sel, "the canary "+version+"'s pods"); err != nil {
		return err
	}
	bg := metav1.DeletePropagationBackground
	err = k.AppsV1().Deployments(ns).Delete(ctx, can.Name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &can.UID}, PropagationPolicy: &bg})
	switch {
	case err == nil, apierrors.IsNotFound(err):
		return nil
	case apierrors.IsConflict(err): // replaced since we looked: a retry looks again
		return fmt.Errorf("kubernetes: Deployment %s changed while stopping: %w", can.Name, err)
	}
	return kubeconn.Classify(err)
}

// Prune deletes the stable Deployment's ReplicaSets that package retention
// removes and that run no pods, and returns their versions. The version
// the stable Deployment runs is what serves, whatever current says; both
// are kept with the rollback target.
func (r *Release) Prune(ctx context.Context, current string, keep int) ([]string, error) {
	if keep < 1 {
		return nil, activities.Permanent(errors.New("kubernetes: keep must be at least 1"))
	}
	k, ns, err := r.client()
	if err != nil {
		return nil, err
	}
	st, err := r.stable(ctx, k, ns)
	if err != nil {
		return nil, err
	}
	rss, err := history(ctx, k, st)
	if err != nil {
		return nil, err
	}
	serving := r.versionOf(&st.Spec.Template)
	_, removed := retention.Plan(r.artifacts(rss, current, failedVersions(st)), serving, keep)
	deleted := []string{}
	for _, v := range removed {
		n := 0
		for i := range rss {
			rs := &rss[i]
			if r.versionOf(&rs.Spec.Template) != v || rsReplicas(rs) > 0 {
				continue
			}
			gone, err := deleteIdle(ctx, k, st, *rs)
			if err != nil {
				return deleted, err
			}
			if gone {
				n++
			}
		}
		if n > 0 {
			deleted = append(deleted, v)
		}
	}
	return deleted, nil
}

// deleteIdle deletes rs if it still runs nothing: the delete is
// conditional on the version read, and when the controller changed it
// since (an annotation, or a scale-up), it is read again and judged anew.
func deleteIdle(ctx context.Context, k kubernetes.Interface, d *appsv1.Deployment, rs appsv1.ReplicaSet) (bool, error) {
	for attempt := 0; ; attempt++ {
		err := k.AppsV1().ReplicaSets(rs.Namespace).Delete(ctx, rs.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &rs.UID, ResourceVersion: &rs.ResourceVersion}})
		switch {
		case err == nil, apierrors.IsNotFound(err):
			return true, nil
		case !apierrors.IsConflict(err):
			return false, kubeconn.Classify(err)
		case attempt == 3:
			return false, fmt.Errorf("kubernetes: ReplicaSet %s keeps changing; not deleted: %w", rs.Name, err)
		}
		rss, err := history(ctx, k, d)
		if err != nil {
			return false, err
		}
		i := slices.IndexFunc(rss, func(x appsv1.ReplicaSet) bool { return x.UID == rs.UID })
		if i < 0 {
			return true, nil
		}
		if rs = rss[i]; rsReplicas(&rs) > 0 {
			return false, nil // scaled up since: it runs again
		}
	}
}

// artifacts describes the ReplicaSet history to package retention, one
// artifact per version: every ReplicaSet of the stable Deployment served as
// stable, so each is a promotion, ordered by its (latest) revision, except
// the ones whose promotion failed and was set back.
func (r *Release) artifacts(rss []appsv1.ReplicaSet, current string, failed []string) []retention.Artifact {
	byVersion := map[string]*retention.Artifact{}
	var order []string
	for i := range rss {
		rs := &rss[i]
		v := r.versionOf(&rs.Spec.Template)
		if v == "" {
			continue
		}
		a, ok := byVersion[v]
		if !ok {
			a = &retention.Artifact{Version: v, Deployed: firstRevision(rs)}
			byVersion[v] = a
			order = append(order, v)
		}
		a.Deployed = min(a.Deployed, firstRevision(rs))
		a.Promoted = max(a.Promoted, revision(rs))
		a.Running = a.Running || rsReplicas(rs) > 0 || v == current
	}
	out := make([]retention.Artifact, 0, len(order))
	for _, v := range order {
		a := *byVersion[v]
		if slices.Contains(failed, v) && v != current {
			a.Promoted = 0 // set back: it never served as stable
		}
		out = append(out, a)
	}
	return out
}

// rsReplicas is how many pods a ReplicaSet wants or still has.
func rsReplicas(rs *appsv1.ReplicaSet) int32 {
	want := int32(1)
	if rs.Spec.Replicas != nil {
		want = *rs.Spec.Replicas
	}
	return max(want, rs.Status.Replicas)
}

// ScaleCanary gives the canary Deployment the replicas to carry weight
// percent of what the stable Deployment carries (at least canaryReplicas)
// and waits until they are available, before the traffic is shifted: a
// canary on one pod must not take the whole route. It never scales down.
// (activities.CanaryScaler)
func (r *Release) ScaleCanary(ctx context.Context, version string, weight int) (int, error) {
	if weight < 0 || weight > 100 {
		return 0, activities.Permanent(fmt.Errorf("kubernetes: canary weight %d: want 0..100", weight))
	}
	k, ns, err := r.client()
	if err != nil {
		return 0, err
	}
	var gen int64
	var want int32
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		st, err := r.stable(ctx, k, ns)
		if err != nil {
			return err
		}
		want = max(r.cfg.canaryReplicas, int32((int(replicas(st))*weight+99)/100))
		cur, err := r.canary(ctx, k, ns)
		if err != nil {
			return err
		}
		if cur == nil || cur.Spec.Template.Labels[LabelVersion] != version {
			return activities.Permanent(fmt.Errorf("kubernetes: Deployment %s does not run the canary %s", r.cfg.Canary, version))
		}
		if cur.Spec.Replicas != nil && *cur.Spec.Replicas >= want {
			want, gen = *cur.Spec.Replicas, cur.Generation
			return nil
		}
		next := cur.DeepCopy()
		next.Spec.Replicas = &want
		got, err := updateDeployment(ctx, k, ns, next)
		if err != nil {
			return err
		}
		gen = got.Generation
		return nil
	})
	if err != nil {
		return 0, err
	}
	return int(want), r.waitRollout(ctx, r.cfg.Canary, gen, version, fmt.Sprintf("the canary %s at %d replicas", version, want))
}

// updateDeployment writes d. A conflict comes back as it is, for
// RetryOnConflict to read again; any other error is classified.
func updateDeployment(ctx context.Context, k kubernetes.Interface, ns string, d *appsv1.Deployment) (*appsv1.Deployment, error) {
	got, err := k.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{})
	if err != nil && !apierrors.IsConflict(err) {
		return nil, kubeconn.Classify(err)
	}
	return got, err
}
