package kubernetes

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/client-go/util/retry"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/kubeconn"
)

// Fault kinds.
const (
	FaultPodKill     = "pod_kill"
	FaultNodeDrain   = "node_drain"
	FaultZoneDown    = "zone_down"
	FaultScaleToZero = "scale_to_zero"
)

var faultKinds = []string{FaultNodeDrain, FaultPodKill, FaultScaleToZero, FaultZoneDown}

// What faults write on the objects they change.
//
// AnnFaultOwner and AnnFaultKind are for people and selection: the owners
// (drill ids) and kinds of the faults in effect on the object, comma
// separated. The record of each kind (annRecord + kind, JSON) is what Stop
// reads: its owners and what the object was before, so that a restore puts
// back exactly that, and only when the last owner of the fault stops it
// (two drills taking the same zone down do not undo each other).
const (
	AnnFaultOwner = "drillship.dev/fault-owner"
	AnnFaultKind  = "drillship.dev/fault-kind"
	annRecord     = "fault.drillship.dev/"
	// annOriginal holds a node's state before the first fault touched it.
	annOriginal = "fault.drillship.dev/original"
	// annStopped marks a pod_kill record whose fault is over.
	annStopped = "fault.drillship.dev/stopped"

	// TaintZoneDown keeps pods off (and evicts them from) a downed zone.
	TaintZoneDown = "drillship.dev/zone-down"
	// AnnKwokNode is the annotation kwok manages nodes by in the lab:
	// without it nobody renews the node's lease and it goes NotReady.
	AnnKwokNode = "kwok.x-k8s.io/node"
	LabelZone   = "topology.kubernetes.io/zone"

	labelFaultKind = "drillship.dev/fault-kind"
	podKillPrefix  = "drillship-pod-kill-"
)

// faultBackoff spaces conflict retries over about five seconds: status writers
// (the node lifecycle controller, kwok, a route's controller) bump the
// resourceVersion that every write here is conditioned on.
var faultBackoff = wait.Backoff{Steps: 10, Duration: 50 * time.Millisecond, Factor: 1.5, Jitter: 0.1}

// FaultsConfig is the faults settings.
//
//	namespace: web
//	kinds: [zone_down, pod_kill]   # optional: the kinds this target injects (least privilege); default all
type FaultsConfig struct {
	kubeconn.Settings
	Kinds []string `json:"kinds,omitempty"`
}

// Faults injects and stops the kubernetes faults.
type Faults struct {
	Conn  *kubeconn.Conn
	Kinds []string
}

func newFaults(cfg map[string]any) (activities.Faults, error) { return NewFaults(cfg) }

// NewFaults validates the settings; it does no I/O.
func NewFaults(cfg map[string]any) (*Faults, error) {
	var c FaultsConfig
	if err := activities.DecodeConfig(cfg, &c); err != nil {
		return nil, err
	}
	conn, err := kubeconn.New(c.Settings)
	if err != nil {
		return nil, err
	}
	kinds := faultKinds
	if len(c.Kinds) > 0 {
		kinds = nil
		for _, k := range c.Kinds {
			if !slices.Contains(faultKinds, k) {
				return nil, fmt.Errorf("config: kinds: %q: allowed %s", k, strings.Join(faultKinds, ", "))
			}
			if !slices.Contains(kinds, k) {
				kinds = append(kinds, k)
			}
		}
		sort.Strings(kinds)
	}
	return &Faults{Conn: conn, Kinds: kinds}, nil
}

func declareFaults() activities.Declaration {
	return activities.Declaration{
		Config: kubeconn.With(activities.Field{Name: "kinds", Type: activities.TypeList, Enum: faultKinds,
			Doc: "the fault kinds this target injects (the RBAC rules and the preflight cover these only); default all"}),
		FaultsAllowed: allowedKinds,
		Faults: []activities.FaultDecl{
			{Kind: FaultPodKill, Doc: "deletes pods of a selector in the namespace (nothing to undo: their controllers replace them)", Params: []activities.Field{
				{Name: "selector", Type: activities.TypeString, Required: true, Doc: "label selector, e.g. app=web"},
				{Name: "count", Type: activities.TypeInt, Min: activities.Num(1), Doc: "pods to delete (or percent; default 1)"},
				{Name: "percent", Type: activities.TypeInt, Min: activities.Num(1), Max: activities.Num(100), Doc: "share of the matching pods to delete, rounded up (or count)"},
			}},
			{Kind: FaultNodeDrain, Doc: "cordons the node and evicts its pods through the Eviction API (PodDisruptionBudgets respected; blocked pods are reported with their PDB); stop uncordons", Params: []activities.Field{
				{Name: "node", Type: activities.TypeString, Required: true, Doc: "the node"},
			}},
			{Kind: FaultZoneDown, Doc: "cordons every node of the zone and taints it " + TaintZoneDown + "=<zone>:NoExecute (its pods are evicted, nothing is scheduled there); stop removes exactly that and waits for the nodes to be Ready", Params: []activities.Field{
				{Name: "zone", Type: activities.TypeString, Required: true, Doc: "value of " + LabelZone},
				{Name: "heartbeat", Type: activities.TypeString, Enum: []string{"kwok"}, Doc: "kwok: also remove the nodes' " + AnnKwokNode + " annotation so that they go NotReady (kwok nodes only)"},
			}},
			{Kind: FaultScaleToZero, Doc: "scales a Deployment in the namespace to 0, recording its replicas; stop scales it back", Params: []activities.Field{
				{Name: "deployment", Type: activities.TypeString, Required: true, Doc: "the Deployment (a dependency)"},
			}},
		},
	}
}

