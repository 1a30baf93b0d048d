package awstest

import (
	"encoding/xml"
	"fmt"
	"maps"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The fakes below keep a little state and answer the calls the drillship
// providers make, so that a deploy or a drill can run end to end against
// them. Each embeds its Server: point a provider's endpoint at URL and
// read Requests to see what was sent.

// Route53 fakes the weighted record sets of one name and type.
type Route53 struct {
	*Server
	mu      sync.Mutex
	name    string
	rtype   string
	weights map[string]int // SetIdentifier -> weight
}

// NewRoute53 serves ListResourceRecordSets, ChangeResourceRecordSets and
// GetChange (always INSYNC) for name (with its trailing dot) and type.
func NewRoute53(t testing.TB, name, rtype string, weights map[string]int) *Route53 {
	f := &Route53{Server: New(t, RestXML), name: name, rtype: rtype, weights: map[string]int{}}
	for k, v := range weights {
		f.weights[k] = v
	}
	f.Handle("GET /2013-04-01/hostedzone/{zone}/rrset", func(*Request) Response {
		f.mu.Lock()
		defer f.mu.Unlock()
		ids := make([]string, 0, len(f.weights))
		for id := range f.weights {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		var b strings.Builder
		b.WriteString(`<ListResourceRecordSetsResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><ResourceRecordSets>`)
		for i, id := range ids {
			fmt.Fprintf(&b, `<ResourceRecordSet><Name>%s</Name><Type>%s</Type><SetIdentifier>%s</SetIdentifier><Weight>%d</Weight><TTL>60</TTL>`+
				`<ResourceRecords><ResourceRecord><Value>192.0.2.%d</Value></ResourceRecord></ResourceRecords></ResourceRecordSet>`, f.name, f.rtype, id, f.weights[id], i+1)
		}
		b.WriteString(`</ResourceRecordSets><IsTruncated>false</IsTruncated><MaxItems>300</MaxItems></ListResourceRecordSetsResponse>`)
		return XML(b.String())
	})
	f.Handle("POST /2013-04-01/hostedzone/{zone}/rrset", func(r *Request) Response {
		var batch struct {
			Changes []struct {
				Action string `xml:"Action"`
				ID     string `xml:"ResourceRecordSet>SetIdentifier"`
				Weight int    `xml:"ResourceRecordSet>Weight"`
			} `xml:"ChangeBatch>Changes>Change"`
		}
		if err := xml.Unmarshal(r.Body, &batch); err != nil {
			return f.Error(400, "InvalidInput", err.Error())
		}
		f.mu.Lock()
		for _, c := range batch.Changes {
			if c.Action == "UPSERT" {
				f.weights[c.ID] = c.Weight
			}
		}
		f.mu.Unlock()
		return XML(`<ChangeResourceRecordSetsResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><ChangeInfo><Id>/change/C1</Id><Status>PENDING</Status><SubmittedAt>2026-01-01T00:00:00Z</SubmittedAt></ChangeInfo></ChangeResourceRecordSetsResponse>`)
	})
	f.Handle("GET /2013-04-01/change/{id}", Fixed(XML(`<GetChangeResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><ChangeInfo><Id>/change/C1</Id><Status>INSYNC</Status><SubmittedAt>2026-01-01T00:00:00Z</SubmittedAt></ChangeInfo></GetChangeResponse>`)))
	return f
}

// Weights returns the weights by SetIdentifier.
func (f *Route53) Weights() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for k, v := range f.weights {
		out[k] = v
	}
	return out
}

// ELBv2 fakes one listener rule forwarding to weighted target groups.
type ELBv2 struct {
	*Server
	mu      sync.Mutex
	rule    string
	names   map[string]string // name -> ARN
	weights map[string]int    // ARN -> weight
}

// NewELBv2 serves DescribeTargetGroups, DescribeRules and ModifyRule for
// rule; targetGroups maps names to ARNs, weights ARNs to weights.
func NewELBv2(t testing.TB, rule string, targetGroups map[string]string, weights map[string]int) *ELBv2 {
	f := &ELBv2{Server: New(t, Query), rule: rule, names: targetGroups, weights: map[string]int{}}
	for k, v := range weights {
		f.weights[k] = v
	}
	f.Handle("DescribeTargetGroups", func(r *Request) Response {
		var b strings.Builder
		b.WriteString(`<DescribeTargetGroupsResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"><DescribeTargetGroupsResult><TargetGroups>`)
		for i := 1; r.Form.Has(fmt.Sprintf("Names.member.%d", i)); i++ {
			n := r.Form.Get(fmt.Sprintf("Names.member.%d", i))
			if arn, ok := f.names[n]; ok {
				fmt.Fprintf(&b, `<member><TargetGroupArn>%s</TargetGroupArn><TargetGroupName>%s</TargetGroupName></member>`, arn, n)
			}
		}
		b.WriteString(`</TargetGroups></DescribeTargetGroupsResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></DescribeTargetGroupsResponse>`)
		return XML(b.String())
	})
	f.Handle("DescribeRules", func(*Request) Response {
		f.mu.Lock()
		defer f.mu.Unlock()
		arns := make([]string, 0, len(f.weights))
		for a := range f.weights {
			arns = append(arns, a)
		}
		sort.Strings(arns)
		var b strings.Builder
		b.WriteString(`<DescribeRulesResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"><DescribeRulesResult><Rules><member><RuleArn>` + f.rule +
			`</RuleArn><Priority>10</Priority><IsDefault>false</IsDefault><Actions><member><Type>forward</Type><Order>1</Order><ForwardConfig><TargetGroups>`)
		for _, a := range arns {
			fmt.Fprintf(&b, `<member><TargetGroupArn>%s</TargetGroupArn><Weight>%d</Weight></member>`, a, f.weights[a])
		}
		b.WriteString(`</TargetGroups></ForwardConfig></member></Actions></member></Rules></DescribeRulesResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></DescribeRulesResponse>`)
		return XML(b.String())
	})
	f.Handle("ModifyRule", func(r *Request) Response {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.weights = forwardWeights(r.Form, "Actions")
		return XML(`<ModifyRuleResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"><ModifyRuleResult><Rules><member><RuleArn>` + f.rule + `</RuleArn></member></Rules></ModifyRuleResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></ModifyRuleResponse>`)
	})
	return f
}

func forwardWeights(form url.Values, list string) map[string]int {
	out := map[string]int{}
	for a := 1; form.Has(fmt.Sprintf("%s.member.%d.Type", list, a)); a++ {
		if form.Get(fmt.Sprintf("%s.member.%d.Type", list, a)) != "forward" {
			continue
		}
		p := fmt.Sprintf("%s.member.%d.ForwardConfig.TargetGroups.member.", list, a)
		for i := 1; form.Has(p + strconv.Itoa(i) + ".TargetGroupArn"); i++ {
			w, _ := strconv.Atoi(form.Get(p + strconv.Itoa(i) + ".Weight"))
			out[form.Get(p+strconv.Itoa(i)+".TargetGroupArn")] = w
		}
	}
	return out
}

// Weights returns the rule's weights by target group ARN.
func (f *ELBv2) Weights() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for k, v := range f.weights {
		out[k] = v
	}
	return out
}

