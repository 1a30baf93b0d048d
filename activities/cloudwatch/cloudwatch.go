// Package cloudwatch is the Amazon CloudWatch provider for Signals: metric
// math over metrics named in the settings (GetMetricData), and alarm state
// with the time it went into ALARM (DescribeAlarms, DescribeAlarmHistory).
package cloudwatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	cw "github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/awsconf"
)

// Name is the provider name in specs.
const Name = "cloudwatch"

// Config is the Signals settings.
//
//	region: us-east-1
//	period: 60s                 # metric period, default 60s (a multiple of 60s, or 1s/5s/10s/30s)
//	metrics:                    # metric ids usable in expressions
//	  errors:   {namespace: AWS/ApplicationELB, name: HTTPCode_Target_5XX_Count, stat: Sum,
//	             dimensions: {LoadBalancer: app/web/50dc6c495c0c9188, TargetGroup: "targetgroup/web-{{version}}/73e2d6bc24d8a067"}}
//	  requests: {namespace: AWS/ApplicationELB, name: RequestCount, stat: Sum, dimensions: {LoadBalancer: app/web/50dc6c495c0c9188}}
//	queries:                    # portable metric -> metric math over the ids above
//	  error_rate: "errors / requests"
//	  request_rate: "requests / PERIOD(requests)"
//	alarms: [web-5xx]           # alarms queries may name (for iam-policy; default any)
//
// A query's Expr, when set, replaces queries[metric]; "{{key}}" in a
// dimension value is replaced by Scope[key] (not ${key}: DecodeConfig
// expands that from the environment). Metric "alarm" reads
// Params["alarm"].
type Config struct {
	awsconf.Settings
	Period  string            `json:"period,omitempty"`
	Metrics map[string]Metric `json:"metrics,omitempty"`
	Queries map[string]string `json:"queries,omitempty"`
	Alarms  []string          `json:"alarms,omitempty"`
}

// Metric is one CloudWatch metric and statistic.
type Metric struct {
	Namespace  string            `json:"namespace"`
	Name       string            `json:"name"`
	Stat       string            `json:"stat"`
	Dimensions map[string]string `json:"dimensions,omitempty"`
}

// Provider returns the cloudwatch provider for the registry.
func Provider() activities.Provider {
	return activities.Provider{
		Name:        Name,
		Declare:     Declare,
		Signals:     func(cfg map[string]any) (activities.Signals, error) { return New(cfg) },
		Permissions: Permissions,
	}
}

// Signals reads CloudWatch metrics and alarms.
type Signals struct {
	conn   *awsconf.Conn
	cfg    Config
	period time.Duration
	now    func() time.Time
}

var idRe = regexp.MustCompile(`^[a-z][a-zA-Z0-9_]{0,254}$`)

// New validates the settings; it does no I/O.
func New(cfg map[string]any, opts ...func(*config.LoadOptions) error) (*Signals, error) {
	var c Config
	if err := activities.DecodeConfig(cfg, &c); err != nil {
		return nil, err
	}
	conn, err := awsconf.New(c.Settings, opts...)
	if err != nil {
		return nil, err
	}
	s := &Signals{conn: conn, cfg: c, period: time.Minute, now: time.Now}
	if c.Period != "" {
		d, err := time.ParseDuration(c.Period)
		ok := err == nil && (d == time.Second || d == 5*time.Second || d == 10*time.Second || d == 30*time.Second || (d >= time.Minute && d%time.Minute == 0))
		if !ok {
			return nil, fmt.Errorf("config: period %q: want 1s, 5s, 10s, 30s or a multiple of 60s", c.Period)
		}
		s.period = d
	}
	for id, m := range c.Metrics {
		if !idRe.MatchString(id) {
			return nil, fmt.Errorf("config: metrics: id %q: want a lower-case start, then letters, digits or _", id)
		}
		if m.Namespace == "" || m.Name == "" || m.Stat == "" {
			return nil, fmt.Errorf("config: metrics.%s: namespace, name and stat are required", id)
		}
	}
	for q, e := range c.Queries {
		if strings.TrimSpace(e) == "" {
			return nil, fmt.Errorf("config: queries.%s: empty expression", q)
		}
	}
	return s, nil
}

func (s *Signals) client(ctx context.Context) (*cw.Client, error) {
	cfg, err := s.conn.Config(ctx)
	if err != nil {
		return nil, err
	}
	return cw.NewFromConfig(cfg), nil
}