// allowedKinds are the kinds config.kinds lets a target inject, so that
// `drill validate` refuses a step its inject would refuse. Nil (all kinds)
// when the setting is absent or not a list of known kinds: the settings
// check reports a bad one.
func allowedKinds(cfg map[string]any) ([]string, string) {
	var given []string
	switch l := cfg["kinds"].(type) {
	case []string:
		given = l
	case []any:
		for _, v := range l {
			k, ok := v.(string)
			if !ok {
				return nil, ""
			}
			given = append(given, k)
		}
	}
	var kinds []string
	for _, k := range given {
		if !slices.Contains(faultKinds, k) {
			return nil, ""
		}
		if !slices.Contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	sort.Strings(kinds)
	return kinds, "config.kinds"
}

func faultRules(cfg map[string]any) ([]activities.Rule, error) {
	f, err := NewFaults(cfg)
	if err != nil {
		return nil, err
	}
	return f.rules(), nil
}

// rules are the grants of the configured kinds, one rule per resource
// group and scope with the union of the verbs.
func (f *Faults) rules() []activities.Rule {
	ns := f.Conn.Settings.Namespace
	type key struct {
		group, resource string
		cluster         bool
	}
	verbs := map[key][]string{}
	var order []key
	add := func(group, resource string, cluster bool, vs ...string) {
		k := key{group, resource, cluster}
		if _, ok := verbs[k]; !ok {
			order = append(order, k)
		}
		for _, v := range vs {
			if !slices.Contains(verbs[k], v) {
				verbs[k] = append(verbs[k], v)
			}
		}
	}
	for _, kind := range f.Kinds {
		switch kind {
		case FaultPodKill:
			add("", "pods", false, "list", "delete")
			add("", "configmaps", false, "get", "list", "create", "update")
		case FaultNodeDrain:
			add("", "nodes", true, "get", "list", "watch", "patch")
			add("", "pods", true, "list")
			add("", "pods/eviction", true, "create")
			add("policy", "poddisruptionbudgets", true, "list")
		case FaultZoneDown:
			add("", "nodes", true, "get", "list", "watch", "patch")
		case FaultScaleToZero:
			add("apps", "deployments", false, "get", "list", "patch")
		}
	}
	out := make([]activities.Rule, 0, len(order))
	for _, k := range order {
		r := activities.Rule{APIGroups: []string{k.group}, Resources: []string{k.resource}, Verbs: verbs[k], Cluster: k.cluster}
		if !k.cluster {
			r.Namespace = ns
		}
		out = append(out, r)
	}
	return out
}

// Preflight asks the API server whether the worker may do what the
// configured kinds do: a denied verb refuses the run before any inject.
func (f *Faults) Preflight(ctx context.Context) ([]activities.Finding, error) {
	return f.Conn.Access(ctx, f.rules())
}

func (f *Faults) clients() (kubernetes.Interface, string, error) {
	kube, err := f.Conn.Kube()
	if err != nil {
		return nil, "", err
	}
	ns, err := f.Conn.Namespace()
	if err != nil {
		return nil, "", err
	}
	return kube, ns, nil
}

func (f *Faults) allowed(kind string) error {
	if !slices.Contains(faultKinds, kind) {
		return activities.Permanent(fmt.Errorf("kubernetes: fault kind %q: allowed %s", kind, strings.Join(faultKinds, ", ")))
	}
	if !slices.Contains(f.Kinds, kind) {
		return activities.Permanent(fmt.Errorf("kubernetes: fault kind %q is not in config.kinds (%s)", kind, strings.Join(f.Kinds, ", ")))
	}
	return nil
}

func param(ft activities.Fault, name string) (string, error) {
	v := ft.Params[name]
	if v == "" {
		return "", activities.Permanent(fmt.Errorf("kubernetes: fault %s: param %s is required", ft.Kind, name))
	}
	return v, nil
}

// Inject puts the fault in under its owner. A retry finds the owner's
// record and finishes what is left (evictions, pod deletions).
func (f *Faults) Inject(ctx context.Context, ft activities.Fault) (string, error) {
	if err := f.allowed(ft.Kind); err != nil {
		return "", err
	}
	switch ft.Kind {
	case FaultPodKill:
		return f.podKill(ctx, ft)
	case FaultNodeDrain:
		return f.nodeDrain(ctx, ft)
	case FaultZoneDown:
		return f.zoneDown(ctx, ft)
	default:
		return f.scaleToZero(ctx, ft)
	}
}

// Stop ends the owner's fault: the one the handle names when it is the
// owner's, else the owner's faults of this kind (and target, when the
// params name one) found by their records. Node and Deployment records go
// when their last owner stops, so a stop retried after it restored
// everything reports NotFound ("already over"); pod_kill keeps its record,
// marked stopped.
//
// A kind these settings cannot inject is NotFound: the drill's inject ran
// on the same settings and was refused before it changed anything, and
// failing here would make its restore ask for a check by hand.
func (f *Faults) Stop(ctx context.Context, ft activities.Fault, handle string) (activities.StopResult, error) {
	if f.allowed(ft.Kind) != nil {
		return activities.StopResult{NotFound: true}, nil
	}
	switch ft.Kind {
	case FaultPodKill:
		return f.stopPodKill(ctx, ft, handle)
	case FaultScaleToZero:
		return f.stopScale(ctx, ft, handle)
	default:
		return f.stopNodes(ctx, ft, handle)
	}
}

// ---- records on annotations ----

// record is one fault kind's record on an object.
type record struct {
	Owners []string `json:"owners"`
	// zone_down
	Zone      string `json:"zone,omitempty"`
	Heartbeat string `json:"heartbeat,omitempty"`
	// scale_to_zero: spec.replicas before
	Replicas *int32 `json:"replicas,omitempty"`
	// pod_kill
	Selector string   `json:"selector,omitempty"`
	Killed   []string `json:"killed,omitempty"` // name/uid
}

func readRecord(ann map[string]string, kind string) (record, bool) {
	s, ok := ann[annRecord+kind]
	if !ok {
		return record{}, false
	}
	var r record
	if json.Unmarshal([]byte(s), &r) != nil {
		return record{}, false
	}
	return r, true
}

// writeRecord sets (or, with no owners, removes) kind's record and keeps
// the display annotations in step with the records.
func writeRecord(ann map[string]string, kind string, r record) {
	if len(r.Owners) == 0 {
		delete(ann, annRecord+kind)
	} else {
		b, _ := json.Marshal(r)
		ann[annRecord+kind] = string(b)
	}
	var owners, kinds []string
	for _, k := range faultKinds {
		if rec, ok := readRecord(ann, k); ok {
			kinds = append(kinds, k)
			for _, o := range rec.Owners {
				if !slices.Contains(owners, o) {
					owners = append(owners, o)
				}
			}
		}
	}
	sort.Strings(owners)
	if len(kinds) == 0 {
		delete(ann, AnnFaultOwner)
		delete(ann, AnnFaultKind)
		return
	}
	ann[AnnFaultOwner] = strings.Join(owners, ",")
	ann[AnnFaultKind] = strings.Join(kinds, ",")
}

func ownerOf(r record) string { return strings.Join(r.Owners, ",") }

// annPatch is the merge patch that turns old annotations into new ones;
// with the resourceVersion in it the API server refuses it with a
// conflict when the object changed since it was read.
func annPatch(rv string, old, new map[string]string) map[string]any {
	ann := map[string]any{}
	for k, v := range new {
		if old[k] != v {
			ann[k] = v
		}
	}
	for k := range old {
		if _, ok := new[k]; !ok {
			ann[k] = nil
		}
	}
	return map[string]any{"resourceVersion": rv, "annotations": ann}
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// ---- nodes: zone_down and node_drain ----

type original struct {
	Unschedulable bool    `json:"unschedulable"`
	Kwok          *string `json:"kwok,omitempty"`
}

// settle derives a node's spec and annotations from its fault records:
// cordoned while any record is there, tainted and (heartbeat kwok)
// unmanaged while a zone_down record is; back to the original state when
// none is left.
func settle(n *corev1.Node) {
	ann := n.Annotations
	var orig original
	if s, ok := ann[annOriginal]; ok {
		_ = json.Unmarshal([]byte(s), &orig)
	}
	_, drain := readRecord(ann, FaultNodeDrain)
	zone, down := readRecord(ann, FaultZoneDown)
	if !drain && !down {
		n.Spec.Unschedulable = orig.Unschedulable
		if orig.Kwok != nil {
			ann[AnnKwokNode] = *orig.Kwok
		}
		delete(ann, annOriginal)
	} else {
		if _, ok := ann[annOriginal]; !ok {
			orig = original{Unschedulable: n.Spec.Unschedulable}
			if v, ok := ann[AnnKwokNode]; ok {
				orig.Kwok = &v
			}
			b, _ := json.Marshal(orig)
			ann[annOriginal] = string(b)
		}
		n.Spec.Unschedulable = true
		if down && zone.Heartbeat == "kwok" {
			delete(ann, AnnKwokNode)
		} else if orig.Kwok != nil {
			ann[AnnKwokNode] = *orig.Kwok
		}
	}
	taints := n.Spec.Taints[:0:0]
	for _, t := range n.Spec.Taints {
		if t.Key != TaintZoneDown {
			taints = append(taints, t)
		}
	}
	if down {
		taints = append(taints, corev1.Taint{Key: TaintZoneDown, Value: zone.Zone, Effect: corev1.TaintEffectNoExecute})
	}
	n.Spec.Taints = taints
}

// patchNode applies change to the node and settles it, with a conflict
// retry; change reports false for nothing to do. It returns the node as
// written (or as read, when unchanged).
func (f *Faults) patchNode(ctx context.Context, name string, change func(n *corev1.Node) bool) (*corev1.Node, error) {
	kube, _, err := f.clients()
	if err != nil {
		return nil, err
	}
	var out *corev1.Node
	err = retry.RetryOnConflict(faultBackoff, func() error {
		n, err := kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		old := n.DeepCopy()
		if n.Annotations == nil {
			n.Annotations = map[string]string{}
		}
		if !change(n) {
			out = old
			return nil
		}
		settle(n)
		var taints any = n.Spec.Taints
		if len(n.Spec.Taints) == 0 {
			taints = nil
		}
		patch := map[string]any{
			"metadata": annPatch(old.ResourceVersion, old.Annotations, n.Annotations),
			"spec":     map[string]any{"unschedulable": n.Spec.Unschedulable, "taints": taints},
		}
		b, _ := json.Marshal(patch)
		out, err = kube.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, b, metav1.PatchOptions{FieldManager: "drillship"})
		return err
	})
	if err != nil {
		return nil, kubeconn.Classify(fmt.Errorf("kubernetes: node %s: %w", name, err))
	}
	return out, nil
}

// joinOwner adds owner to kind's record; init fills a new record.
func joinOwner(n *corev1.Node, kind, owner string, init func(*record)) bool {
	r, _ := readRecord(n.Annotations, kind)
	if slices.Contains(r.Owners, owner) && len(r.Owners) > 0 {
		return false
	}
	if len(r.Owners) == 0 {
		init(&r)
	}
	r.Owners = append(r.Owners, owner)
	writeRecord(n.Annotations, kind, r)
	return true
}

func (f *Faults) zoneDown(ctx context.Context, ft activities.Fault) (string, error) {
	zone, err := param(ft, "zone")
	if err != nil {
		return "", err
	}
	hb := ft.Params["heartbeat"]
	if hb != "" && hb != "kwok" {
		return "", activities.Permanent(fmt.Errorf("kubernetes: zone_down: heartbeat %q: allowed kwok", hb))
	}
	kube, _, err := f.clients()
	if err != nil {
		return "", err
	}
	nodes, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: labels.Set{LabelZone: zone}.String()})
	if err != nil {
		return "", kubeconn.Classify(fmt.Errorf("kubernetes: zone_down: listing nodes: %w", err))
	}
	if len(nodes.Items) == 0 {
		return "", f.noZone(ctx, kube, zone)
	}
	handle := FaultZoneDown + "/" + zone
	for _, n := range nodes.Items {
		_, err := f.patchNode(ctx, n.Name, func(n *corev1.Node) bool {
			changed := joinOwner(n, FaultZoneDown, ft.Owner, func(r *record) { r.Zone = zone })
			// A later owner asking for the heartbeat to stop gets it.
			if r, _ := readRecord(n.Annotations, FaultZoneDown); hb == "kwok" && r.Heartbeat != "kwok" {
				r.Heartbeat = "kwok"
				writeRecord(n.Annotations, FaultZoneDown, r)
				changed = true
			}
			return changed
		})
		if err != nil {
			return handle, err
		}
	}
	return handle, nil
}

