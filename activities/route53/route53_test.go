package route53

import (
	"context"
	"encoding/xml"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/awsconf/awstest"
)

const listXML = `<?xml version="1.0" encoding="UTF-8"?>
<ListResourceRecordSetsResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">
  <ResourceRecordSets>
    <ResourceRecordSet><Name>www.example.com.</Name><Type>A</Type><SetIdentifier>blue</SetIdentifier><Weight>%BLUE%</Weight><TTL>60</TTL>
      <ResourceRecords><ResourceRecord><Value>192.0.2.10</Value></ResourceRecord></ResourceRecords><HealthCheckId>hc-blue</HealthCheckId></ResourceRecordSet>
    <ResourceRecordSet><Name>www.example.com.</Name><Type>A</Type><SetIdentifier>green</SetIdentifier><Weight>%GREEN%</Weight><TTL>60</TTL>
      <ResourceRecords><ResourceRecord><Value>192.0.2.20</Value></ResourceRecord></ResourceRecords></ResourceRecordSet>
    <ResourceRecordSet><Name>www.example.com.</Name><Type>TXT</Type><TTL>300</TTL>
      <ResourceRecords><ResourceRecord><Value>"v=spf1 -all"</Value></ResourceRecord></ResourceRecords></ResourceRecordSet>
  </ResourceRecordSets>
  <IsTruncated>false</IsTruncated>
  <MaxItems>300</MaxItems>
</ListResourceRecordSetsResponse>`

func list(blue, green string) awstest.Handler {
	return awstest.Fixed(awstest.XML(strings.NewReplacer("%BLUE%", blue, "%GREEN%", green).Replace(listXML)))
}

func change(status string) awstest.Handler {
	return awstest.Fixed(awstest.XML(`<?xml version="1.0" encoding="UTF-8"?>
<GetChangeResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">
  <ChangeInfo><Id>/change/C2682N5HXP0BZ4</Id><Status>` + status + `</Status><SubmittedAt>2026-11-23T20:00:00.000Z</SubmittedAt></ChangeInfo>
</GetChangeResponse>`))
}

func cfg(srv *awstest.Server) map[string]any {
	return map[string]any{"region": "us-east-1", "endpoint": srv.URL, "pollInterval": "5ms", "maxWait": "5s",
		"zoneId": "Z0123456789ABC", "name": "www.example.com", "backends": map[string]any{"v1": "blue", "v2": "green"}}
}

type changeBatch struct {
	Changes []struct {
		Action string `xml:"Action"`
		Set    struct {
			Name          string   `xml:"Name"`
			Type          string   `xml:"Type"`
			SetIdentifier string   `xml:"SetIdentifier"`
			Weight        int      `xml:"Weight"`
			TTL           int      `xml:"TTL"`
			Values        []string `xml:"ResourceRecords>ResourceRecord>Value"`
			HealthCheckID string   `xml:"HealthCheckId"`
		} `xml:"ResourceRecordSet"`
	} `xml:"ChangeBatch>Changes>Change"`
}

