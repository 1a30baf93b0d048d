// Package route53 is the Route 53 provider. Traffic moves weight between the
// weighted record sets of one name and type in a hosted zone; Signals reports
// whether a Route 53 health check's checkers all see the endpoint healthy.
package route53

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	r53 "github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/awsconf"
)

// Name is the provider name in specs.
const Name = "route53"

// TrafficConfig is the Traffic settings.
//
//	region: us-east-1
//	zoneId: Z0123456789ABC
//	name: www.example.com          # record name (a trailing dot is added)
//	type: A                        # record type, default A
//	backends: {v1: blue, v2: green} # optional: drillship backend -> SetIdentifier;
//	                                # backends not listed are SetIdentifiers themselves
type TrafficConfig struct {
	awsconf.Settings
	ZoneID   string            `json:"zoneId"`
	Name     string            `json:"name"`
	Type     string            `json:"type,omitempty"`
	Backends map[string]string `json:"backends,omitempty"`
}

// SignalsConfig is the Signals settings.
//
//	region: us-east-1
//	healthCheckId: 8d3b6a7e-...   # optional default; Query.Params["healthCheck"] overrides
type SignalsConfig struct {
	awsconf.Settings
	HealthCheckID string `json:"healthCheckId,omitempty"`
}

// Provider returns the route53 provider for the registry.
func Provider() activities.Provider {
	return activities.Provider{
		Name:        Name,
		Traffic:     func(cfg map[string]any) (activities.Traffic, error) { return NewTraffic(cfg) },
		Signals:     func(cfg map[string]any) (activities.Signals, error) { return NewSignals(cfg) },
		Permissions: Permissions,
	}
}

var recordTypes = map[string]bool{"A": true, "AAAA": true, "CNAME": true, "MX": true, "TXT": true, "SRV": true, "NS": true, "CAA": true, "PTR": true, "SPF": true, "NAPTR": true, "DS": true, "HTTPS": true, "SVCB": true}

// Traffic drives the weighted record sets of one name and type.
type Traffic struct {
	conn     *awsconf.Conn
	zone     string
	name     string
	rtype    types.RRType
	toSetID  map[string]string
	fromSet  map[string]string
	resource string
}

// NewTraffic validates the settings; it does no I/O.
func NewTraffic(cfg map[string]any, opts ...func(*config.LoadOptions) error) (*Traffic, error) {
	var c TrafficConfig
	if err := activities.DecodeConfig(cfg, &c); err != nil {
		return nil, err
	}
	conn, err := awsconf.New(c.Settings, opts...)
	if err != nil {
		return nil, err
	}
	zone := strings.TrimPrefix(c.ZoneID, "/hostedzone/")
	if zone == "" || strings.ContainsAny(zone, "/ ") {
		return nil, fmt.Errorf("config: zoneId %q: want a hosted zone id such as Z0123456789ABC", c.ZoneID)
	}
	if c.Name == "" {
		return nil, errors.New("config: name is required (the record name, such as www.example.com)")
	}
	if c.Type == "" {
		c.Type = "A"
	}
	if !recordTypes[c.Type] {
		return nil, fmt.Errorf("config: type %q: want a record type such as A, AAAA or CNAME", c.Type)
	}
	t := &Traffic{conn: conn, zone: zone, name: fqdn(c.Name), rtype: types.RRType(c.Type),
		toSetID: map[string]string{}, fromSet: map[string]string{}, resource: "hostedzone/" + zone}
	for b, id := range c.Backends {
		if b == "" || id == "" {
			return nil, fmt.Errorf("config: backends: %q -> %q: want non-empty backend and SetIdentifier", b, id)
		}
		if other, dup := t.fromSet[id]; dup {
			return nil, fmt.Errorf("config: backends: %q and %q both map to SetIdentifier %q", other, b, id)
		}
		t.toSetID[b], t.fromSet[id] = id, b
	}
	return t, nil
}

func fqdn(n string) string {
	n = strings.ToLower(n)
	if !strings.HasSuffix(n, ".") {
		n += "."
	}
	return n
}

func (t *Traffic) client(ctx context.Context) (*r53.Client, error) {
	cfg, err := t.conn.Config(ctx)
	if err != nil {
		return nil, err
	}
	return newClient(cfg, t.conn), nil
}

