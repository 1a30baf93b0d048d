// Package elbv2 is the Elastic Load Balancing v2 provider: Traffic moves
// weight between the target groups of a listener rule's forward action (or
// the listener's default action).
package elbv2

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/awsconf"
)

// Name is the provider name in specs.
const Name = "elbv2"

// Config is the Traffic settings.
//
//	region: us-east-1
//	listenerArn: arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2
//	ruleArn: arn:aws:elasticloadbalancing:...:listener-rule/app/web/50dc.../f2f7.../9683b2d02a6cabee  # optional: default action if unset
//	targetGroups:                  # drillship backend -> target group ARN or name
//	  v1: web-v1
//	  v2: arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-v2/73e2d6bc24d8a067
type Config struct {
	awsconf.Settings
	ListenerARN  string            `json:"listenerArn"`
	RuleARN      string            `json:"ruleArn,omitempty"`
	TargetGroups map[string]string `json:"targetGroups"`
}

// MaxWeight is the largest target group weight ELB accepts.
const MaxWeight = 999

// Provider returns the elbv2 provider for the registry.
func Provider() activities.Provider {
	return activities.Provider{
		Name:        Name,
		Declare:     Declare,
		Traffic:     func(cfg map[string]any) (activities.Traffic, error) { return New(cfg) },
		Permissions: Permissions,
	}
}

// Traffic drives one forward action.
type Traffic struct {
	conn *awsconf.Conn
	cfg  Config

	mu   sync.Mutex
	arns map[string]string // backend -> target group ARN, resolved once
}

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
	if !strings.Contains(c.ListenerARN, ":elasticloadbalancing:") || !strings.Contains(c.ListenerARN, ":listener/") {
		return nil, fmt.Errorf("config: listenerArn %q: want arn:aws:elasticloadbalancing:<region>:<account>:listener/...", c.ListenerARN)
	}
	if c.RuleARN != "" && !strings.Contains(c.RuleARN, ":listener-rule/") {
		return nil, fmt.Errorf("config: ruleArn %q: want arn:aws:elasticloadbalancing:<region>:<account>:listener-rule/...", c.RuleARN)
	}
	if len(c.TargetGroups) == 0 {
		return nil, errors.New("config: targetGroups is required (backend -> target group name or ARN)")
	}
	for b, tg := range c.TargetGroups {
		if b == "" || tg == "" || (!isARN(tg) && strings.ContainsAny(tg, "/: ")) {
			return nil, fmt.Errorf("config: targetGroups: %q -> %q: want backend -> target group name or ARN", b, tg)
		}
	}
	return &Traffic{conn: conn, cfg: c}, nil
}

func isARN(s string) bool { return strings.HasPrefix(s, "arn:") }

func (t *Traffic) resource() string {
	if t.cfg.RuleARN != "" {
		return t.cfg.RuleARN
	}
	return t.cfg.ListenerARN
}

func (t *Traffic) client(ctx context.Context) (*elb.Client, error) {
	cfg, err := t.conn.Config(ctx)
	if err != nil {
		return nil, err
	}
	return elb.NewFromConfig(cfg), nil
}

// targetGroupARNs resolves target group names to ARNs with one
// DescribeTargetGroups call and keeps the answer.
func (t *Traffic) targetGroupARNs(ctx context.Context, c *elb.Client) (map[string]string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.arns != nil {
		return t.arns, nil
	}
	arns := map[string]string{}
	var names []string
	for b, tg := range t.cfg.TargetGroups {
		if isARN(tg) {
			arns[b] = tg
		} else {
			names = append(names, tg)
		}
	}
	if len(names) > 0 {
		sort.Strings(names)
		resp, err := c.DescribeTargetGroups(ctx, &elb.DescribeTargetGroupsInput{Names: names})
		if err != nil {
			return nil, awsconf.Classify(err, "elasticloadbalancing:DescribeTargetGroups", "targetgroup/"+strings.Join(names, ","))
		}
		byName := map[string]string{}
		for _, tg := range resp.TargetGroups {
			byName[aws.ToString(tg.TargetGroupName)] = aws.ToString(tg.TargetGroupArn)
		}
		for b, tg := range t.cfg.TargetGroups {
			if isARN(tg) {
				continue
			}
			arn, ok := byName[tg]
			if !ok {
				return nil, activities.Permanent(fmt.Errorf("elbv2: target group %q (backend %s) not found", tg, b))
			}
			arns[b] = arn
		}
	}
	t.arns = arns
	return arns, nil
}

// actions reads the rule's actions or the listener's default actions.
func (t *Traffic) actions(ctx context.Context, c *elb.Client) ([]types.Action, error) {
	if t.cfg.RuleARN != "" {
		resp, err := c.DescribeRules(ctx, &elb.DescribeRulesInput{RuleArns: []string{t.cfg.RuleARN}})
		if err != nil {
			return nil, awsconf.Classify(err, "elasticloadbalancing:DescribeRules", t.cfg.RuleARN)
		}
		if len(resp.Rules) != 1 {
			return nil, activities.Permanent(fmt.Errorf("elbv2: rule %s: not found", t.cfg.RuleARN))
		}
		return resp.Rules[0].Actions, nil
	}
	resp, err := c.DescribeListeners(ctx, &elb.DescribeListenersInput{ListenerArns: []string{t.cfg.ListenerARN}})
	if err != nil {
		return nil, awsconf.Classify(err, "elasticloadbalancing:DescribeListeners", t.cfg.ListenerARN)
	}
	if len(resp.Listeners) != 1 {
		return nil, activities.Permanent(fmt.Errorf("elbv2: listener %s: not found", t.cfg.ListenerARN))
	}
	return resp.Listeners[0].DefaultActions, nil
}

