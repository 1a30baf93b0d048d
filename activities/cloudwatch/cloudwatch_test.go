package cloudwatch

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/awsconf/awstest"
)

var now = time.Date(2026, 11, 23, 20, 30, 0, 0, time.UTC)

func newSignals(t *testing.T, srv *awstest.Server) *Signals {
	s, err := New(map[string]any{"region": "us-east-1", "endpoint": srv.URL, "period": "60s",
		"metrics": map[string]any{
			"errors":   map[string]any{"namespace": "AWS/ApplicationELB", "name": "HTTPCode_Target_5XX_Count", "stat": "Sum", "dimensions": map[string]any{"LoadBalancer": "app/web/50dc", "TargetGroup": "targetgroup/web-{{version}}/73e2"}},
			"requests": map[string]any{"namespace": "AWS/ApplicationELB", "name": "RequestCount", "stat": "Sum", "dimensions": map[string]any{"LoadBalancer": "app/web/50dc", "TargetGroup": "targetgroup/web-{{version}}/73e2"}},
			"latency":  map[string]any{"namespace": "AWS/ApplicationELB", "name": "TargetResponseTime", "stat": "p99"},
		},
		"queries": map[string]any{"error_rate": "errors / requests"},
	}, awstest.LoadOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return now }
	return s
}