func newClient(cfg aws.Config, conn *awsconf.Conn) *r53.Client {
	return r53.NewFromConfig(cfg)
}

// records lists the weighted record sets of the name and type, keyed by
// SetIdentifier.
func (t *Traffic) records(ctx context.Context, c *r53.Client) (map[string]types.ResourceRecordSet, error) {
	out := map[string]types.ResourceRecordSet{}
	in := &r53.ListResourceRecordSetsInput{HostedZoneId: aws.String(t.zone), StartRecordName: aws.String(t.name), StartRecordType: t.rtype}
	for {
		resp, err := c.ListResourceRecordSets(ctx, in)
		if err != nil {
			return nil, awsconf.Classify(err, "route53:ListResourceRecordSets", t.resource)
		}
		for _, rr := range resp.ResourceRecordSets {
			if fqdn(aws.ToString(rr.Name)) != t.name || rr.Type != t.rtype {
				// Sorted by name and type: past ours means done.
				return out, nil
			}
			if rr.SetIdentifier != nil && rr.Weight != nil {
				out[*rr.SetIdentifier] = rr
			}
		}
		if !resp.IsTruncated {
			return out, nil
		}
		in.StartRecordName, in.StartRecordType, in.StartRecordIdentifier = resp.NextRecordName, resp.NextRecordType, resp.NextRecordIdentifier
	}
}

func (t *Traffic) setID(backend string) string {
	if id, ok := t.toSetID[backend]; ok {
		return id
	}
	return backend
}

func (t *Traffic) backend(setID string) string {
	if b, ok := t.fromSet[setID]; ok {
		return b
	}
	return setID
}

// SetWeights upserts the record sets whose weight differs in one change
// batch and waits until Route 53 reports the change INSYNC.
func (t *Traffic) SetWeights(ctx context.Context, w activities.Weights) error {
	c, err := t.client(ctx)
	if err != nil {
		return err
	}
	recs, err := t.records(ctx, c)
	if err != nil {
		return err
	}
	backends := make([]string, 0, len(w))
	for b := range w {
		backends = append(backends, b)
	}
	sort.Strings(backends)
	var changes []types.Change
	for _, b := range backends {
		weight := w[b]
		if weight < 0 || weight > 255 {
			return activities.Permanent(fmt.Errorf("weight of %s: %d: want 0..255", b, weight))
		}
		rr, ok := recs[t.setID(b)]
		if !ok {
			return activities.Permanent(fmt.Errorf("route53: %s %s in hostedzone/%s has no weighted record with SetIdentifier %q (backend %s)", t.name, t.rtype, t.zone, t.setID(b), b))
		}
		if aws.ToInt64(rr.Weight) == int64(weight) {
			continue
		}
		rr.Weight = aws.Int64(int64(weight))
		changes = append(changes, types.Change{Action: types.ChangeActionUpsert, ResourceRecordSet: &rr})
	}
	if len(changes) == 0 {
		return nil
	}
	resp, err := c.ChangeResourceRecordSets(ctx, &r53.ChangeResourceRecordSetsInput{
		HostedZoneId: aws.String(t.zone),
		ChangeBatch:  &types.ChangeBatch{Comment: aws.String("drillship: set weights"), Changes: changes},
	})
	if err != nil {
		return awsconf.Classify(err, "route53:ChangeResourceRecordSets", t.resource)
	}
	id := aws.ToString(resp.ChangeInfo.Id)
	waiter := r53.NewResourceRecordSetsChangedWaiter(c, func(o *r53.ResourceRecordSetsChangedWaiterOptions) {
		o.MinDelay, o.MaxDelay = t.conn.Delays(o.MinDelay, o.MaxDelay)
	})
	if err := waiter.Wait(ctx, &r53.GetChangeInput{Id: aws.String(id)}, t.conn.MaxWait); err != nil {
		return awsconf.Classify(err, "route53:GetChange", strings.TrimPrefix(id, "/"))
	}
	return nil
}