// Sample answers metric "alarm" from alarm state and history, and any
// other metric from GetMetricData.
func (s *Signals) Sample(ctx context.Context, q activities.Query) (activities.Sample, error) {
	c, err := s.client(ctx)
	if err != nil {
		return activities.Sample{}, err
	}
	if q.Metric == activities.MetricAlarm {
		return s.alarm(ctx, c, q)
	}
	return s.metric(ctx, c, q)
}

// resultID is the id of the query whose value is returned.
const resultID = "result"

// queries builds the MetricDataQueries of one sample.
func (s *Signals) queries(q activities.Query) ([]types.MetricDataQuery, string, error) {
	expr := q.Expr
	if expr == "" {
		expr = s.cfg.Queries[q.Metric]
	}
	if expr == "" {
		return nil, "", activities.Permanent(fmt.Errorf("cloudwatch: metric %q: no expr in the query and no queries.%s in the settings", q.Metric, q.Metric))
	}
	ids := make([]string, 0, len(s.cfg.Metrics))
	for id := range s.cfg.Metrics {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var out []types.MetricDataQuery
	ret := resultID
	for _, id := range ids {
		if !referenced(expr, id) {
			continue // GetMetricData rejects unused metrics only by cost; skip them
		}
		m := s.cfg.Metrics[id]
		dims := make([]types.Dimension, 0, len(m.Dimensions))
		names := make([]string, 0, len(m.Dimensions))
		for n := range m.Dimensions {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			v := m.Dimensions[n]
			for k, sv := range q.Scope {
				v = strings.ReplaceAll(v, "{{"+k+"}}", sv)
			}
			if strings.Contains(v, "{{") {
				return nil, "", activities.Permanent(fmt.Errorf("cloudwatch: metrics.%s dimension %s %q: scope has no value for it", id, n, v))
			}
			dims = append(dims, types.Dimension{Name: aws.String(n), Value: aws.String(v)})
		}
		out = append(out, types.MetricDataQuery{
			Id: aws.String(id),
			MetricStat: &types.MetricStat{
				Metric: &types.Metric{Namespace: aws.String(m.Namespace), MetricName: aws.String(m.Name), Dimensions: dims},
				Period: aws.Int32(int32(s.period / time.Second)), Stat: aws.String(m.Stat),
			},
			ReturnData: aws.Bool(strings.TrimSpace(expr) == id),
		})
		if strings.TrimSpace(expr) == id {
			ret = id
		}
	}
	if ret == resultID {
		out = append(out, types.MetricDataQuery{Id: aws.String(resultID), Expression: aws.String(expr),
			Period: aws.Int32(int32(s.period / time.Second)), ReturnData: aws.Bool(true)})
	}
	return out, ret, nil
}

func referenced(expr, id string) bool {
	return regexp.MustCompile(`\b` + regexp.QuoteMeta(id) + `\b`).MatchString(expr)
}

func (s *Signals) metric(ctx context.Context, c *cw.Client, q activities.Query) (activities.Sample, error) {
	mq, ret, err := s.queries(q)
	if err != nil {
		return activities.Sample{}, err
	}
	window := q.Window
	if window <= 0 {
		window = 5 * time.Minute
	}
	if window < s.period {
		window = s.period
	}
	end := s.now().UTC().Truncate(time.Second)
	resp, err := c.GetMetricData(ctx, &cw.GetMetricDataInput{
		MetricDataQueries: mq, StartTime: aws.Time(end.Add(-window)), EndTime: aws.Time(end),
		ScanBy: types.ScanByTimestampDescending,
	})
	if err != nil {
		return activities.Sample{}, awsconf.Classify(err, "cloudwatch:GetMetricData", "metric "+q.Metric)
	}
	for _, r := range resp.MetricDataResults {
		if aws.ToString(r.Id) != ret {
			continue
		}
		if len(r.Values) == 0 || len(r.Timestamps) == 0 {
			return activities.Sample{NoData: true, At: end.UnixMilli(), Detail: "no datapoints in " + window.String()}, nil
		}
		// Newest first (ScanBy TimestampDescending).
		return activities.Sample{Value: r.Values[0], At: r.Timestamps[0].UnixMilli(), Detail: string(r.StatusCode)}, nil
	}
	for _, m := range resp.Messages {
		return activities.Sample{}, activities.Permanent(fmt.Errorf("cloudwatch: metric %s: %s: %s", q.Metric, aws.ToString(m.Code), aws.ToString(m.Value)))
	}
	return activities.Sample{NoData: true, At: end.UnixMilli(), Detail: "no result"}, nil
}

// alarm reports 1 when the alarm is in ALARM, or went into ALARM within the
// query's window and is out of it again, with the time of that transition.
func (s *Signals) alarm(ctx context.Context, c *cw.Client, q activities.Query) (activities.Sample, error) {
	name := q.Params["alarm"]
	if name == "" {
		return activities.Sample{}, activities.Permanent(errors.New("cloudwatch: metric alarm needs params.alarm (the alarm name)"))
	}
	res := "alarm:" + name
	resp, err := c.DescribeAlarms(ctx, &cw.DescribeAlarmsInput{AlarmNames: []string{name},
		AlarmTypes: []types.AlarmType{types.AlarmTypeMetricAlarm, types.AlarmTypeCompositeAlarm}})
	if err != nil {
		return activities.Sample{}, awsconf.Classify(err, "cloudwatch:DescribeAlarms", res)
	}
	var state types.StateValue
	var updated, transitioned *time.Time
	switch {
	case len(resp.MetricAlarms) > 0:
		a := resp.MetricAlarms[0]
		state, updated, transitioned = a.StateValue, a.StateUpdatedTimestamp, a.StateTransitionedTimestamp
	case len(resp.CompositeAlarms) > 0:
		a := resp.CompositeAlarms[0]
		state, updated, transitioned = a.StateValue, a.StateUpdatedTimestamp, a.StateTransitionedTimestamp
	default:
		return activities.Sample{}, activities.Permanent(fmt.Errorf("cloudwatch: alarm %q not found", name))
	}
	// The transition time is when the state changed; the update time also
	// moves when only the reason changes. Prefer the first, keep the second
	// for alarms that lack it.
	at := aws.ToTime(updated)
	if transitioned != nil {
		at = *transitioned
	}
	if state == types.StateValueAlarm {
		return activities.Sample{Value: 1, At: at.UnixMilli(), Detail: "ALARM"}, nil
	}
	window := q.Window
	if window <= 0 {
		return activities.Sample{Value: 0, At: at.UnixMilli(), Detail: string(state)}, nil
	}
	end := s.now().UTC()
	hist, err := c.DescribeAlarmHistory(ctx, &cw.DescribeAlarmHistoryInput{
		AlarmName: aws.String(name), HistoryItemType: types.HistoryItemTypeStateUpdate,
		AlarmTypes: []types.AlarmType{types.AlarmTypeMetricAlarm, types.AlarmTypeCompositeAlarm},
		StartDate:  aws.Time(end.Add(-window)), EndDate: aws.Time(end),
		ScanBy: types.ScanByTimestampDescending, MaxRecords: aws.Int32(100),
	})
	if err != nil {
		return activities.Sample{}, awsconf.Classify(err, "cloudwatch:DescribeAlarmHistory", res)
	}
	for _, h := range hist.AlarmHistoryItems {
		if intoAlarm(h) {
			ts := aws.ToTime(h.Timestamp)
			return activities.Sample{Value: 1, At: ts.UnixMilli(),
				Detail: fmt.Sprintf("went into ALARM at %s, now %s", ts.Format(time.RFC3339), state)}, nil
		}
	}
	return activities.Sample{Value: 0, At: at.UnixMilli(), Detail: string(state)}, nil
}

// intoAlarm reads a StateUpdate history item's JSON data.
func intoAlarm(h types.AlarmHistoryItem) bool {
	var d struct {
		NewState struct {
			StateValue string `json:"stateValue"`
		} `json:"newState"`
	}
	if err := json.Unmarshal([]byte(aws.ToString(h.HistoryData)), &d); err == nil && d.NewState.StateValue != "" {
		return d.NewState.StateValue == string(types.StateValueAlarm)
	}
	return strings.HasSuffix(aws.ToString(h.HistorySummary), " to ALARM")
}

// Permissions lists what Signals needs with cfg.
func Permissions(capability string, cfg map[string]any) ([]activities.Permission, error) {
	if capability != activities.CapSignals {
		return nil, fmt.Errorf("cloudwatch: no %s capability", capability)
	}
	s, err := New(cfg)
	if err != nil {
		return nil, err
	}
	alarms := []string{s.conn.ARN("cloudwatch", "alarm:*")}
	if len(s.cfg.Alarms) > 0 {
		alarms = alarms[:0]
		for _, a := range s.cfg.Alarms {
			alarms = append(alarms, s.conn.ARN("cloudwatch", "alarm:"+a))
		}
		sort.Strings(alarms)
	}
	return []activities.Permission{
		{Actions: []string{"cloudwatch:DescribeAlarmHistory", "cloudwatch:DescribeAlarms"}, Resources: alarms},
		// GetMetricData has no resource-level permissions.
		{Actions: []string{"cloudwatch:GetMetricData"}, Resources: []string{"*"}},
	}, nil
}
