// Package arc is the Route 53 Application Recovery Controller provider for
// Traffic in region evacuation: each backend (a region, say) has a routing
// control; weight 0 turns it Off, any other weight On. Reads give the On
// backends equal shares of 100, the way ARC-gated failover records split.
//
// State changes go to the cluster's data-plane endpoints, tried in turn as
// ARC asks callers to do, since any one of them may be down in an event.
package arc

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/route53recoverycluster"
	"github.com/aws/aws-sdk-go-v2/service/route53recoverycluster/types"
	"github.com/aws/aws-sdk-go-v2/service/route53recoverycontrolconfig"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/awsconf"
)

// Name is the provider name in specs.
const Name = "arc"

// Config is the Traffic settings.
//
//	region: us-west-2            # region of the control-plane call (DescribeCluster)
//	clusterArn: arn:aws:route53-recovery-control::123456789012:cluster/8d1f...
//	clusterEndpoints:            # optional: skip DescribeCluster and use these
//	  - {endpoint: "https://host-aaaaaa.us-east-1.example.com/v1", region: us-east-1}
//	routingControls:             # backend -> routing control ARN
//	  east: arn:aws:route53-recovery-control::123456789012:controlpanel/abc/routingcontrol/def
//	  west: arn:aws:route53-recovery-control::123456789012:controlpanel/abc/routingcontrol/ghi
//	safetyRulesToOverride: []    # optional safety rule ARNs to bypass (break glass)
type Config struct {
	awsconf.Settings
	ClusterARN            string            `json:"clusterArn"`
	ClusterEndpoints      []Endpoint        `json:"clusterEndpoints,omitempty"`
	RoutingControls       map[string]string `json:"routingControls"`
	SafetyRulesToOverride []string          `json:"safetyRulesToOverride,omitempty"`
}

// Endpoint is one data-plane endpoint of the cluster.
type Endpoint struct {
	Endpoint string `json:"endpoint"`
	Region   string `json:"region"`
}

// Provider returns the arc provider for the registry.
func Provider() activities.Provider {
	return activities.Provider{
		Name:        Name,
		Declare:     Declare,
		Traffic:     func(cfg map[string]any) (activities.Traffic, error) { return New(cfg) },
		Permissions: Permissions,
	}
}

// Traffic drives the routing controls of one control panel.
type Traffic struct {
	conn *awsconf.Conn
	cfg  Config

	mu        sync.Mutex
	endpoints []Endpoint
	good      int // index of the endpoint that answered last; tried first
}

var (
	clusterRe = regexp.MustCompile(`^arn:aws[a-z-]*:route53-recovery-control::\d{12}:cluster/[A-Za-z0-9-]+$`)
	controlRe = regexp.MustCompile(`^arn:aws[a-z-]*:route53-recovery-control::\d{12}:controlpanel/[A-Za-z0-9-]+/routingcontrol/[A-Za-z0-9-]+$`)
	ruleRe    = regexp.MustCompile(`^arn:aws[a-z-]*:route53-recovery-control::\d{12}:controlpanel/[A-Za-z0-9-]+/safetyrule/[A-Za-z0-9-]+$`)
)

// New validates the settings; it does no I/O.
func New(cfg map[string]any, opts ...func(*config.LoadOptions) error) (*Traffic, error) {
	var c Config
	if err := activities.DecodeConfig(cfg, &c); err != nil {
		return nil, err
	}
	conn, err := awsconf.New(c.Settings, opts...)
	if err != nil {
		return nil, err
	}
	if !clusterRe.MatchString(c.ClusterARN) {
		return nil, fmt.Errorf("config: clusterArn %q: want arn:aws:route53-recovery-control::<account>:cluster/<id>", c.ClusterARN)
	}
	for i, e := range c.ClusterEndpoints {
		if e.Endpoint == "" || e.Region == "" {
			return nil, fmt.Errorf("config: clusterEndpoints[%d]: endpoint and region are required", i)
		}
	}
	if len(c.RoutingControls) == 0 {
		return nil, errors.New("config: routingControls is required (backend -> routing control ARN)")
	}
	for b, arn := range c.RoutingControls {
		if !controlRe.MatchString(arn) {
			return nil, fmt.Errorf("config: routingControls.%s %q: want arn:aws:route53-recovery-control::<account>:controlpanel/<id>/routingcontrol/<id>", b, arn)
		}
	}
	for _, r := range c.SafetyRulesToOverride {
		if !ruleRe.MatchString(r) {
			return nil, fmt.Errorf("config: safetyRulesToOverride: %q: want a safety rule ARN", r)
		}
	}
	return &Traffic{conn: conn, cfg: c, endpoints: c.ClusterEndpoints}, nil
}

// clusterEndpoints returns the configured endpoints or asks the control
// plane once.
func (t *Traffic) clusterEndpoints(ctx context.Context, cfg aws.Config) ([]Endpoint, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.endpoints) > 0 {
		return t.endpoints, nil
	}
	cc := route53recoverycontrolconfig.NewFromConfig(cfg)
	out, err := cc.DescribeCluster(ctx, &route53recoverycontrolconfig.DescribeClusterInput{ClusterArn: aws.String(t.cfg.ClusterARN)})
	if err != nil {
		return nil, awsconf.Classify(err, "route53-recovery-control-config:DescribeCluster", t.cfg.ClusterARN)
	}
	var eps []Endpoint
	if out.Cluster != nil {
		for _, e := range out.Cluster.ClusterEndpoints {
			eps = append(eps, Endpoint{Endpoint: aws.ToString(e.Endpoint), Region: aws.ToString(e.Region)})
		}
	}
	if len(eps) == 0 {
		return nil, fmt.Errorf("arc: cluster %s has no endpoints yet", t.cfg.ClusterARN)
	}
	t.endpoints = eps
	return eps, nil
}

