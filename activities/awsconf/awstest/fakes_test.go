package awstest_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/awsconf/awstest"
	"github.com/drillship/drillship/activities/cloudwatch"
	"github.com/drillship/drillship/activities/elbv2"
	"github.com/drillship/drillship/activities/fis"
	"github.com/drillship/drillship/activities/route53"
)

// The fakes keep state across calls the way the services do: what a
// provider sets, it reads back.

func TestRoute53Fake(t *testing.T) {
	f := awstest.NewRoute53(t, "www.example.com.", "A", map[string]int{"east": 100, "west": 0})
	tr, err := route53.NewTraffic(map[string]any{"region": "us-east-1", "endpoint": f.URL, "zoneId": "Z1", "name": "www.example.com", "pollInterval": "5ms"}, awstest.LoadOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.SetWeights(context.Background(), activities.Weights{"east": 0, "west": 100}); err != nil {
		t.Fatal(err)
	}
	w, err := tr.Weights(context.Background())
	if err != nil || !reflect.DeepEqual(w, activities.Weights{"east": 0, "west": 100}) || !reflect.DeepEqual(f.Weights(), map[string]int{"east": 0, "west": 100}) {
		t.Errorf("weights = %v, %v (%v)", w, f.Weights(), err)
	}
}

func TestELBv2Fake(t *testing.T) {
	const rule = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/web/1/2/3"
	const v1, v2 = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-v1/1", "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-v2/2"
	f := awstest.NewELBv2(t, rule, map[string]string{"web-v1": v1, "web-v2": v2}, map[string]int{v1: 100})
	tr, err := elbv2.New(map[string]any{"region": "us-east-1", "endpoint": f.URL, "ruleArn": rule,
		"listenerArn":  "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/web/1/2",
		"targetGroups": map[string]any{"v1": "web-v1", "v2": "web-v2"}}, awstest.LoadOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.SetWeights(context.Background(), activities.Weights{"v1": 75, "v2": 25}); err != nil {
		t.Fatal(err)
	}
	w, err := tr.Weights(context.Background())
	if err != nil || !reflect.DeepEqual(w, activities.Weights{"v1": 75, "v2": 25}) || f.Weights()[v2] != 25 {
		t.Errorf("weights = %v, %v (%v)", w, f.Weights(), err)
	}
}

func TestFISFake(t *testing.T) {
	f := awstest.NewFIS(t)
	fl, err := fis.New(map[string]any{"region": "us-east-1", "endpoint": f.URL, "pollInterval": "5ms"}, awstest.LoadOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	fault := activities.Fault{Kind: "experiment", Params: map[string]string{"template": "EXT1abc", "clientToken": "t1"}}
	id, err := fl.Inject(context.Background(), fault)
	if err != nil || f.Status(id) != "running" {
		t.Fatalf("inject: %q %v, status %q", id, err, f.Status(id))
	}
	if again, _ := fl.Inject(context.Background(), fault); again != id {
		t.Errorf("same token started another experiment: %s", again)
	}
	if _, err := fl.Stop(context.Background(), fault, id); err != nil || f.Status(id) != "stopped" {
		t.Errorf("stop: %v, status %q", err, f.Status(id))
	}
}

func TestCloudWatchFake(t *testing.T) {
	f := awstest.NewCloudWatch(t)
	s, err := cloudwatch.New(map[string]any{"region": "us-east-1", "endpoint": f.URL,
		"metrics": map[string]any{"errors": map[string]any{"namespace": "App", "name": "Errors", "stat": "Sum"}},
		"queries": map[string]any{"error_rate": "errors / 100"}}, awstest.LoadOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	smp, err := s.Sample(context.Background(), activities.Query{Metric: "error_rate"})
	if err != nil || !smp.NoData {
		t.Errorf("before SetValue: %+v %v", smp, err)
	}
	f.SetValue(0.5)
	smp, err = s.Sample(context.Background(), activities.Query{Metric: "error_rate"})
	if err != nil || smp.Value != 0.5 || smp.NoData {
		t.Errorf("after SetValue: %+v %v", smp, err)
	}
	fired := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	f.SetAlarm("web-5xx", "ALARM", fired)
	f.SetAlarm("web-5xx", "OK", fired.Add(30*time.Second))
	smp, err = s.Sample(context.Background(), activities.Query{Metric: "alarm", Params: map[string]string{"alarm": "web-5xx"}, Window: time.Hour})
	if err != nil || smp.Value != 1 || smp.At != fired.UnixMilli() {
		t.Errorf("alarm: %+v %v, want fired at %d", smp, err, fired.UnixMilli())
	}
}