func TestMetricMathOverCBOR(t *testing.T) {
	srv := awstest.New(t, awstest.CBOR)
	srv.Handle("GetMetricData", awstest.Fixed(srv.JSON(map[string]any{
		"MetricDataResults": []any{map[string]any{
			"Id": "result", "Label": "result", "StatusCode": "Complete",
			"Timestamps": []time.Time{now.Add(-time.Minute), now.Add(-2 * time.Minute)},
			"Values":     []float64{0.025, 0.01},
		}},
		"Messages": []any{},
	})))
	s := newSignals(t, srv)
	smp, err := s.Sample(context.Background(), activities.Query{Metric: "error_rate", Scope: map[string]string{"version": "v2"}, Window: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if smp.Value != 0.025 || smp.At != now.Add(-time.Minute).UnixMilli() || smp.NoData {
		t.Errorf("sample = %+v", smp)
	}
	r := srv.Requests("GetMetricData")[0]
	if r.Path != "/service/GraniteServiceVersion20100801/operation/GetMetricData" || r.Header.Get("Smithy-Protocol") != "rpc-v2-cbor" {
		t.Errorf("request %s %v", r.Path, r.Header)
	}
	if r.Doc["StartTime"] != now.Add(-10*time.Minute) || r.Doc["EndTime"] != now || r.Doc["ScanBy"] != "TimestampDescending" {
		t.Errorf("times = %v .. %v", r.Doc["StartTime"], r.Doc["EndTime"])
	}
	dims := []any{map[string]any{"Name": "LoadBalancer", "Value": "app/web/50dc"}, map[string]any{"Name": "TargetGroup", "Value": "targetgroup/web-v2/73e2"}}
	want := []any{
		map[string]any{"Id": "errors", "ReturnData": false, "MetricStat": map[string]any{"Period": 60.0, "Stat": "Sum",
			"Metric": map[string]any{"Namespace": "AWS/ApplicationELB", "MetricName": "HTTPCode_Target_5XX_Count", "Dimensions": dims}}},
		map[string]any{"Id": "requests", "ReturnData": false, "MetricStat": map[string]any{"Period": 60.0, "Stat": "Sum",
			"Metric": map[string]any{"Namespace": "AWS/ApplicationELB", "MetricName": "RequestCount", "Dimensions": dims}}},
		map[string]any{"Id": "result", "Expression": "errors / requests", "Period": 60.0, "ReturnData": true},
	}
	if got := r.Doc["MetricDataQueries"]; !reflect.DeepEqual(got, want) {
		t.Errorf("MetricDataQueries =\n%v\nwant\n%v", got, want)
	}
}

func TestAlarmBackToOKUsesHistory(t *testing.T) {
	srv := awstest.New(t, awstest.CBOR)
	srv.Handle("DescribeAlarms", awstest.Fixed(srv.JSON(map[string]any{"MetricAlarms": []any{map[string]any{
		"AlarmName": "web-5xx", "AlarmArn": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:web-5xx",
		"StateValue": "OK", "StateReason": "Threshold Crossed",
		"StateUpdatedTimestamp": now.Add(-time.Minute), "StateTransitionedTimestamp": now.Add(-time.Minute),
	}}, "CompositeAlarms": []any{}})))
	fired := now.Add(-4*time.Minute + 250*time.Millisecond)
	srv.Handle("DescribeAlarmHistory", awstest.Fixed(srv.JSON(map[string]any{"AlarmHistoryItems": []any{
		map[string]any{"AlarmName": "web-5xx", "AlarmType": "MetricAlarm", "Timestamp": now.Add(-time.Minute), "HistoryItemType": "StateUpdate",
			"HistorySummary": "Alarm updated from ALARM to OK",
			"HistoryData":    `{"version":"1.0","oldState":{"stateValue":"ALARM"},"newState":{"stateValue":"OK"}}`},
		map[string]any{"AlarmName": "web-5xx", "AlarmType": "MetricAlarm", "Timestamp": fired, "HistoryItemType": "StateUpdate",
			"HistorySummary": "Alarm updated from OK to ALARM",
			"HistoryData":    `{"version":"1.0","oldState":{"stateValue":"OK"},"newState":{"stateValue":"ALARM"}}`},
	}})))
	s := newSignals(t, srv)
	smp, err := s.Sample(context.Background(), activities.Query{Metric: "alarm", Params: map[string]string{"alarm": "web-5xx"}, Window: 15 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if smp.Value != 1 || smp.At != fired.UnixMilli() || !strings.Contains(smp.Detail, "now OK") {
		t.Errorf("sample = %+v, want 1 at %d", smp, fired.UnixMilli())
	}
	h := srv.Requests("DescribeAlarmHistory")[0].Doc
	if h["AlarmName"] != "web-5xx" || h["HistoryItemType"] != "StateUpdate" || h["StartDate"] != now.Add(-15*time.Minute) {
		t.Errorf("DescribeAlarmHistory = %v", h)
	}
	if d := srv.Requests("DescribeAlarms")[0].Doc; !reflect.DeepEqual(d["AlarmNames"], []any{"web-5xx"}) {
		t.Errorf("DescribeAlarms = %v", d)
	}
}

func TestAlarmFiring(t *testing.T) {
	srv := awstest.New(t, awstest.CBOR)
	srv.Handle("DescribeAlarms", awstest.Fixed(srv.JSON(map[string]any{"MetricAlarms": []any{map[string]any{
		"AlarmName": "web-5xx", "StateValue": "ALARM",
		"StateUpdatedTimestamp": now.Add(-time.Second), "StateTransitionedTimestamp": now.Add(-2 * time.Minute),
	}}})))
	s := newSignals(t, srv)
	smp, err := s.Sample(context.Background(), activities.Query{Metric: "alarm", Params: map[string]string{"alarm": "web-5xx"}, Window: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if smp.Value != 1 || smp.At != now.Add(-2*time.Minute).UnixMilli() {
		t.Errorf("sample = %+v", smp)
	}
	if len(srv.Requests("DescribeAlarmHistory")) != 0 {
		t.Error("history read for a firing alarm")
	}
}

func TestErrors(t *testing.T) {
	srv := awstest.New(t, awstest.CBOR)
	srv.Handle("GetMetricData", awstest.Sequence(
		awstest.Fixed(srv.Error(400, "Throttling", "Rate exceeded")),
		awstest.Fixed(srv.Error(400, "Throttling", "Rate exceeded")),
		awstest.Fixed(srv.Error(403, "AccessDenied", "not authorized to perform: cloudwatch:GetMetricData"))))
	s := newSignals(t, srv)
	q := activities.Query{Metric: "latency_p99", Expr: "latency"}
	_, err := s.Sample(context.Background(), q)
	if err == nil || activities.IsPermanent(err) {
		t.Fatalf("throttled: %v", err)
	}
	_, err = s.Sample(context.Background(), q)
	if !activities.IsPermanent(err) || !strings.HasPrefix(err.Error(), "cloudwatch:GetMetricData on metric latency_p99: AccessDenied: ") {
		t.Errorf("denied: %v", err)
	}
	// A bare metric id returns that metric: no expression query.
	qs := srv.Requests("GetMetricData")[2].Doc["MetricDataQueries"].([]any)
	if len(qs) != 1 || qs[0].(map[string]any)["Id"] != "latency" || qs[0].(map[string]any)["ReturnData"] != true {
		t.Errorf("queries = %v", qs)
	}
}