func TestSetWeightsUpsertsChangedAndWaitsInsync(t *testing.T) {
	srv := awstest.New(t, awstest.RestXML)
	srv.Handle("GET /2013-04-01/hostedzone/{zone}/rrset", list("100", "0"))
	srv.Handle("POST /2013-04-01/hostedzone/{zone}/rrset", awstest.Fixed(awstest.XML(`<?xml version="1.0" encoding="UTF-8"?>
<ChangeResourceRecordSetsResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">
  <ChangeInfo><Id>/change/C2682N5HXP0BZ4</Id><Status>PENDING</Status><SubmittedAt>2026-11-23T20:00:00.000Z</SubmittedAt></ChangeInfo>
</ChangeResourceRecordSetsResponse>`)))
	srv.Handle("GET /2013-04-01/change/{id}", awstest.Sequence(change("PENDING"), change("INSYNC")))

	tr, err := NewTraffic(cfg(srv), awstest.LoadOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	// v1 keeps 100 (unchanged: must not be in the batch), v2 goes to 10.
	if err := tr.SetWeights(context.Background(), activities.Weights{"v1": 100, "v2": 10}); err != nil {
		t.Fatal(err)
	}
	posts := srv.Requests("POST /2013-04-01/hostedzone/{zone}/rrset")
	if len(posts) != 1 {
		t.Fatalf("ChangeResourceRecordSets calls = %d, want 1", len(posts))
	}
	if posts[0].Vars["zone"] != "Z0123456789ABC" {
		t.Errorf("zone = %q", posts[0].Vars["zone"])
	}
	var b changeBatch
	if err := xml.Unmarshal(posts[0].Body, &b); err != nil {
		t.Fatal(err)
	}
	if len(b.Changes) != 1 {
		t.Fatalf("changes = %+v, want only green", b.Changes)
	}
	c := b.Changes[0]
	if c.Action != "UPSERT" || c.Set.SetIdentifier != "green" || c.Set.Weight != 10 || c.Set.Name != "www.example.com." ||
		c.Set.Type != "A" || c.Set.TTL != 60 || !reflect.DeepEqual(c.Set.Values, []string{"192.0.2.20"}) {
		t.Errorf("change = %+v", c)
	}
	gets := srv.Requests("GET /2013-04-01/change/{id}")
	if len(gets) != 2 || gets[1].Vars["id"] != "C2682N5HXP0BZ4" {
		t.Errorf("GetChange calls = %d (want 2, PENDING then INSYNC)", len(gets))
	}
	lists := srv.Requests("GET /2013-04-01/hostedzone/{zone}/rrset")
	if q := lists[0].Query; q.Get("name") != "www.example.com." || q.Get("type") != "A" {
		t.Errorf("list query = %v", q)
	}
}

func TestSetWeightsNoChangeIsNoCall(t *testing.T) {
	srv := awstest.New(t, awstest.RestXML)
	srv.Handle("GET /2013-04-01/hostedzone/{zone}/rrset", list("90", "10"))
	tr, err := NewTraffic(cfg(srv), awstest.LoadOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.SetWeights(context.Background(), activities.Weights{"v1": 90, "v2": 10}); err != nil {
		t.Fatal(err)
	}
	if ops := srv.Ops(); len(ops) != 1 {
		t.Errorf("ops = %v, want only the list", ops)
	}
	w, err := tr.Weights(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(w, activities.Weights{"v1": 90, "v2": 10}) {
		t.Errorf("weights = %v", w)
	}
}

func TestAccessDeniedIsPermanentAndThrottleIsRetried(t *testing.T) {
	srv := awstest.New(t, awstest.RestXML)
	srv.Handle("GET /2013-04-01/hostedzone/{zone}/rrset", list("100", "0"))
	srv.Handle("POST /2013-04-01/hostedzone/{zone}/rrset", awstest.Fixed(srv.Error(403, "AccessDenied",
		"User: arn:aws:sts::123456789012:assumed-role/x is not authorized to perform: route53:ChangeResourceRecordSets")))
	tr, _ := NewTraffic(cfg(srv), awstest.LoadOptions()...)
	err := tr.SetWeights(context.Background(), activities.Weights{"v2": 50})
	if !activities.IsPermanent(err) {
		t.Fatalf("err = %v, want permanent", err)
	}
	if want := "route53:ChangeResourceRecordSets on hostedzone/Z0123456789ABC: AccessDenied: User:"; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("err = %q, want prefix %q", err, want)
	}

	// Throttled twice (the SDK's own two attempts), then fine: the first
	// activity attempt fails with a plain error, the retry succeeds.
	srv2 := awstest.New(t, awstest.RestXML)
	srv2.Handle("GET /2013-04-01/hostedzone/{zone}/rrset", awstest.Sequence(
		awstest.Fixed(srv2.Error(400, "Throttling", "Rate exceeded")),
		awstest.Fixed(srv2.Error(400, "Throttling", "Rate exceeded")),
		list("30", "70")))
	tr2, _ := NewTraffic(cfg(srv2), awstest.LoadOptions()...)
	var w activities.Weights
	var attempts int
	for attempts = 1; attempts <= 3; attempts++ {
		w, err = tr2.Weights(context.Background())
		if err == nil {
			break
		}
		if activities.IsPermanent(err) {
			t.Fatalf("throttling must not be permanent: %v", err)
		}
	}
	if attempts != 2 || !reflect.DeepEqual(w, activities.Weights{"v1": 30, "v2": 70}) {
		t.Errorf("attempts = %d, weights = %v", attempts, w)
	}
}

func TestHealthCheckUp(t *testing.T) {
	srv := awstest.New(t, awstest.RestXML)
	srv.Handle("GET /2013-04-01/healthcheck/{id}/status", awstest.Fixed(awstest.XML(`<?xml version="1.0" encoding="UTF-8"?>
<GetHealthCheckStatusResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">
  <HealthCheckObservations>
    <HealthCheckObservation><Region>us-east-1</Region><IPAddress>15.177.2.1</IPAddress>
      <StatusReport><Status>Success: HTTP Status Code 200, OK</Status><CheckedTime>2026-11-23T20:00:01.000Z</CheckedTime></StatusReport></HealthCheckObservation>
    <HealthCheckObservation><Region>eu-west-1</Region><IPAddress>15.177.62.1</IPAddress>
      <StatusReport><Status>Failure: Connection timed out.</Status><CheckedTime>2026-11-23T20:00:04.500Z</CheckedTime></StatusReport></HealthCheckObservation>
  </HealthCheckObservations>
</GetHealthCheckStatusResponse>`)))
	s, err := NewSignals(map[string]any{"region": "us-east-1", "endpoint": srv.URL, "healthCheckId": "abcdef11-2222-3333-4444-555555fedcba"}, awstest.LoadOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	smp, err := s.Sample(context.Background(), activities.Query{Metric: "up"})
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2026, 11, 23, 20, 0, 4, 500e6, time.UTC).UnixMilli()
	if smp.Value != 0 || smp.At != want || !strings.Contains(smp.Detail, "1/2 checkers healthy") {
		t.Errorf("sample = %+v", smp)
	}
	if got := srv.Requests("")[0].Vars["id"]; got != "abcdef11-2222-3333-4444-555555fedcba" {
		t.Errorf("health check id sent = %q", got)
	}
}

func TestPermissions(t *testing.T) {
	ps, err := Permissions(activities.CapTraffic, map[string]any{"region": "us-east-1", "zoneId": "Z1", "name": "a.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	want := []activities.Permission{
		{Actions: []string{"route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets"}, Resources: []string{"arn:aws:route53:::hostedzone/Z1"}},
		{Actions: []string{"route53:GetChange"}, Resources: []string{"arn:aws:route53:::change/*"}},
	}
	if !reflect.DeepEqual(ps, want) {
		t.Errorf("permissions = %+v", ps)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []map[string]any{
		{"zoneId": "Z1", "name": "a.example.com"},
		{"region": "us-east-1", "name": "a.example.com"},
		{"region": "us-east-1", "zoneId": "Z1", "name": "a", "type": "XX"},
		{"region": "us-east-1", "zoneId": "Z1", "name": "a", "weight": 1},
	} {
		if _, err := NewTraffic(c); err == nil {
			t.Errorf("NewTraffic(%v): want error", c)
		}
	}
}