// ECS fakes services of one cluster and one task definition family whose
// container "web" (first) carries the version as its image tag.
type ECS struct {
	*Server
	mu       sync.Mutex
	account  string
	family   string
	images   map[int]string // revision -> image of the first container
	tags     map[int]map[string]string
	services map[string]*ecsService
	next     int
}

type ecsService struct{ rev, desired int }

// NewECS registers revisions 1..n of family with images (repo:tag), and
// runs the newest in every service, with desired counts as given.
func NewECS(t testing.TB, family string, images []string, desired map[string]int) *ECS {
	f := &ECS{Server: New(t, JSON11), account: "arn:aws:ecs:us-east-1:123456789012:", family: family,
		images: map[int]string{}, tags: map[int]map[string]string{}, services: map[string]*ecsService{}, next: len(images) + 1}
	for i, img := range images {
		f.images[i+1] = img
	}
	for s, n := range desired {
		f.services[s] = &ecsService{rev: len(images), desired: n}
	}
	f.Handle("DescribeServices", func(r *Request) Response {
		f.mu.Lock()
		defer f.mu.Unlock()
		var out, failures []any
		for _, n := range r.Doc["services"].([]any) {
			s, ok := f.services[n.(string)]
			if !ok {
				failures = append(failures, map[string]any{"arn": f.account + "service/" + n.(string), "reason": "MISSING"})
				continue
			}
			out = append(out, map[string]any{
				"serviceArn": f.account + "service/" + fmt.Sprint(r.Doc["cluster"]) + "/" + n.(string), "serviceName": n, "status": "ACTIVE",
				"desiredCount": s.desired, "runningCount": s.desired, "pendingCount": 0, "taskDefinition": f.arn(s.rev),
				"deployments": []any{map[string]any{"id": "ecs-svc/1", "status": "PRIMARY", "taskDefinition": f.arn(s.rev),
					"desiredCount": s.desired, "runningCount": s.desired, "rolloutState": "COMPLETED"}},
			})
		}
		return f.JSON(map[string]any{"services": out, "failures": failures})
	})
	f.Handle("DescribeTaskDefinition", func(r *Request) Response {
		f.mu.Lock()
		defer f.mu.Unlock()
		rev := f.rev(r.Doc["taskDefinition"].(string))
		out := map[string]any{"taskDefinition": f.taskDef(rev)}
		if inc, _ := r.Doc["include"].([]any); len(inc) == 1 && inc[0] == "TAGS" {
			out["tags"] = f.tagList(rev)
		}
		return f.JSON(out)
	})
	f.Handle("TagResource", func(r *Request) Response {
		f.mu.Lock()
		defer f.mu.Unlock()
		rev := f.rev(r.Doc["resourceArn"].(string))
		if _, ok := f.images[rev]; !ok {
			return f.Error(400, "ClientException", "The specified task definition does not exist.")
		}
		f.addTags(rev, r.Doc["tags"])
		return f.JSON(map[string]any{})
	})
	f.Handle("ListTaskDefinitions", func(r *Request) Response {
		f.mu.Lock()
		defer f.mu.Unlock()
		var arns []string
		for rev := 1; rev < f.next; rev++ {
			if _, ok := f.images[rev]; ok {
				arns = append(arns, f.arn(rev))
			}
		}
		if r.Doc["sort"] == "DESC" {
			for i, j := 0, len(arns)-1; i < j; i, j = i+1, j-1 {
				arns[i], arns[j] = arns[j], arns[i]
			}
		}
		return f.JSON(map[string]any{"taskDefinitionArns": arns})
	})
	f.Handle("RegisterTaskDefinition", func(r *Request) Response {
		f.mu.Lock()
		defer f.mu.Unlock()
		rev := f.next
		f.next++
		f.images[rev] = r.Doc["containerDefinitions"].([]any)[0].(map[string]any)["image"].(string)
		f.addTags(rev, r.Doc["tags"])
		return f.JSON(map[string]any{"taskDefinition": f.taskDef(rev), "tags": f.tagList(rev)})
	})
	f.Handle("UpdateService", func(r *Request) Response {
		f.mu.Lock()
		defer f.mu.Unlock()
		s, ok := f.services[r.Doc["service"].(string)]
		if !ok {
			return f.Error(400, "ServiceNotFoundException", "Service not found.")
		}
		if td, ok := r.Doc["taskDefinition"].(string); ok {
			s.rev = f.rev(td)
		}
		if n, ok := r.Doc["desiredCount"].(float64); ok {
			s.desired = int(n)
		}
		return f.JSON(map[string]any{"service": map[string]any{"serviceName": r.Doc["service"], "taskDefinition": f.arn(s.rev)}})
	})
	f.Handle("DeregisterTaskDefinition", func(r *Request) Response {
		f.mu.Lock()
		defer f.mu.Unlock()
		rev := f.rev(r.Doc["taskDefinition"].(string))
		td := f.taskDef(rev)
		td["status"] = "INACTIVE"
		delete(f.images, rev)
		delete(f.tags, rev)
		return f.JSON(map[string]any{"taskDefinition": td})
	})
	return f
}