func forwardIndex(as []types.Action) int {
	for i, a := range as {
		if a.Type == types.ActionTypeEnumForward {
			return i
		}
	}
	return -1
}

// groups returns the forward action's target groups, turning the single
// TargetGroupArn form into a weighted list.
func groups(a types.Action) []types.TargetGroupTuple {
	if a.ForwardConfig != nil && len(a.ForwardConfig.TargetGroups) > 0 {
		return append([]types.TargetGroupTuple(nil), a.ForwardConfig.TargetGroups...)
	}
	if a.TargetGroupArn != nil {
		return []types.TargetGroupTuple{{TargetGroupArn: a.TargetGroupArn, Weight: aws.Int32(1)}}
	}
	return nil
}

// SetWeights rewrites the forward action with the new weights when any
// differs; other actions and the stickiness settings are kept.
func (t *Traffic) SetWeights(ctx context.Context, w activities.Weights) error {
	c, err := t.client(ctx)
	if err != nil {
		return err
	}
	arns, err := t.targetGroupARNs(ctx, c)
	if err != nil {
		return err
	}
	as, err := t.actions(ctx, c)
	if err != nil {
		return err
	}
	i := forwardIndex(as)
	if i < 0 {
		return activities.Permanent(fmt.Errorf("elbv2: %s has no forward action", t.resource()))
	}
	tgs := groups(as[i])
	backends := make([]string, 0, len(w))
	for b := range w {
		backends = append(backends, b)
	}
	sort.Strings(backends)
	changed := false
	for _, b := range backends {
		weight := w[b]
		if weight < 0 || weight > MaxWeight {
			return activities.Permanent(fmt.Errorf("weight of %s: %d: want 0..%d", b, weight, MaxWeight))
		}
		arn, ok := arns[b]
		if !ok {
			return activities.Permanent(fmt.Errorf("elbv2: backend %q is not in targetGroups", b))
		}
		found := false
		for j := range tgs {
			if aws.ToString(tgs[j].TargetGroupArn) == arn {
				found = true
				if aws.ToInt32(tgs[j].Weight) != int32(weight) {
					tgs[j].Weight, changed = aws.Int32(int32(weight)), true
				}
			}
		}
		if !found {
			tgs, changed = append(tgs, types.TargetGroupTuple{TargetGroupArn: aws.String(arn), Weight: aws.Int32(int32(weight))}), true
		}
	}
	if !changed {
		return nil
	}
	fwd := as[i]
	fc := &types.ForwardActionConfig{TargetGroups: tgs}
	if fwd.ForwardConfig != nil {
		fc.TargetGroupStickinessConfig = fwd.ForwardConfig.TargetGroupStickinessConfig
	}
	fwd.ForwardConfig, fwd.TargetGroupArn = fc, nil
	as[i] = fwd
	if t.cfg.RuleARN != "" {
		_, err = c.ModifyRule(ctx, &elb.ModifyRuleInput{RuleArn: aws.String(t.cfg.RuleARN), Actions: as})
		return awsconf.Classify(err, "elasticloadbalancing:ModifyRule", t.cfg.RuleARN)
	}
	_, err = c.ModifyListener(ctx, &elb.ModifyListenerInput{ListenerArn: aws.String(t.cfg.ListenerARN), DefaultActions: as})
	return awsconf.Classify(err, "elasticloadbalancing:ModifyListener", t.cfg.ListenerARN)
}

// Weights reads the forward action back. Target groups not named in the
// settings appear under their name.
func (t *Traffic) Weights(ctx context.Context) (activities.Weights, error) {
	c, err := t.client(ctx)
	if err != nil {
		return nil, err
	}
	arns, err := t.targetGroupARNs(ctx, c)
	if err != nil {
		return nil, err
	}
	as, err := t.actions(ctx, c)
	if err != nil {
		return nil, err
	}
	i := forwardIndex(as)
	if i < 0 {
		return nil, activities.Permanent(fmt.Errorf("elbv2: %s has no forward action", t.resource()))
	}
	byARN := map[string]string{}
	for b, arn := range arns {
		byARN[arn] = b
	}
	out := activities.Weights{}
	for _, tg := range groups(as[i]) {
		arn := aws.ToString(tg.TargetGroupArn)
		b, ok := byARN[arn]
		if !ok {
			b = tgName(arn)
		}
		out[b] = int(aws.ToInt32(tg.Weight))
	}
	return out, nil
}

// tgName takes the name out of .../targetgroup/<name>/<id>.
func tgName(arn string) string {
	parts := strings.Split(arn, "/")
	if len(parts) >= 3 {
		return parts[len(parts)-2]
	}
	return arn
}

// Permissions lists what Traffic needs with cfg.
func Permissions(capability string, cfg map[string]any) ([]activities.Permission, error) {
	if capability != activities.CapTraffic {
		return nil, fmt.Errorf("elbv2: no %s capability", capability)
	}
	t, err := New(cfg)
	if err != nil {
		return nil, err
	}
	modify := activities.Permission{Actions: []string{"elasticloadbalancing:ModifyListener"}, Resources: []string{t.cfg.ListenerARN}}
	if t.cfg.RuleARN != "" {
		modify = activities.Permission{Actions: []string{"elasticloadbalancing:ModifyRule"}, Resources: []string{t.cfg.RuleARN}}
	}
	return []activities.Permission{
		modify,
		// Describe* calls of ELB have no resource-level permissions.
		{Actions: []string{"elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeRules", "elasticloadbalancing:DescribeTargetGroups"}, Resources: []string{"*"}},
	}, nil
}