// noZone is the permanent error of a zone no node is in, naming the zones
// there are (a typo, or the wrong cluster), before anything was changed.
func (f *Faults) noZone(ctx context.Context, kube kubernetes.Interface, zone string) error {
	zones := "unknown"
	if all, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: LabelZone}); err == nil {
		var names []string
		for _, n := range all.Items {
			if z := n.Labels[LabelZone]; !slices.Contains(names, z) {
				names = append(names, z)
			}
		}
		sort.Strings(names)
		zones = strings.Join(names, ", ")
		if len(names) == 0 {
			zones = "no node has the label"
		}
	}
	return activities.Permanent(fmt.Errorf("kubernetes: zone_down: no node has %s=%s (zones: %s)", LabelZone, zone, zones))
}

func (f *Faults) nodeDrain(ctx context.Context, ft activities.Fault) (string, error) {
	node, err := param(ft, "node")
	if err != nil {
		return "", err
	}
	handle := FaultNodeDrain + "/" + node
	if _, err := f.patchNode(ctx, node, func(n *corev1.Node) bool {
		return joinOwner(n, FaultNodeDrain, ft.Owner, func(*record) {})
	}); err != nil {
		return "", err
	}
	kube, _, err := f.clients()
	if err != nil {
		return handle, err
	}
	pods, err := kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node).String()})
	if err != nil {
		return handle, kubeconn.Classify(fmt.Errorf("kubernetes: node_drain %s: listing its pods: %w", node, err))
	}
	var blocked []string
	evicted := 0
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil || daemonPod(&p) {
			continue
		}
		ev := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace},
			DeleteOptions: &metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}}}
		err := kube.CoreV1().Pods(p.Namespace).EvictV1(ctx, ev)
		switch {
		case err == nil:
			evicted++
		case apierrors.IsNotFound(err), apierrors.IsConflict(err):
			// gone already, or replaced: the pod we listed is not there
		case apierrors.IsTooManyRequests(err):
			blocked = append(blocked, p.Namespace+"/"+p.Name+" ("+f.pdbsOf(ctx, kube, &p)+")")
		default:
			return handle, kubeconn.Classify(fmt.Errorf("kubernetes: node_drain %s: evicting %s/%s: %w", node, p.Namespace, p.Name, err))
		}
	}
	if len(blocked) > 0 {
		// Retryable: the budget allows more once the evicted pods' replacements
		// are Ready elsewhere, and a retry evicts only what is left.
		return handle, fmt.Errorf("kubernetes: node_drain %s: cordoned, %d pods evicted, %d blocked by a PodDisruptionBudget: %s",
			node, evicted, len(blocked), strings.Join(blocked, ", "))
	}
	return handle, nil
}