func (f *ECS) arn(rev int) string {
	return fmt.Sprintf("%stask-definition/%s:%d", f.account, f.family, rev)
}

func (f *ECS) rev(arn string) int {
	n, _ := strconv.Atoi(arn[strings.LastIndex(arn, ":")+1:])
	return n
}

func (f *ECS) taskDef(rev int) map[string]any {
	return map[string]any{
		"taskDefinitionArn": f.arn(rev), "family": f.family, "revision": rev, "status": "ACTIVE",
		"networkMode": "awsvpc", "cpu": "256", "memory": "512", "requiresCompatibilities": []string{"FARGATE"},
		"executionRoleArn": "arn:aws:iam::123456789012:role/ecsTaskExecutionRole",
		"containerDefinitions": []any{
			map[string]any{"name": "web", "image": f.images[rev], "essential": true,
				"portMappings": []any{map[string]any{"containerPort": 8080, "protocol": "tcp"}}},
			map[string]any{"name": "log-router", "image": "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable", "essential": true},
		},
	}
}

func (f *ECS) addTags(rev int, tags any) {
	list, _ := tags.([]any)
	for _, t := range list {
		m, _ := t.(map[string]any)
		if f.tags[rev] == nil {
			f.tags[rev] = map[string]string{}
		}
		f.tags[rev][fmt.Sprint(m["key"])] = fmt.Sprint(m["value"])
	}
}

