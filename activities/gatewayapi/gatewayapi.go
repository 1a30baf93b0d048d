// Package gatewayapi is the Gateway API traffic provider: it moves weight
// between a stable and a canary Service in one rule of an HTTPRoute (the
// rule holding both, found anew on every read: a person may add rules), and
// optionally sends requests carrying a header to the canary while it has
// weight. After each write it waits until the route's controller reports
// the written generation (status.parents, condition Accepted), so that
// "weights set" means the data plane has them, then reads the route back.
package gatewayapi

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/client-go/util/retry"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/kubeconn"
)

// Name is the provider's name in specs.
const Name = "gateway-api"

// Role keys: the weight keys of this provider (a deploy spec uses
// trafficKeys: role).
const (
	Stable = "stable"
	Canary = "canary"
)

// HeaderRuleName names the rule this provider adds for header routing, so
// that it finds (and removes) its own rule and never a person's.
const HeaderRuleName = "drillship-canary-header"

// DefaultProgrammedTimeout bounds the wait for the controller to report a
// written generation.
const DefaultProgrammedTimeout = 30 * time.Second

// conflictBackoff spaces conflict retries over about five seconds: status writers
// (the node lifecycle controller, kwok, a route's controller) bump the
// resourceVersion that every write here is conditioned on.
var conflictBackoff = wait.Backoff{Steps: 10, Duration: 50 * time.Millisecond, Factor: 1.5, Jitter: 0.1}

// MaxWeight is the largest backendRef weight the Gateway API accepts.
const MaxWeight = 1000000

// Config is the provider's settings.
//
//	namespace: web
//	route: web                                   # the HTTPRoute
//	rule: 0                                      # optional: default the one rule holding both backends
//	backends: {stable: web-stable, canary: web-canary}
//	header: {name: x-canary, value: "true"}      # optional: these requests go to the canary
//	programmedTimeout: 30s
type Config struct {
	kubeconn.Settings
	Route             string            `json:"route"`
	Rule              *int              `json:"rule,omitempty"`
	Backends          map[string]string `json:"backends"`
	Header            *Header           `json:"header,omitempty"`
	ProgrammedTimeout string            `json:"programmedTimeout,omitempty"`
}

// Header is the header match that sends requests to the canary.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Provider returns the gateway-api provider for the registry.
func Provider() activities.Provider {
	return activities.Provider{
		Name:    Name,
		Declare: Declare,
		Traffic: func(cfg map[string]any) (activities.Traffic, error) { return New(cfg) },
		Rules:   Rules,
	}
}

// Client drives one HTTPRoute rule.
type Client struct {
	Conn  *kubeconn.Conn
	Route string
	// Rule is the configured rule index; nil: the one rule whose
	// backendRefs hold both Services. An index alone goes stale when a
	// rule is inserted ahead of it, so a set index is checked too.
	Rule     *int
	Backends map[string]string // role -> Service
	Header   *Header
	Timeout  time.Duration
}

// New validates the settings; it does no I/O.
func New(cfg map[string]any) (*Client, error) {
	var c Config
	if err := activities.DecodeConfig(cfg, &c); err != nil {
		return nil, err
	}
	conn, err := kubeconn.New(c.Settings)
	if err != nil {
		return nil, err
	}
	if err := kubeconn.ValidName("route", c.Route); err != nil {
		return nil, err
	}
	cl := &Client{Conn: conn, Route: c.Route, Backends: map[string]string{}, Header: c.Header, Timeout: DefaultProgrammedTimeout}
	if c.Rule != nil {
		if *c.Rule < 0 || *c.Rule > 15 {
			return nil, fmt.Errorf("config: rule %d: want a rule index 0..15 (an HTTPRoute has up to 16 rules)", *c.Rule)
		}
		n := *c.Rule
		cl.Rule = &n
	}
	for k, svc := range c.Backends {
		if k != Stable && k != Canary {
			return nil, fmt.Errorf("config: backends.%s: the keys are the roles stable and canary", k)
		}
		if err := kubeconn.ValidName("backends."+k, svc); err != nil {
			return nil, err
		}
		cl.Backends[k] = svc
	}
	if cl.Backends[Stable] == "" || cl.Backends[Canary] == "" {
		return nil, errors.New("config: backends needs both stable and canary Services: {stable: web-stable, canary: web-canary}")
	}
	if cl.Backends[Stable] == cl.Backends[Canary] {
		return nil, errors.New("config: backends: stable and canary must be different Services")
	}
	if h := c.Header; h != nil {
		if h.Name == "" || strings.ContainsAny(h.Name, " \t:\r\n") {
			return nil, fmt.Errorf("config: header.name %q: want an HTTP header name", h.Name)
		}
		if h.Value == "" {
			return nil, errors.New("config: header.value is required with header.name")
		}
	}
	if c.ProgrammedTimeout != "" {
		d, err := time.ParseDuration(c.ProgrammedTimeout)
		if err != nil || d <= 0 || d > 10*time.Minute {
			return nil, fmt.Errorf("config: programmedTimeout %q: want a duration up to 10m such as 30s", c.ProgrammedTimeout)
		}
		cl.Timeout = d
	}
	return cl, nil
}