func daemonPod(p *corev1.Pod) bool {
	if _, mirror := p.Annotations[corev1.MirrorPodAnnotationKey]; mirror {
		return true
	}
	for _, o := range p.OwnerReferences {
		if o.Kind == "DaemonSet" {
			return true
		}
	}
	return false
}

// pdbsOf names the budgets that select the pod and what they allow.
func (f *Faults) pdbsOf(ctx context.Context, kube kubernetes.Interface, p *corev1.Pod) string {
	list, err := kube.PolicyV1().PodDisruptionBudgets(p.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return "PDB unknown: " + err.Error()
	}
	var names []string
	for _, b := range list.Items {
		sel, err := metav1.LabelSelectorAsSelector(b.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(p.Labels)) {
			continue
		}
		names = append(names, fmt.Sprintf("PDB %s: %d disruptions allowed", b.Name, b.Status.DisruptionsAllowed))
	}
	if len(names) == 0 {
		return "PDB unknown"
	}
	return strings.Join(names, "; ")
}

// stopNodes ends the owner's zone_down or node_drain.
func (f *Faults) stopNodes(ctx context.Context, ft activities.Fault, handle string) (activities.StopResult, error) {
	kube, _, err := f.clients()
	if err != nil {
		return activities.StopResult{}, err
	}
	var res activities.StopResult
	// target: the zone or node a handle or the params name
	target := func(h string) string {
		if t, ok := strings.CutPrefix(h, ft.Kind+"/"); ok {
			return t
		}
		return ""
	}
	pname := "node"
	if ft.Kind == FaultZoneDown {
		pname = "zone"
	}
	list, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return res, kubeconn.Classify(fmt.Errorf("kubernetes: %s: listing nodes: %w", ft.Kind, err))
	}
	// targets maps a zone or node to the nodes whose records the owner is in.
	mine := map[string][]string{}
	others := map[string]string{}
	for _, n := range list.Items {
		r, ok := readRecord(n.Annotations, ft.Kind)
		if !ok {
			continue
		}
		t := n.Name
		if ft.Kind == FaultZoneDown {
			t = r.Zone
		}
		if slices.Contains(r.Owners, ft.Owner) {
			mine[t] = append(mine[t], n.Name)
		} else {
			others[t] = ownerOf(r)
		}
	}
	var stop []string
	if t := target(handle); t != "" && len(mine[t]) > 0 {
		stop = []string{t}
	} else {
		if t != "" && others[t] != "" {
			res.NotOurs = activities.NotOurs(handle, others[t])
		}
		if ft.Owner != "" {
			for t := range mine {
				if p := ft.Params[pname]; p == "" || p == t {
					stop = append(stop, t)
				}
			}
		}
	}
	sort.Strings(stop)
	for _, t := range stop {
		var restored []string
		for _, name := range mine[t] {
			n, err := f.patchNode(ctx, name, func(n *corev1.Node) bool {
				r, _ := readRecord(n.Annotations, ft.Kind)
				i := slices.Index(r.Owners, ft.Owner)
				if i < 0 {
					return false
				}
				r.Owners = slices.Delete(r.Owners, i, i+1)
				writeRecord(n.Annotations, ft.Kind, r)
				return true
			})
			if err != nil {
				return res, err
			}
			if _, held := n.Annotations[annOriginal]; !held {
				restored = append(restored, name)
			}
		}
		if err := f.waitReady(ctx, restored); err != nil {
			return res, err
		}
		res.Stopped = append(res.Stopped, ft.Kind+"/"+t)
	}
	res.NotFound = len(res.Stopped) == 0
	if res.NotFound && ft.Kind == FaultZoneDown && ft.Params["zone"] != "" {
		// A retry of a stop that restored the zone and then lost its answer
		// finds no record left: it still waits for the zone to be Ready.
		var free []string
		for _, n := range list.Items {
			if _, held := n.Annotations[annOriginal]; !held && n.Labels[LabelZone] == ft.Params["zone"] {
				free = append(free, n.Name)
			}
		}
		if err := f.waitReady(ctx, free); err != nil {
			return res, err
		}
	}
	return res, nil
}

