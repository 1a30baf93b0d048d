package iampolicy

import (
	"strings"
	"testing"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/cloudwatch"
	"github.com/drillship/drillship/activities/elbv2"
	"github.com/drillship/drillship/activities/fis"
	"github.com/drillship/drillship/activities/route53"
)

func providers() map[string]activities.Provider {
	m := map[string]activities.Provider{"local": {Name: "local"}}
	for _, p := range []activities.Provider{route53.Provider(), elbv2.Provider(), cloudwatch.Provider(), fis.Provider()} {
		m[p.Name] = p
	}
	return m
}

func TestMergedPolicy(t *testing.T) {
	base := map[string]any{"region": "us-east-1", "accountId": "123456789012"}
	with := func(kv ...any) map[string]any {
		m := map[string]any{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	uses := []Use{
		{Capability: activities.CapTraffic, Target: activities.Target{Provider: "route53", Config: with("zoneId", "Z1", "name", "www.example.com")}},
		// A second zone: same actions, so its ARN joins the first statement.
		{Capability: activities.CapTraffic, Target: activities.Target{Provider: "route53", Config: with("zoneId", "Z2", "name", "api.example.com")}},
		{Capability: activities.CapSignals, Target: activities.Target{Provider: "cloudwatch", Config: with("alarms", []any{"web-5xx"})}},
		{Capability: activities.CapTraffic, Target: activities.Target{Provider: "elbv2", Config: with(
			"listenerArn", "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/web/1/2",
			"targetGroups", map[string]any{"v1": "web-v1"})}},
		{Capability: activities.CapFaults, Target: activities.Target{Provider: "fis", Config: with("templates", []any{"EXT1a2b3c4d5e6f7"})}},
		{Capability: activities.CapTraffic, Target: activities.Target{Provider: "local"}},
	}
	got, err := JSON(FromMap(providers()), uses)
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": [
        "cloudwatch:DescribeAlarmHistory",
        "cloudwatch:DescribeAlarms"
      ],
      "Resource": [
        "arn:aws:cloudwatch:us-east-1:123456789012:alarm:web-5xx"
      ]
    },
    {
      "Effect": "Allow",
      "Action": [
        "cloudwatch:GetMetricData",
        "elasticloadbalancing:DescribeListeners",
        "elasticloadbalancing:DescribeRules",
        "elasticloadbalancing:DescribeTargetGroups",
        "fis:ListExperiments"
      ],
      "Resource": [
        "*"
      ]
    },
    {
      "Effect": "Allow",
      "Action": [
        "elasticloadbalancing:ModifyListener"
      ],
      "Resource": [
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/web/1/2"
      ]
    },
    {
      "Effect": "Allow",
      "Action": [
        "fis:GetExperiment",
        "fis:StopExperiment",
        "fis:TagResource"
      ],
      "Resource": [
        "arn:aws:fis:us-east-1:123456789012:experiment/*"
      ]
    },
    {
      "Effect": "Allow",
      "Action": [
        "fis:StartExperiment"
      ],
      "Resource": [
        "arn:aws:fis:us-east-1:123456789012:experiment-template/EXT1a2b3c4d5e6f7",
        "arn:aws:fis:us-east-1:123456789012:experiment/*"
      ]
    },
    {
      "Effect": "Allow",
      "Action": [
        "route53:ChangeResourceRecordSets",
        "route53:ListResourceRecordSets"
      ],
      "Resource": [
        "arn:aws:route53:::hostedzone/Z1",
        "arn:aws:route53:::hostedzone/Z2"
      ]
    },
    {
      "Effect": "Allow",
      "Action": [
        "route53:GetChange"
      ],
      "Resource": [
        "arn:aws:route53:::change/*"
      ]
    }
  ]
}
`
	if string(got) != want {
		t.Errorf("policy =\n%s\nwant\n%s", got, want)
	}
	// Same uses in another order: same document.
	for i, j := 0, len(uses)-1; i < j; i, j = i+1, j-1 {
		uses[i], uses[j] = uses[j], uses[i]
	}
	again, _ := JSON(FromMap(providers()), uses)
	if string(again) != want {
		t.Error("output depends on the order of uses")
	}
	doc, _ := Build(FromMap(providers()), uses)
	for _, st := range doc.Statement {
		for _, a := range st.Action {
			if strings.ContainsAny(a, "*?") {
				t.Errorf("wildcard action %q", a)
			}
		}
	}
}

func TestRejectsWildcardActionsAndUnknownProviders(t *testing.T) {
	bad := activities.Provider{Name: "bad", Permissions: func(string, map[string]any) ([]activities.Permission, error) {
		return []activities.Permission{{Actions: []string{"s3:*"}, Resources: []string{"*"}}}, nil
	}}
	_, err := Build(FromMap(map[string]activities.Provider{"bad": bad}), []Use{{Capability: activities.CapRunner, Target: activities.Target{Provider: "bad"}}})
	if err == nil || !strings.Contains(err.Error(), `action "s3:*"`) {
		t.Errorf("wildcard: %v", err)
	}
	_, err = Build(FromMap(nil), []Use{{Capability: activities.CapTraffic, Target: activities.Target{Provider: "nope"}}})
	if err == nil || !strings.Contains(err.Error(), `provider "nope": not registered`) {
		t.Errorf("unknown: %v", err)
	}
	_, err = Build(FromMap(providers()), []Use{{Capability: activities.CapTraffic, Target: activities.Target{Provider: "route53", Config: map[string]any{"zoneId": "Z1"}}}})
	if err == nil || !strings.Contains(err.Error(), "region is required") {
		t.Errorf("bad settings: %v", err)
	}
}
