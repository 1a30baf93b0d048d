package kubernetes

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/tools/cache"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/kubeconn"
)

// heartbeatEvery is how often a wait inside an activity heartbeats while
// nothing changes, well within any heartbeat timeout the workflows give.
const heartbeatEvery = 5 * time.Second

// rollout says where a Deployment's rollout stands against the generation
// a write returned: done (observed, every replica updated and available,
// which counts minReadySeconds, and no old ones left), or failed (its
// progress deadline passed), else what it waits for.
func rollout(d *appsv1.Deployment, gen int64) (done bool, failed, waiting string) {
	if d == nil {
		return false, "", "the Deployment to appear"
	}
	if d.Status.ObservedGeneration < max(gen, d.Generation) {
		return false, "", fmt.Sprintf("the controller to observe generation %d (at %d)", max(gen, d.Generation), d.Status.ObservedGeneration)
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
			return false, fmt.Sprintf("Deployment %s exceeded its progress deadline: %s", d.Name, c.Message), ""
		}
	}
	want := replicas(d)
	s := d.Status
	switch {
	case s.UpdatedReplicas < want:
		return false, "", fmt.Sprintf("%d of %d replicas updated", s.UpdatedReplicas, want)
	case s.Replicas > s.UpdatedReplicas:
		return false, "", fmt.Sprintf("%d old replicas to go", s.Replicas-s.UpdatedReplicas)
	case s.AvailableReplicas < s.UpdatedReplicas:
		return false, "", fmt.Sprintf("%d of %d updated replicas available", s.AvailableReplicas, s.UpdatedReplicas)
	}
	return true, "", ""
}

// stuckReasons are container waiting reasons no wait ends: the version
// itself is broken. (ImagePullBackOff is not one of them: a registry may
// come back; the progress deadline decides.)
var stuckReasons = map[string]bool{"CrashLoopBackOff": true, "InvalidImageName": true, "ErrImageNeverPull": true}

// stuckPod names a pod of the version whose container cannot start and
// why, "" when none; slow pods (image pulls, probes) are in waiting.
func stuckPod(pods []*corev1.Pod) (stuck, waiting string) {
	var slow []string
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		for _, cs := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
			w := cs.State.Waiting
			switch {
			case w == nil:
			case stuckReasons[w.Reason]:
				return fmt.Sprintf("pod %s: container %s is in %s (%d restarts): %s", p.Name, cs.Name, w.Reason, cs.RestartCount, w.Message), ""
			case w.Reason != "ContainerCreating" && w.Reason != "PodInitializing":
				slow = append(slow, p.Name+" "+w.Reason)
			}
		}
	}
	sort.Strings(slow)
	return "", strings.Join(slow, ", ")
}

// waitRollout watches Deployment name until its rollout of generation gen
// is done. A failed rollout (its progress deadline passed, or a pod of
// version that cannot start) is a permanent error; what stands when ctx
// ends is in the error.
func (r *Release) waitRollout(ctx context.Context, name string, gen int64, version, what string) error {
	f, err := r.conn.Informers()
	if err != nil {
		return err
	}
	ns, err := r.conn.Namespace()
	if err != nil {
		return err
	}
	deps, pods := f.Apps().V1().Deployments(), f.Core().V1().Pods()
	named := func(obj any) bool {
		d, ok := obj.(*appsv1.Deployment)
		return ok && d.Name == name
	}
	return watchUntil(ctx, r.conn, []source{{deps.Informer(), named}, {pods.Informer(), nil}}, func() (bool, string, error) {
		d, err := deps.Lister().Deployments(ns).Get(name)
		if apierrors.IsNotFound(err) {
			d, err = nil, nil
		}
		if err != nil {
			return false, "", err
		}
		done, failed, waiting := rollout(d, gen)
		if failed == "" && !done && d != nil && version != "" {
			sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
			if err != nil {
				return false, "", activities.Permanent(fmt.Errorf("kubernetes: Deployment %s: selector: %w", name, err))
			}
			req, err := labels.NewRequirement(LabelVersion, selection.Equals, []string{version})
			if err != nil {
				return false, "", activities.Permanent(err)
			}
			ps, err := pods.Lister().Pods(ns).List(sel.Add(*req))
			if err != nil {
				return false, "", err
			}
			stuck, slow := stuckPod(ps)
			failed = stuck
			if slow != "" {
				waiting += "; " + slow
			}
		}
		if failed != "" {
			return false, "", activities.Permanent(fmt.Errorf("kubernetes: %s failed: %s", what, failed))
		}
		return done, "Deployment " + name + ": " + waiting, nil
	}, what)
}

// waitPodsGone watches the namespace's pods until none matches sel.
func (r *Release) waitPodsGone(ctx context.Context, sel labels.Selector, what string) error {
	f, err := r.conn.Informers()
	if err != nil {
		return err
	}
	ns, err := r.conn.Namespace()
	if err != nil {
		return err
	}
	k, err := r.conn.Kube()
	if err != nil {
		return err
	}
	inf := f.Core().V1().Pods()
	return watchUntil(ctx, r.conn, []source{{inf.Informer(), nil}}, func() (bool, string, error) {
		pods, err := inf.Lister().Pods(ns).List(sel)
		if err != nil {
			return false, "", err
		}
		if len(pods) > 0 {
			return false, fmt.Sprintf("%d pods left (%s)", len(pods), sel), nil
		}
		// The cache may not have seen a pod created just before the
		// scale-down: the API server has the last word.
		live, err := k.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
		if err != nil {
			return false, "", kubeconn.Classify(err)
		}
		return len(live.Items) == 0, fmt.Sprintf("%d pods left (%s)", len(live.Items), sel), nil
	}, what+" to be gone")
}

// source is an informer whose events wake a wait: those on objects that
// concern it (all, when concerns is nil).
type source struct {
	inf      cache.SharedIndexInformer
	concerns func(any) bool
}

// watchUntil evaluates check on the informers' caches now and after every
// event of a source, until check says done or fails, or ctx ends. Inside
// an activity it heartbeats the wait's state meanwhile.
func watchUntil(ctx context.Context, conn *kubeconn.Conn, sources []source,
	check func() (done bool, state string, err error), what string) error {
	changed := make(chan struct{}, 1)
	for _, src := range sources {
		poke := func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if src.concerns == nil || src.concerns(obj) {
				select {
				case changed <- struct{}{}:
				default:
				}
			}
		}
		reg, err := src.inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: poke, UpdateFunc: func(_, obj any) { poke(obj) }, DeleteFunc: poke,
		})
		if err != nil {
			return fmt.Errorf("kubernetes: watching: %w", err)
		}
		defer func() { _ = src.inf.RemoveEventHandler(reg) }()
	}
	if err := conn.Start(ctx); err != nil {
		return err
	}
	beat := func(string) {}
	var tick <-chan time.Time
	if activity.IsActivity(ctx) {
		t := time.NewTicker(heartbeatEvery)
		defer t.Stop()
		tick = t.C
		beat = func(state string) { activity.RecordHeartbeat(ctx, "waiting for "+what+": "+state) }
	}
	for {
		done, state, err := check()
		if err != nil || done {
			return err
		}
		select {
		case <-changed:
		case <-tick:
			beat(state)
		case <-ctx.Done():
			return fmt.Errorf("kubernetes: waiting for %s: %s: %w", what, state, context.Cause(ctx))
		}
	}
}