func (f *ECS) tagList(rev int) []any {
	keys := make([]string, 0, len(f.tags[rev]))
	for k := range f.tags[rev] {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := []any{}
	for _, k := range keys {
		out = append(out, map[string]any{"key": k, "value": f.tags[rev][k]})
	}
	return out
}

// Tags returns a revision's tags.
func (f *ECS) Tags(rev int) map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]string{}
	for k, v := range f.tags[rev] {
		out[k] = v
	}
	return out
}

// Service returns a service's image and desired count.
func (f *ECS) Service(name string) (image string, desired int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.services[name]
	return f.images[s.rev], s.desired
}

// Revisions returns the images of the ACTIVE revisions by revision.
func (f *ECS) Revisions() map[int]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[int]string{}
	for k, v := range f.images {
		out[k] = v
	}
	return out
}

// ARC fakes a Route 53 ARC cluster endpoint's routing control states.
type ARC struct {
	*Server
	mu     sync.Mutex
	states map[string]string // routing control ARN -> On | Off
}

// NewARC serves GetRoutingControlState and UpdateRoutingControlStates.
func NewARC(t testing.TB, states map[string]string) *ARC {
	f := &ARC{Server: New(t, JSON10), states: map[string]string{}}
	for k, v := range states {
		f.states[k] = v
	}
	f.Handle("GetRoutingControlState", func(r *Request) Response {
		f.mu.Lock()
		defer f.mu.Unlock()
		arn := r.Doc["RoutingControlArn"].(string)
		st, ok := f.states[arn]
		if !ok {
			return f.Error(404, "ResourceNotFoundException", "routing control not found")
		}
		return f.JSON(map[string]any{"RoutingControlArn": arn, "RoutingControlState": st, "RoutingControlName": arn[strings.LastIndex(arn, "/")+1:]})
	})
	f.Handle("UpdateRoutingControlStates", func(r *Request) Response {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, e := range r.Doc["UpdateRoutingControlStateEntries"].([]any) {
			m := e.(map[string]any)
			f.states[m["RoutingControlArn"].(string)] = m["RoutingControlState"].(string)
		}
		return f.JSON(map[string]any{})
	})
	return f
}

// State returns a routing control's state.
func (f *ARC) State(arn string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.states[arn]
}

// FIS fakes experiments: they run as soon as they start, unless StartAs
// says otherwise for their template. They keep their tags and template, so
// that ListExperiments can be filtered as FIS does.
type FIS struct {
	*Server
	mu      sync.Mutex
	exps    map[string]*fisExperiment
	order   []string          // ids in start order
	tokens  map[string]string // client token -> id
	startAs map[string]string // template -> status at start
}

type fisExperiment struct {
	status, template string
	tags             map[string]string
}

// NewFIS serves StartExperiment, GetExperiment, StopExperiment and
// ListExperiments.
func NewFIS(t testing.TB) *FIS {
	f := &FIS{Server: New(t, RestJSON), exps: map[string]*fisExperiment{}, tokens: map[string]string{}, startAs: map[string]string{}}
	doc := func(id string) map[string]any {
		e := f.exps[id]
		return map[string]any{"id": id, "experimentTemplateId": e.template, "tags": e.tags,
			"state": map[string]any{"status": e.status, "reason": "Experiment is " + e.status + "."}}
	}
	f.Handle("POST /experiments", func(r *Request) Response {
		f.mu.Lock()
		defer f.mu.Unlock()
		tok, _ := r.Doc["clientToken"].(string)
		id, ok := f.tokens[tok]
		if !ok {
			tmpl, _ := r.Doc["experimentTemplateId"].(string)
			tags := map[string]string{}
			if m, ok := r.Doc["tags"].(map[string]any); ok {
				for k, v := range m {
					tags[k], _ = v.(string)
				}
			}
			id = f.addLocked(tmpl, tags)
			f.tokens[tok] = id
		}
		return f.JSON(map[string]any{"experiment": doc(id)})
	})
	f.Handle("GET /experiments/{id}", func(r *Request) Response {
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.exps[r.Vars["id"]]; !ok {
			return f.Error(404, "ResourceNotFoundException", "experiment not found")
		}
		return f.JSON(map[string]any{"experiment": doc(r.Vars["id"])})
	})
	f.Handle("GET /experiments", func(r *Request) Response {
		f.mu.Lock()
		defer f.mu.Unlock()
		list := []any{}
		for _, id := range f.order {
			if t := r.Query.Get("experimentTemplateId"); t == "" || t == f.exps[id].template {
				list = append(list, doc(id))
			}
		}
		return f.JSON(map[string]any{"experiments": list})
	})
	f.Handle("DELETE /experiments/{id}", func(r *Request) Response {
		f.mu.Lock()
		defer f.mu.Unlock()
		e, ok := f.exps[r.Vars["id"]]
		if !ok {
			return f.Error(404, "ResourceNotFoundException", "experiment not found")
		}
		switch e.status {
		case "pending", "initiating", "running":
			e.status = "stopped"
		}
		return f.JSON(map[string]any{"experiment": doc(r.Vars["id"])})
	})
	return f
}