// waitReady watches the nodes until each one is Ready.
func (f *Faults) waitReady(ctx context.Context, names []string) error {
	if len(names) == 0 {
		return nil
	}
	kube, _, err := f.clients()
	if err != nil {
		return err
	}
	api := kube.CoreV1().Nodes()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return api.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return api.Watch(ctx, o)
		},
	}
	ready := map[string]bool{}
	var last string
	_, err = watchtools.UntilWithSync(ctx, lw, &corev1.Node{}, nil, func(ev watch.Event) (bool, error) {
		n, ok := ev.Object.(*corev1.Node)
		if !ok || !slices.Contains(names, n.Name) {
			return false, nil
		}
		ready[n.Name] = nodeReady(n)
		for _, name := range names {
			if !ready[name] {
				last = name
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("kubernetes: waiting for node %s to be Ready again: %w", last, err)
	}
	return nil
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// ---- scale_to_zero ----

func (f *Faults) patchDeployment(ctx context.Context, name string, change func(ann map[string]string, replicas *int32) bool) (int32, error) {
	kube, ns, err := f.clients()
	if err != nil {
		return 0, err
	}
	var replicas int32
	err = retry.RetryOnConflict(faultBackoff, func() error {
		d, err := kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		ann := copyMap(d.Annotations)
		replicas = 1
		if d.Spec.Replicas != nil {
			replicas = *d.Spec.Replicas
		}
		if !change(ann, &replicas) {
			return nil
		}
		patch := map[string]any{
			"metadata": annPatch(d.ResourceVersion, d.Annotations, ann),
			"spec":     map[string]any{"replicas": replicas},
		}
		b, _ := json.Marshal(patch)
		_, err = kube.AppsV1().Deployments(ns).Patch(ctx, name, types.MergePatchType, b, metav1.PatchOptions{FieldManager: "drillship"})
		return err
	})
	if err != nil {
		return 0, kubeconn.Classify(fmt.Errorf("kubernetes: deployment %s/%s: %w", ns, name, err))
	}
	return replicas, nil
}

func (f *Faults) scaleToZero(ctx context.Context, ft activities.Fault) (string, error) {
	name, err := param(ft, "deployment")
	if err != nil {
		return "", err
	}
	handle := FaultScaleToZero + "/" + name
	_, err = f.patchDeployment(ctx, name, func(ann map[string]string, replicas *int32) bool {
		r, _ := readRecord(ann, FaultScaleToZero)
		if slices.Contains(r.Owners, ft.Owner) && len(r.Owners) > 0 && *replicas == 0 {
			return false
		}
		if len(r.Owners) == 0 {
			before := *replicas
			r.Replicas = &before
		}
		if !slices.Contains(r.Owners, ft.Owner) {
			r.Owners = append(r.Owners, ft.Owner)
		}
		writeRecord(ann, FaultScaleToZero, r)
		*replicas = 0
		return true
	})
	if err != nil {
		return "", err
	}
	return handle, nil
}

func (f *Faults) stopScale(ctx context.Context, ft activities.Fault, handle string) (activities.StopResult, error) {
	kube, ns, err := f.clients()
	if err != nil {
		return activities.StopResult{}, err
	}
	var res activities.StopResult
	var stop []string
	if name, ok := strings.CutPrefix(handle, FaultScaleToZero+"/"); ok && name != "" {
		d, err := kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		switch {
		case err == nil:
			if r, ok := readRecord(d.Annotations, FaultScaleToZero); ok && !slices.Contains(r.Owners, ft.Owner) {
				res.NotOurs = activities.NotOurs(handle, ownerOf(r))
			} else if ok {
				stop = []string{name}
			}
		case !apierrors.IsNotFound(err):
			return res, kubeconn.Classify(err)
		}
	}
	if len(stop) == 0 && ft.Owner != "" {
		list, err := kube.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return res, kubeconn.Classify(fmt.Errorf("kubernetes: scale_to_zero: listing deployments: %w", err))
		}
		for _, d := range list.Items {
			r, ok := readRecord(d.Annotations, FaultScaleToZero)
			if p := ft.Params["deployment"]; ok && slices.Contains(r.Owners, ft.Owner) && (p == "" || p == d.Name) {
				stop = append(stop, d.Name)
			}
		}
	}
	for _, name := range stop {
		_, err := f.patchDeployment(ctx, name, func(ann map[string]string, replicas *int32) bool {
			r, _ := readRecord(ann, FaultScaleToZero)
			i := slices.Index(r.Owners, ft.Owner)
			if i < 0 {
				return false
			}
			r.Owners = slices.Delete(r.Owners, i, i+1)
			if len(r.Owners) == 0 && r.Replicas != nil {
				*replicas = *r.Replicas
			}
			writeRecord(ann, FaultScaleToZero, r)
			return true
		})
		if err != nil {
			return res, err
		}
		res.Stopped = append(res.Stopped, FaultScaleToZero+"/"+name)
	}
	res.NotFound = len(res.Stopped) == 0
	return res, nil
}

// ---- pod_kill ----

// podKillName is the record's ConfigMap: one per owner and selector, so a
// retried inject finds what it deleted instead of deleting more.
func podKillName(owner, selector string) string {
	h := sha256.Sum256([]byte(owner + "\x00" + selector))
	return podKillPrefix + hex.EncodeToString(h[:])[:12]
}

func (f *Faults) podKill(ctx context.Context, ft activities.Fault) (string, error) {
	sel, err := param(ft, "selector")
	if err != nil {
		return "", err
	}
	if _, err := labels.Parse(sel); err != nil {
		return "", activities.Permanent(fmt.Errorf("kubernetes: pod_kill: selector %q: %w", sel, err))
	}
	count, percent := 0, 0
	if s := ft.Params["count"]; s != "" {
		if count, err = strconv.Atoi(s); err != nil || count < 1 {
			return "", activities.Permanent(fmt.Errorf("kubernetes: pod_kill: count %q: want a whole number >= 1", s))
		}
	}
	if s := ft.Params["percent"]; s != "" {
		if percent, err = strconv.Atoi(s); err != nil || percent < 1 || percent > 100 {
			return "", activities.Permanent(fmt.Errorf("kubernetes: pod_kill: percent %q: want 1..100", s))
		}
	}
	if count > 0 && percent > 0 {
		return "", activities.Permanent(errors.New("kubernetes: pod_kill: give count or percent, not both"))
	}
	if count == 0 && percent == 0 {
		count = 1
	}
	kube, ns, err := f.clients()
	if err != nil {
		return "", err
	}
	name := podKillName(ft.Owner, sel)
	handle := FaultPodKill + "/" + name
	cms := kube.CoreV1().ConfigMaps(ns)
	cm, err := cms.Get(ctx, name, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return "", kubeconn.Classify(fmt.Errorf("kubernetes: pod_kill: reading its record: %w", err))
	}
	var rec record
	if err == nil {
		rec, _ = readRecord(cm.Annotations, FaultPodKill)
	}
	if err != nil || cm.Annotations[annStopped] != "" {
		// Pick the pods, and record them before deleting any.
		pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return "", kubeconn.Classify(fmt.Errorf("kubernetes: pod_kill: listing pods %s: %w", sel, err))
		}
		if len(pods.Items) == 0 {
			// A selector that matches nothing will not start matching on a
			// retry: refused before anything was written or deleted.
			return "", activities.Permanent(fmt.Errorf("kubernetes: pod_kill: no pod matches %s in %s", sel, ns))
		}
		var live []corev1.Pod
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil {
				live = append(live, p)
			}
		}
		if len(live) == 0 {
			// Retryable: their controllers are replacing them.
			return "", fmt.Errorf("kubernetes: pod_kill: the %d pods matching %s in %s are all terminating", len(pods.Items), sel, ns)
		}
		sort.Slice(live, func(i, j int) bool { return live[i].Name < live[j].Name })
		n := count
		if percent > 0 {
			n = int(math.Ceil(float64(len(live)) * float64(percent) / 100))
		}
		n = min(n, len(live))
		rec = record{Owners: []string{ft.Owner}, Selector: sel}
		for _, p := range live[:n] {
			rec.Killed = append(rec.Killed, p.Name+"/"+string(p.UID))
		}
		if err := f.writePodKill(ctx, cm, name, rec); err != nil {
			return "", err
		}
	}
	// Delete (again, after a crash) what the record names; a pod already
	// gone or replaced under the same name is left alone.
	for _, k := range rec.Killed {
		pn, uid, _ := strings.Cut(k, "/")
		u := types.UID(uid)
		err := kube.CoreV1().Pods(ns).Delete(ctx, pn, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &u}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return handle, kubeconn.Classify(fmt.Errorf("kubernetes: pod_kill: deleting %s: %w", pn, err))
		}
	}
	return handle, nil
}