func (c *Client) roles() []string { return []string{Canary, Stable} }

// get reads the route and the namespace it lives in.
func (c *Client) get(ctx context.Context) (*gwv1.HTTPRoute, string, error) {
	gw, err := c.Conn.Gateway()
	if err != nil {
		return nil, "", err
	}
	ns, err := c.Conn.Namespace()
	if err != nil {
		return nil, "", err
	}
	r, err := gw.GatewayV1().HTTPRoutes(ns).Get(ctx, c.Route, metav1.GetOptions{})
	if err != nil {
		return nil, ns, kubeconn.Classify(fmt.Errorf("gateway-api: reading HTTPRoute %s/%s: %w", ns, c.Route, err))
	}
	return r, ns, nil
}

// refIndex finds the backendRef of rule that points at Service svc.
func refIndex(rule *gwv1.HTTPRouteRule, svc string) int {
	for i, b := range rule.BackendRefs {
		if string(b.Name) != svc {
			continue
		}
		if b.Group != nil && *b.Group != "" && *b.Group != "core" {
			continue
		}
		if b.Kind != nil && *b.Kind != "Service" {
			continue
		}
		return i
	}
	return -1
}

// holding lists the rules of r whose backendRefs hold both the stable and
// the canary Service. The header rule is never one: it is this provider's.
func (c *Client) holding(r *gwv1.HTTPRoute) []int {
	var out []int
	for i := range r.Spec.Rules {
		rule := &r.Spec.Rules[i]
		if rule.Name != nil && string(*rule.Name) == HeaderRuleName {
			continue
		}
		if refIndex(rule, c.Backends[Stable]) >= 0 && refIndex(rule, c.Backends[Canary]) >= 0 {
			out = append(out, i)
		}
	}
	return out
}

func ruleList(idx []int) string {
	s := make([]string, len(idx))
	for i, n := range idx {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ", ")
}

// weighted finds the index of the weighted rule in r: config.rule when set,
// checked to hold both backends, else the one rule that holds both.
// Weights, SetWeights, the header rule and Preflight all go through it.
func (c *Client) weighted(r *gwv1.HTTPRoute) (int, error) {
	both := fmt.Sprintf("backendRefs to both Services %s (backends.stable) and %s (backends.canary)", c.Backends[Stable], c.Backends[Canary])
	found := c.holding(r)
	if c.Rule != nil {
		n := *c.Rule
		if n >= len(r.Spec.Rules) {
			return 0, activities.Permanent(fmt.Errorf("gateway-api: HTTPRoute %s has %d rules; config.rule is %d%s", r.Name, len(r.Spec.Rules), n, c.whichHolds(found)))
		}
		for _, i := range found {
			if i == n {
				return n, nil
			}
		}
		var missing []string
		for _, role := range []string{Stable, Canary} {
			if refIndex(&r.Spec.Rules[n], c.Backends[role]) < 0 {
				missing = append(missing, fmt.Sprintf("Service %s (backends.%s)", c.Backends[role], role))
			}
		}
		why := "is the header rule " + HeaderRuleName
		if len(missing) > 0 {
			why = "has no backendRef to " + strings.Join(missing, " nor ")
		}
		return 0, activities.Permanent(fmt.Errorf("gateway-api: HTTPRoute %s rule %d (config.rule) %s%s", r.Name, n, why, c.whichHolds(found)))
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return 0, activities.Permanent(fmt.Errorf("gateway-api: HTTPRoute %s: none of its %d rules has %s", r.Name, len(r.Spec.Rules), both))
	default:
		return 0, activities.Permanent(fmt.Errorf("gateway-api: HTTPRoute %s: rules %s each have %s; set config.rule to the one to weight", r.Name, ruleList(found), both))
	}
}

// whichHolds tells a person who set a wrong config.rule which rule to set.
func (c *Client) whichHolds(found []int) string {
	switch len(found) {
	case 0:
		return "; no rule has backendRefs to both backends"
	case 1:
		return fmt.Sprintf("; rule %d holds both backends", found[0])
	default:
		return "; rules " + ruleList(found) + " hold both backends"
	}
}