func (f *FIS) addLocked(template string, tags map[string]string) string {
	id := fmt.Sprintf("EXP%d", len(f.exps)+1)
	st := f.startAs[template]
	if st == "" {
		st = "running"
	}
	f.exps[id] = &fisExperiment{status: st, template: template, tags: tags}
	f.order = append(f.order, id)
	return id
}

// StartAs makes experiments of template start in status (such as
// "initiating", to stay there: one that started but never ran).
func (f *FIS) StartAs(template, status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.startAs[template] = status
}

// Put starts an experiment from outside drillship (someone else's) and
// returns its id.
func (f *FIS) Put(template string, tags map[string]string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addLocked(template, tags)
}

// Status returns an experiment's status ("" if unknown).
func (f *FIS) Status(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e, ok := f.exps[id]; ok {
		return e.status
	}
	return ""
}

// Tags returns an experiment's tags.
func (f *FIS) Tags(id string) map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e, ok := f.exps[id]; ok {
		return maps.Clone(e.tags)
	}
	return nil
}

// CloudWatch fakes metric results and alarms (smithy-rpcv2-cbor).
type CloudWatch struct {
	*Server
	mu     sync.Mutex
	value  *float64
	alarms map[string]alarm
}

type alarm struct {
	state string
	at    time.Time
	fired time.Time // last transition into ALARM
}

// NewCloudWatch serves GetMetricData (the value set by SetValue, else no
// data), DescribeAlarms and DescribeAlarmHistory.
func NewCloudWatch(t testing.TB) *CloudWatch {
	f := &CloudWatch{Server: New(t, CBOR), alarms: map[string]alarm{}}
	f.Handle("GetMetricData", func(r *Request) Response {
		f.mu.Lock()
		defer f.mu.Unlock()
		var results []any
		for _, q := range r.Doc["MetricDataQueries"].([]any) {
			m := q.(map[string]any)
			if m["ReturnData"] != true {
				continue
			}
			res := map[string]any{"Id": m["Id"], "StatusCode": "Complete", "Timestamps": []time.Time{}, "Values": []float64{}}
			if f.value != nil {
				res["Timestamps"] = []time.Time{time.Now().UTC().Truncate(time.Second)}
				res["Values"] = []float64{*f.value}
			}
			results = append(results, res)
		}
		return f.JSON(map[string]any{"MetricDataResults": results})
	})
	f.Handle("DescribeAlarms", func(r *Request) Response {
		f.mu.Lock()
		defer f.mu.Unlock()
		var out []any
		for _, n := range r.Doc["AlarmNames"].([]any) {
			if a, ok := f.alarms[n.(string)]; ok {
				out = append(out, map[string]any{"AlarmName": n, "StateValue": a.state, "StateUpdatedTimestamp": a.at, "StateTransitionedTimestamp": a.at})
			}
		}
		return f.JSON(map[string]any{"MetricAlarms": out})
	})
	f.Handle("DescribeAlarmHistory", func(r *Request) Response {
		f.mu.Lock()
		defer f.mu.Unlock()
		var items []any
		if a, ok := f.alarms[r.Doc["AlarmName"].(string)]; ok && !a.fired.IsZero() {
			items = append(items, map[string]any{"AlarmName": r.Doc["AlarmName"], "Timestamp": a.fired, "HistoryItemType": "StateUpdate",
				"HistorySummary": "Alarm updated from OK to ALARM", "HistoryData": `{"oldState":{"stateValue":"OK"},"newState":{"stateValue":"ALARM"}}`})
		}
		return f.JSON(map[string]any{"AlarmHistoryItems": items})
	})
	return f
}

// SetValue sets the value every metric query returns, stamped now.
func (f *CloudWatch) SetValue(v float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.value = &v
}

// SetAlarm puts an alarm into state (OK, ALARM, INSUFFICIENT_DATA) at at.
func (f *CloudWatch) SetAlarm(name, state string, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.alarms[name]
	if state == "ALARM" && a.state != "ALARM" {
		a.fired = at
	}
	a.state, a.at = state, at
	f.alarms[name] = a
}
