package elbv2

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/awsconf/awstest"
)

const (
	listener = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2"
	rule     = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee"
	tgV1     = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-v1/73e2d6bc24d8a067"
	tgV2     = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-v2/2453ed029918f21f"
)

func describeRules(w1, w2 string) awstest.Handler {
	return awstest.Fixed(awstest.XML(`<DescribeRulesResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/">
  <DescribeRulesResult>
    <Rules>
      <member>
        <IsDefault>false</IsDefault>
        <Conditions><member><Field>path-pattern</Field><Values><member>/img/*</member></Values></member></Conditions>
        <Priority>10</Priority>
        <Actions>
          <member>
            <Type>forward</Type>
            <Order>1</Order>
            <ForwardConfig>
              <TargetGroups>
                <member><TargetGroupArn>` + tgV1 + `</TargetGroupArn><Weight>` + w1 + `</Weight></member>
                <member><TargetGroupArn>` + tgV2 + `</TargetGroupArn><Weight>` + w2 + `</Weight></member>
              </TargetGroups>
              <TargetGroupStickinessConfig><Enabled>false</Enabled></TargetGroupStickinessConfig>
            </ForwardConfig>
          </member>
        </Actions>
        <RuleArn>` + rule + `</RuleArn>
      </member>
    </Rules>
  </DescribeRulesResult>
  <ResponseMetadata><RequestId>74926cf3-f3a3-11e5-b543-9f2c3fbb9bee</RequestId></ResponseMetadata>
</DescribeRulesResponse>`))
}

const describeTG = `<DescribeTargetGroupsResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/">
  <DescribeTargetGroupsResult>
    <TargetGroups>
      <member><TargetGroupArn>` + tgV1 + `</TargetGroupArn><TargetGroupName>web-v1</TargetGroupName><Protocol>HTTP</Protocol><Port>80</Port></member>
    </TargetGroups>
  </DescribeTargetGroupsResult>
  <ResponseMetadata><RequestId>70092c0e-f3a9-11e5-ae48-cff02092876b</RequestId></ResponseMetadata>
</DescribeTargetGroupsResponse>`

func settings(srv *awstest.Server) map[string]any {
	return map[string]any{"region": "us-east-1", "endpoint": srv.URL, "listenerArn": listener, "ruleArn": rule,
		"targetGroups": map[string]any{"v1": "web-v1", "v2": tgV2}}
}