// weightsOf reads the role weights of the weighted rule.
func (c *Client) weightsOf(r *gwv1.HTTPRoute) (activities.Weights, int, error) {
	n, err := c.weighted(r)
	if err != nil {
		return nil, 0, err
	}
	rule := &r.Spec.Rules[n]
	w := activities.Weights{}
	for _, role := range c.roles() {
		i := refIndex(rule, c.Backends[role])
		// The Gateway API's default weight is 1.
		w[role] = 1
		if p := rule.BackendRefs[i].Weight; p != nil {
			w[role] = int(*p)
		}
	}
	return w, n, nil
}

// Weights reads the weights from the route's spec.
func (c *Client) Weights(ctx context.Context) (activities.Weights, error) {
	r, _, err := c.get(ctx)
	if err != nil {
		return nil, err
	}
	w, _, err := c.weightsOf(r)
	return w, err
}

// SetWeights writes the named roles' weights (the others keep theirs) and
// the header rule, waits for the controller to report the written
// generation, and reads the route back.
func (c *Client) SetWeights(ctx context.Context, w activities.Weights) error {
	keys := make([]string, 0, len(w))
	for k, v := range w {
		if _, ok := c.Backends[k]; !ok {
			return activities.Permanent(fmt.Errorf("gateway-api: weights: %q is not a role (have: canary, stable)", k))
		}
		if v < 0 || v > MaxWeight {
			return activities.Permanent(fmt.Errorf("gateway-api: weights.%s: %d is outside 0..%d", k, v, MaxWeight))
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	gw, err := c.Conn.Gateway()
	if err != nil {
		return err
	}
	var written *gwv1.HTTPRoute
	err = retry.RetryOnConflict(conflictBackoff, func() error {
		r, ns, err := c.get(ctx)
		if err != nil {
			return err
		}
		changed, err := c.apply(r, w)
		if err != nil {
			return err
		}
		if !changed {
			written = r // idempotent: nothing to write, still wait for it
			return nil
		}
		out, err := gw.GatewayV1().HTTPRoutes(ns).Update(ctx, r, metav1.UpdateOptions{FieldManager: "drillship"})
		if err != nil {
			return err
		}
		written = out
		return nil
	})
	if err != nil {
		return kubeconn.Classify(fmt.Errorf("gateway-api: writing HTTPRoute %s weights: %w", c.Route, err))
	}
	if len(written.Status.Parents) > 0 {
		if err := c.waitProgrammed(ctx, written.Generation); err != nil {
			return err
		}
	}
	got, err := c.Weights(ctx)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if got[k] != w[k] {
			return fmt.Errorf("gateway-api: read back HTTPRoute %s: %s has weight %d, wrote %d", c.Route, k, got[k], w[k])
		}
	}
	return nil
}

// apply sets the weights and the header rule on r; it reports whether r
// changed.
func (c *Client) apply(r *gwv1.HTTPRoute, w activities.Weights) (bool, error) {
	_, n, err := c.weightsOf(r)
	if err != nil {
		return false, err
	}
	rule := &r.Spec.Rules[n]
	changed := false
	for _, role := range c.roles() {
		v, ok := w[role]
		if !ok {
			continue
		}
		i := refIndex(rule, c.Backends[role])
		if p := rule.BackendRefs[i].Weight; p == nil || int(*p) != v {
			nv := int32(v)
			rule.BackendRefs[i].Weight = &nv
			changed = true
		}
	}
	if c.Header == nil {
		return changed, nil
	}
	canary := 1
	if p := rule.BackendRefs[refIndex(rule, c.Backends[Canary])].Weight; p != nil {
		canary = int(*p)
	}
	at := headerRule(r)
	switch {
	case canary > 0 && at < 0:
		r.Spec.Rules = append(r.Spec.Rules, c.newHeaderRule(rule))
		return true, nil
	case canary > 0:
		want := c.newHeaderRule(rule)
		if !equalRules(&r.Spec.Rules[at], &want) {
			r.Spec.Rules[at] = want
			return true, nil
		}
	case canary == 0 && at >= 0:
		if c.Rule != nil && at < n {
			// Removing it would renumber a configured rule index: a person
			// moved it. A rule found by its backends is found again.
			return false, activities.Permanent(fmt.Errorf("gateway-api: HTTPRoute %s: the header rule %s comes before rule %d (config.rule); move it after", r.Name, HeaderRuleName, n))
		}
		r.Spec.Rules = append(r.Spec.Rules[:at], r.Spec.Rules[at+1:]...)
		return true, nil
	}
	return changed, nil
}

func headerRule(r *gwv1.HTTPRoute) int {
	for i, rule := range r.Spec.Rules {
		if rule.Name != nil && string(*rule.Name) == HeaderRuleName {
			return i
		}
	}
	return -1
}

// newHeaderRule is the weighted rule's matches, each narrowed to the
// header, sending everything to the canary Service. It is appended so that
// a configured rule index stays right; the Gateway API ranks
// a match with more header matches first, whatever the rule order.
func (c *Client) newHeaderRule(weighted *gwv1.HTTPRouteRule) gwv1.HTTPRouteRule {
	name := gwv1.SectionName(HeaderRuleName)
	exact := gwv1.HeaderMatchExact
	hm := gwv1.HTTPHeaderMatch{Type: &exact, Name: gwv1.HTTPHeaderName(c.Header.Name), Value: c.Header.Value}
	var matches []gwv1.HTTPRouteMatch
	for _, m := range weighted.Matches {
		m = *m.DeepCopy()
		m.Headers = append(m.Headers, hm)
		matches = append(matches, m)
	}
	if len(matches) == 0 {
		matches = []gwv1.HTTPRouteMatch{{Headers: []gwv1.HTTPHeaderMatch{hm}}}
	}
	ref := weighted.BackendRefs[refIndex(weighted, c.Backends[Canary])].DeepCopy()
	one := int32(1)
	ref.Weight = &one
	return gwv1.HTTPRouteRule{Name: &name, Matches: matches, BackendRefs: []gwv1.HTTPBackendRef{*ref}}
}

// equalRules compares the parts of the header rule this provider writes
// (the API server fills defaults such as the path match into the rest).
func equalRules(got, want *gwv1.HTTPRouteRule) bool {
	if len(got.BackendRefs) != 1 || len(got.Matches) != len(want.Matches) {
		return false
	}
	if got.BackendRefs[0].Name != want.BackendRefs[0].Name {
		return false
	}
	for i := range want.Matches {
		g, w := got.Matches[i].Headers, want.Matches[i].Headers
		if len(g) != len(w) {
			return false
		}
		for j := range w {
			if !strings.EqualFold(string(g[j].Name), string(w[j].Name)) || g[j].Value != w[j].Value {
				return false
			}
		}
	}
	return true
}

// waitProgrammed watches the route until every parent in status.parents
// reports condition Accepted with observedGeneration >= gen.
func (c *Client) waitProgrammed(ctx context.Context, gen int64) error {
	gw, err := c.Conn.Gateway()
	if err != nil {
		return err
	}
	ns, err := c.Conn.Namespace()
	if err != nil {
		return err
	}
	api := gw.GatewayV1().HTTPRoutes(ns)
	sel := fields.OneTermEqualSelector("metadata.name", c.Route).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return api.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return api.Watch(ctx, o)
		},
	}
	wctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	var last string
	var refused error
	_, err = watchtools.UntilWithSync(wctx, lw, &gwv1.HTTPRoute{}, nil, func(ev watch.Event) (bool, error) {
		r, ok := ev.Object.(*gwv1.HTTPRoute)
		if !ok {
			return false, nil
		}
		if ev.Type == watch.Deleted {
			return false, activities.Permanent(fmt.Errorf("gateway-api: HTTPRoute %s was deleted while waiting for its controller", c.Route))
		}
		done, lag, err := programmed(r, gen)
		last = lag
		if err != nil {
			refused = err
			return false, err
		}
		return done, nil
	})
	if refused != nil {
		return refused
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("gateway-api: HTTPRoute %s generation %d not accepted by its controller within %s (%s): %w", c.Route, gen, c.Timeout, last, err)
	}
	return nil
}