func (f *Faults) writePodKill(ctx context.Context, cm *corev1.ConfigMap, name string, rec record) error {
	kube, ns, err := f.clients()
	if err != nil {
		return err
	}
	if cm == nil || cm.Name == "" {
		cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
			Labels:      map[string]string{LabelManagedBy: ManagedBy, labelFaultKind: FaultPodKill},
			Annotations: map[string]string{}}}
		writeRecord(cm.Annotations, FaultPodKill, rec)
		_, err = kube.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{FieldManager: "drillship"})
	} else {
		cm = cm.DeepCopy()
		if cm.Annotations == nil {
			cm.Annotations = map[string]string{}
		}
		delete(cm.Annotations, annStopped)
		writeRecord(cm.Annotations, FaultPodKill, rec)
		_, err = kube.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{FieldManager: "drillship"})
	}
	if err != nil {
		return kubeconn.Classify(fmt.Errorf("kubernetes: pod_kill: writing its record: %w", err))
	}
	return nil
}

// stopPodKill has nothing to undo (the pods' controllers replaced them): it
// marks the owner's record over.
func (f *Faults) stopPodKill(ctx context.Context, ft activities.Fault, handle string) (activities.StopResult, error) {
	kube, ns, err := f.clients()
	if err != nil {
		return activities.StopResult{}, err
	}
	cms := kube.CoreV1().ConfigMaps(ns)
	var res activities.StopResult
	var stop []corev1.ConfigMap
	if name, ok := strings.CutPrefix(handle, FaultPodKill+"/"); ok && name != "" {
		cm, err := cms.Get(ctx, name, metav1.GetOptions{})
		switch {
		case err == nil:
			if r, ok := readRecord(cm.Annotations, FaultPodKill); ok && !slices.Contains(r.Owners, ft.Owner) {
				res.NotOurs = activities.NotOurs(handle, ownerOf(r))
			} else if ok {
				stop = append(stop, *cm)
			}
		case !apierrors.IsNotFound(err):
			return res, kubeconn.Classify(err)
		}
	}
	if len(stop) == 0 && ft.Owner != "" {
		list, err := cms.List(ctx, metav1.ListOptions{LabelSelector: labels.Set{labelFaultKind: FaultPodKill}.String()})
		if err != nil {
			return res, kubeconn.Classify(fmt.Errorf("kubernetes: pod_kill: listing records: %w", err))
		}
		for _, cm := range list.Items {
			r, ok := readRecord(cm.Annotations, FaultPodKill)
			if p := ft.Params["selector"]; ok && slices.Contains(r.Owners, ft.Owner) && (p == "" || p == r.Selector) {
				stop = append(stop, cm)
			}
		}
	}
	for _, cm := range stop {
		if cm.Annotations[annStopped] == "" {
			err := retry.RetryOnConflict(faultBackoff, func() error {
				cur, err := cms.Get(ctx, cm.Name, metav1.GetOptions{})
				if err != nil {
					return err
				}
				cur.Annotations[annStopped] = time.Now().UTC().Format(time.RFC3339)
				_, err = cms.Update(ctx, cur, metav1.UpdateOptions{FieldManager: "drillship"})
				return err
			})
			if err != nil {
				return res, kubeconn.Classify(fmt.Errorf("kubernetes: pod_kill: marking %s over: %w", cm.Name, err))
			}
		}
		res.Stopped = append(res.Stopped, FaultPodKill+"/"+cm.Name)
	}
	res.NotFound = len(res.Stopped) == 0
	return res, nil
}