func TestModifyRuleWeights(t *testing.T) {
	srv := awstest.New(t, awstest.Query)
	srv.Handle("DescribeTargetGroups", awstest.Fixed(awstest.XML(describeTG)))
	srv.Handle("DescribeRules", describeRules("100", "0"))
	srv.Handle("ModifyRule", awstest.Fixed(awstest.XML(`<ModifyRuleResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/">
  <ModifyRuleResult><Rules><member><RuleArn>`+rule+`</RuleArn></member></Rules></ModifyRuleResult>
  <ResponseMetadata><RequestId>c5478c83-f397-11e5-bb98-57195a6eb84a</RequestId></ResponseMetadata>
</ModifyRuleResponse>`)))
	tr, err := New(settings(srv), awstest.LoadOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.SetWeights(context.Background(), activities.Weights{"v1": 80, "v2": 20}); err != nil {
		t.Fatal(err)
	}
	if ops := srv.Ops(); !reflect.DeepEqual(ops, []string{"DescribeTargetGroups", "DescribeRules", "ModifyRule"}) {
		t.Errorf("ops = %v", ops)
	}
	if f := srv.Requests("DescribeTargetGroups")[0].Form; f.Get("Names.member.1") != "web-v1" {
		t.Errorf("DescribeTargetGroups form = %v", f)
	}
	f := srv.Requests("ModifyRule")[0].Form
	want := map[string]string{
		"Action":                 "ModifyRule",
		"Version":                "2015-12-01",
		"RuleArn":                rule,
		"Actions.member.1.Type":  "forward",
		"Actions.member.1.Order": "1",
		"Actions.member.1.ForwardConfig.TargetGroups.member.1.TargetGroupArn": tgV1,
		"Actions.member.1.ForwardConfig.TargetGroups.member.1.Weight":         "80",
		"Actions.member.1.ForwardConfig.TargetGroups.member.2.TargetGroupArn": tgV2,
		"Actions.member.1.ForwardConfig.TargetGroups.member.2.Weight":         "20",
		"Actions.member.1.ForwardConfig.TargetGroupStickinessConfig.Enabled":  "false",
	}
	for k, v := range want {
		if f.Get(k) != v {
			t.Errorf("ModifyRule %s = %q, want %q", k, f.Get(k), v)
		}
	}
	if f.Has("Actions.member.1.TargetGroupArn") || f.Has("Conditions.member.1.Field") {
		t.Errorf("ModifyRule sent more than the actions: %v", f)
	}

	// Weights reads the rule back through the same mapping.
	srv.Handle("DescribeRules", describeRules("80", "20"))
	w, err := tr.Weights(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(w, activities.Weights{"v1": 80, "v2": 20}) {
		t.Errorf("weights = %v", w)
	}
	// Same weights again: no ModifyRule.
	if err := tr.SetWeights(context.Background(), activities.Weights{"v1": 80, "v2": 20}); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Requests("ModifyRule")); n != 1 {
		t.Errorf("ModifyRule calls = %d, want 1", n)
	}
}

func TestListenerDefaultAction(t *testing.T) {
	srv := awstest.New(t, awstest.Query)
	srv.Handle("DescribeListeners", awstest.Fixed(awstest.XML(`<DescribeListenersResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/">
  <DescribeListenersResult><Listeners><member>
    <LoadBalancerArn>arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188</LoadBalancerArn>
    <Protocol>HTTP</Protocol><Port>80</Port><ListenerArn>`+listener+`</ListenerArn>
    <DefaultActions><member><Type>forward</Type><TargetGroupArn>`+tgV1+`</TargetGroupArn></member></DefaultActions>
  </member></Listeners></DescribeListenersResult>
  <ResponseMetadata><RequestId>18e470d3-f39c-11e5-a53c-67205c0d10fd</RequestId></ResponseMetadata>
</DescribeListenersResponse>`)))
	srv.Handle("ModifyListener", awstest.Fixed(awstest.XML(`<ModifyListenerResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/">
  <ModifyListenerResult><Listeners><member><ListenerArn>`+listener+`</ListenerArn></member></Listeners></ModifyListenerResult>
  <ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></ModifyListenerResponse>`)))
	cfg := settings(srv)
	delete(cfg, "ruleArn")
	cfg["targetGroups"] = map[string]any{"v1": tgV1, "v2": tgV2}
	tr, err := New(cfg, awstest.LoadOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.SetWeights(context.Background(), activities.Weights{"v2": 5}); err != nil {
		t.Fatal(err)
	}
	f := srv.Requests("ModifyListener")[0].Form
	if f.Get("ListenerArn") != listener ||
		f.Get("DefaultActions.member.1.ForwardConfig.TargetGroups.member.1.TargetGroupArn") != tgV1 ||
		f.Get("DefaultActions.member.1.ForwardConfig.TargetGroups.member.1.Weight") != "1" ||
		f.Get("DefaultActions.member.1.ForwardConfig.TargetGroups.member.2.TargetGroupArn") != tgV2 ||
		f.Get("DefaultActions.member.1.ForwardConfig.TargetGroups.member.2.Weight") != "5" ||
		f.Has("DefaultActions.member.1.TargetGroupArn") {
		t.Errorf("ModifyListener form = %v", f)
	}
}

func TestErrors(t *testing.T) {
	srv := awstest.New(t, awstest.Query)
	srv.Handle("DescribeTargetGroups", awstest.Fixed(awstest.XML(describeTG)))
	srv.Handle("DescribeRules", describeRules("100", "0"))
	srv.Handle("ModifyRule", awstest.Sequence(
		awstest.Fixed(srv.Error(400, "Throttling", "Rate exceeded")),
		awstest.Fixed(srv.Error(400, "Throttling", "Rate exceeded")),
		awstest.Fixed(srv.Error(403, "AccessDenied", "not authorized to perform elasticloadbalancing:ModifyRule"))))
	tr, _ := New(settings(srv), awstest.LoadOptions()...)
	err := tr.SetWeights(context.Background(), activities.Weights{"v2": 50})
	if err == nil || activities.IsPermanent(err) {
		t.Fatalf("throttled: err = %v, want a plain (retryable) error", err)
	}
	err = tr.SetWeights(context.Background(), activities.Weights{"v2": 50})
	if !activities.IsPermanent(err) || !strings.HasPrefix(err.Error(), "elasticloadbalancing:ModifyRule on "+rule+": AccessDenied: ") {
		t.Errorf("denied: err = %v", err)
	}
}

func TestPermissions(t *testing.T) {
	ps, err := Permissions(activities.CapTraffic, map[string]any{"region": "us-east-1", "listenerArn": listener, "ruleArn": rule,
		"targetGroups": map[string]any{"v1": "web-v1"}})
	if err != nil {
		t.Fatal(err)
	}
	if ps[0].Actions[0] != "elasticloadbalancing:ModifyRule" || !reflect.DeepEqual(ps[0].Resources, []string{rule}) {
		t.Errorf("permissions = %+v", ps)
	}
}