// programmed says whether every parent reports gen as accepted; lag says
// which one does not, for the timeout's message. A parent that reports
// Accepted=False for gen refused the route: no wait fixes that.
func programmed(r *gwv1.HTTPRoute, gen int64) (bool, string, error) {
	if len(r.Status.Parents) == 0 {
		return false, "no parent status", nil
	}
	for _, p := range r.Status.Parents {
		name := parentName(p)
		var acc *metav1.Condition
		for i := range p.Conditions {
			if p.Conditions[i].Type == string(gwv1.RouteConditionAccepted) {
				acc = &p.Conditions[i]
			}
		}
		if acc == nil {
			return false, name + " reports no Accepted condition", nil
		}
		if acc.ObservedGeneration < gen {
			return false, fmt.Sprintf("%s has generation %d", name, acc.ObservedGeneration), nil
		}
		if acc.Status != metav1.ConditionTrue {
			return false, "", activities.Permanent(fmt.Errorf("gateway-api: HTTPRoute %s generation %d not accepted by %s: %s: %s", r.Name, acc.ObservedGeneration, name, acc.Reason, acc.Message))
		}
	}
	return true, "", nil
}

func parentName(p gwv1.RouteParentStatus) string {
	s := string(p.ParentRef.Name)
	if p.ParentRef.Namespace != nil {
		s = string(*p.ParentRef.Namespace) + "/" + s
	}
	return "parent " + s + " (" + string(p.ControllerName) + ")"
}