// each runs call against the cluster endpoints in turn until one answers.
// An answer that is a permanent error stops the turn: another endpoint
// would say the same.
func (t *Traffic) each(ctx context.Context, call func(*route53recoverycluster.Client) error) error {
	cfg, err := t.conn.Config(ctx)
	if err != nil {
		return err
	}
	eps, err := t.clusterEndpoints(ctx, cfg)
	if err != nil {
		return err
	}
	t.mu.Lock()
	first := t.good
	t.mu.Unlock()
	var errs []error
	for i := range eps {
		n := (first + i) % len(eps)
		e := eps[n]
		c := route53recoverycluster.NewFromConfig(cfg, func(o *route53recoverycluster.Options) {
			o.Region, o.BaseEndpoint = e.Region, aws.String(e.Endpoint)
		})
		err := call(c)
		if err == nil || activities.IsPermanent(err) || ctx.Err() != nil {
			if err == nil {
				t.mu.Lock()
				t.good = n
				t.mu.Unlock()
			}
			return err
		}
		errs = append(errs, fmt.Errorf("%s: %w", e.Region, err))
	}
	return fmt.Errorf("arc: every cluster endpoint failed: %w", errors.Join(errs...))
}

func (t *Traffic) backends() []string {
	bs := make([]string, 0, len(t.cfg.RoutingControls))
	for b := range t.cfg.RoutingControls {
		bs = append(bs, b)
	}
	sort.Strings(bs)
	return bs
}

func (t *Traffic) states(ctx context.Context, bs []string) (map[string]types.RoutingControlState, error) {
	out := map[string]types.RoutingControlState{}
	err := t.each(ctx, func(c *route53recoverycluster.Client) error {
		for _, b := range bs {
			arn := t.cfg.RoutingControls[b]
			resp, err := c.GetRoutingControlState(ctx, &route53recoverycluster.GetRoutingControlStateInput{RoutingControlArn: aws.String(arn)})
			if err != nil {
				return awsconf.Classify(err, "route53-recovery-cluster:GetRoutingControlState", arn)
			}
			out[b] = resp.RoutingControlState
		}
		return nil
	})
	return out, err
}

// SetWeights turns the named backends' routing controls On (weight > 0)
// or Off (0) in one UpdateRoutingControlStates call, only those that differ.
func (t *Traffic) SetWeights(ctx context.Context, w activities.Weights) error {
	var bs []string
	for b, weight := range w {
		if _, ok := t.cfg.RoutingControls[b]; !ok {
			return activities.Permanent(fmt.Errorf("arc: backend %q is not in routingControls", b))
		}
		if weight < 0 || weight > 100 {
			return activities.Permanent(fmt.Errorf("weight of %s: %d: want 0..100", b, weight))
		}
		bs = append(bs, b)
	}
	sort.Strings(bs)
	cur, err := t.states(ctx, bs)
	if err != nil {
		return err
	}
	var entries []types.UpdateRoutingControlStateEntry
	for _, b := range bs {
		want := types.RoutingControlStateOff
		if w[b] > 0 {
			want = types.RoutingControlStateOn
		}
		if cur[b] != want {
			entries = append(entries, types.UpdateRoutingControlStateEntry{RoutingControlArn: aws.String(t.cfg.RoutingControls[b]), RoutingControlState: want})
		}
	}
	if len(entries) == 0 {
		return nil
	}
	return t.each(ctx, func(c *route53recoverycluster.Client) error {
		_, err := c.UpdateRoutingControlStates(ctx, &route53recoverycluster.UpdateRoutingControlStatesInput{
			UpdateRoutingControlStateEntries: entries, SafetyRulesToOverride: t.cfg.SafetyRulesToOverride,
		})
		return awsconf.Classify(err, "route53-recovery-cluster:UpdateRoutingControlStates", t.cfg.ClusterARN)
	})
}

// Weights reads every routing control: On backends share 100 equally.
func (t *Traffic) Weights(ctx context.Context) (activities.Weights, error) {
	bs := t.backends()
	st, err := t.states(ctx, bs)
	if err != nil {
		return nil, err
	}
	var on []string
	for _, b := range bs {
		if st[b] == types.RoutingControlStateOn {
			on = append(on, b)
		}
	}
	out := activities.Weights{}
	for _, b := range bs {
		out[b] = 0
	}
	for i, b := range on {
		out[b] = 100 / len(on)
		if i < 100%len(on) {
			out[b]++ // the remainder goes to the first ones, so the sum is 100
		}
	}
	return out, nil
}

// Permissions lists what Traffic needs with cfg.
func Permissions(capability string, cfg map[string]any) ([]activities.Permission, error) {
	if capability != activities.CapTraffic {
		return nil, fmt.Errorf("arc: no %s capability", capability)
	}
	t, err := New(cfg)
	if err != nil {
		return nil, err
	}
	var controls []string
	for _, arn := range t.cfg.RoutingControls {
		controls = append(controls, arn)
	}
	sort.Strings(controls)
	ps := []activities.Permission{
		{Actions: []string{"route53-recovery-cluster:GetRoutingControlState"}, Resources: controls},
		{Actions: []string{"route53-recovery-cluster:UpdateRoutingControlStates"}, Resources: controls},
	}
	if len(t.cfg.ClusterEndpoints) == 0 {
		ps = append(ps, activities.Permission{Actions: []string{"route53-recovery-control-config:DescribeCluster"}, Resources: []string{t.cfg.ClusterARN}})
	}
	return ps, nil
}