// Weights reads the weights of every weighted record set of the name.
func (t *Traffic) Weights(ctx context.Context) (activities.Weights, error) {
	c, err := t.client(ctx)
	if err != nil {
		return nil, err
	}
	recs, err := t.records(ctx, c)
	if err != nil {
		return nil, err
	}
	out := activities.Weights{}
	for id, rr := range recs {
		out[t.backend(id)] = int(aws.ToInt64(rr.Weight))
	}
	return out, nil
}

// Signals reads Route 53 health checks.
type Signals struct {
	conn        *awsconf.Conn
	healthCheck string
}

// NewSignals validates the settings; it does no I/O.
func NewSignals(cfg map[string]any, opts ...func(*config.LoadOptions) error) (*Signals, error) {
	var c SignalsConfig
	if err := activities.DecodeConfig(cfg, &c); err != nil {
		return nil, err
	}
	conn, err := awsconf.New(c.Settings, opts...)
	if err != nil {
		return nil, err
	}
	return &Signals{conn: conn, healthCheck: c.HealthCheckID}, nil
}

// Sample answers metric "up": 1 when every Route 53 checker reports
// Success, At the newest checker observation.
func (s *Signals) Sample(ctx context.Context, q activities.Query) (activities.Sample, error) {
	if q.Metric != activities.MetricUp {
		return activities.Sample{}, activities.Permanent(fmt.Errorf("route53: metric %q: only %q is supported", q.Metric, activities.MetricUp))
	}
	id := s.healthCheck
	if v := q.Params["healthCheck"]; v != "" {
		id = v
	}
	if id == "" {
		return activities.Sample{}, activities.Permanent(errors.New("route53: no health check: set healthCheckId in the settings or params.healthCheck"))
	}
	cfg, err := s.conn.Config(ctx)
	if err != nil {
		return activities.Sample{}, err
	}
	resp, err := newClient(cfg, s.conn).GetHealthCheckStatus(ctx, &r53.GetHealthCheckStatusInput{HealthCheckId: aws.String(id)})
	if err != nil {
		return activities.Sample{}, awsconf.Classify(err, "route53:GetHealthCheckStatus", "healthcheck/"+id)
	}
	if len(resp.HealthCheckObservations) == 0 {
		return activities.Sample{NoData: true, At: time.Now().UnixMilli(), Detail: "no checker observations"}, nil
	}
	var newest time.Time
	var failing []string
	for _, o := range resp.HealthCheckObservations {
		if o.StatusReport == nil {
			continue
		}
		if t := aws.ToTime(o.StatusReport.CheckedTime); t.After(newest) {
			newest = t
		}
		if !strings.HasPrefix(aws.ToString(o.StatusReport.Status), "Success") {
			failing = append(failing, string(o.Region)+": "+aws.ToString(o.StatusReport.Status))
		}
	}
	sort.Strings(failing)
	smp := activities.Sample{Value: 1, At: newest.UnixMilli(),
		Detail: fmt.Sprintf("%d/%d checkers healthy", len(resp.HealthCheckObservations)-len(failing), len(resp.HealthCheckObservations))}
	if len(failing) > 0 {
		smp.Value = 0
		smp.Detail += "; " + strings.Join(failing, "; ")
	}
	return smp, nil
}

// Permissions lists what a capability needs with cfg.
func Permissions(capability string, cfg map[string]any) ([]activities.Permission, error) {
	switch capability {
	case activities.CapTraffic:
		t, err := NewTraffic(cfg)
		if err != nil {
			return nil, err
		}
		p := t.conn.Partition()
		return []activities.Permission{
			{Actions: []string{"route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets"},
				Resources: []string{"arn:" + p + ":route53:::hostedzone/" + t.zone}},
			// Change ids are minted per call, so the grant names them all.
			{Actions: []string{"route53:GetChange"}, Resources: []string{"arn:" + p + ":route53:::change/*"}},
		}, nil
	case activities.CapSignals:
		s, err := NewSignals(cfg)
		if err != nil {
			return nil, err
		}
		id := s.healthCheck
		if id == "" {
			id = "*" // the health check comes with each query
		}
		return []activities.Permission{{Actions: []string{"route53:GetHealthCheckStatus"},
			Resources: []string{"arn:" + s.conn.Partition() + ":route53:::healthcheck/" + id}}}, nil
	}
	return nil, fmt.Errorf("route53: no %s capability", capability)
}
