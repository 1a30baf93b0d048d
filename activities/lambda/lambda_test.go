package lambda

import (
	"context"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/awsconf/awstest"
)

const (
	aliasPath    = "/2015-03-31/functions/{fn}/aliases/{alias}"
	versionsPath = "/2015-03-31/functions/{fn}/versions"
)

func alias(srv *awstest.Server, primary string, extra map[string]any) awstest.Handler {
	body := map[string]any{
		"AliasArn":        "arn:aws:lambda:us-east-1:123456789012:function:checkout:live",
		"Description":     "",
		"FunctionVersion": primary,
		"Name":            "live",
		"RevisionId":      "594f41fb-xmpl-4c20-95c7-6ca5f2a92c93",
	}
	if extra != nil {
		body["RoutingConfig"] = map[string]any{"AdditionalVersionWeights": extra}
	}
	return awstest.Fixed(srv.JSON(body))
}

func versions(srv *awstest.Server) awstest.Handler {
	v := func(n, desc string) map[string]any {
		return map[string]any{"FunctionName": "checkout", "FunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:checkout:" + n,
			"Runtime": "nodejs22.x", "Version": n, "Description": desc, "CodeSha256": "YFgDgEKG3ugvF1+pX64gV6tu9qNuIYNUdgJm8nCxsm4=", "State": "Active"}
	}
	return awstest.Fixed(srv.JSON(map[string]any{"Versions": []any{
		v("$LATEST", ""), v("1", "first"), v("3", "drillship:v1"), v("4", "drillship:v2"),
	}}))
}

func settings(srv *awstest.Server) map[string]any {
	return map[string]any{"region": "us-east-1", "endpoint": srv.URL, "function": "checkout", "alias": "live"}
}

func body(t *testing.T, r *awstest.Request) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("body %s: %v", r.Body, err)
	}
	return m
}

func TestCanaryWeightsOnAlias(t *testing.T) {
	srv := awstest.New(t, awstest.RestJSON)
	srv.Handle("GET "+aliasPath, alias(srv, "3", nil))
	srv.Handle("GET "+versionsPath, versions(srv))
	srv.Handle("PUT "+aliasPath, alias(srv, "3", map[string]any{"4": 0.1}))
	c, err := New(settings(srv), awstest.LoadOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetWeights(context.Background(), activities.Weights{"v1": 90, "v2": 10}); err != nil {
		t.Fatal(err)
	}
	puts := srv.Requests("PUT " + aliasPath)
	if len(puts) != 1 {
		t.Fatalf("UpdateAlias calls = %d", len(puts))
	}
	if puts[0].Vars["fn"] != "checkout" || puts[0].Vars["alias"] != "live" {
		t.Errorf("path vars = %v", puts[0].Vars)
	}
	want := map[string]any{"FunctionVersion": "3", "RevisionId": "594f41fb-xmpl-4c20-95c7-6ca5f2a92c93",
		"RoutingConfig": map[string]any{"AdditionalVersionWeights": map[string]any{"4": 0.1}}}
	if got := body(t, puts[0]); !reflect.DeepEqual(got, want) {
		t.Errorf("UpdateAlias body = %v, want %v", got, want)
	}

	srv.Handle("GET "+aliasPath, alias(srv, "3", map[string]any{"4": 0.1}))
	w, err := c.Weights(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(w, activities.Weights{"v1": 90, "v2": 10}) {
		t.Errorf("weights = %v", w)
	}
}

func TestPromoteClearsRouting(t *testing.T) {
	srv := awstest.New(t, awstest.RestJSON)
	srv.Handle("GET "+aliasPath, alias(srv, "3", map[string]any{"4": 0.5}))
	srv.Handle("GET "+versionsPath, versions(srv))
	srv.Handle("PUT "+aliasPath, alias(srv, "4", nil))
	srv.Handle("GET "+tagsPath, awstest.Fixed(srv.JSON(map[string]any{"Tags": map[string]string{promotionsTag: "from=3 3"}})))
	srv.Handle("POST "+tagsPath, awstest.Fixed(awstest.Response{Status: 204}))
	c, _ := New(settings(srv), awstest.LoadOptions()...)
	if err := c.Promote(context.Background(), "v2"); err != nil {
		t.Fatal(err)
	}
	tags := srv.Requests("POST " + tagsPath)
	if len(tags) != 1 || !reflect.DeepEqual(body(t, tags[0])["Tags"], map[string]any{promotionsTag: "from=3 3 4"}) {
		t.Errorf("TagResource calls %d, want one recording version 4 after 3", len(tags))
	}
	got := body(t, srv.Requests("PUT " + aliasPath)[0])
	want := map[string]any{"FunctionVersion": "4", "RevisionId": "594f41fb-xmpl-4c20-95c7-6ca5f2a92c93",
		"RoutingConfig": map[string]any{"AdditionalVersionWeights": map[string]any{}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("UpdateAlias body = %v, want %v", got, want)
	}
	if n := len(srv.Requests("POST " + versionsPath)); n != 0 {
		t.Errorf("PublishVersion called %d times for an already published version", n)
	}
}

func TestDeployPublishesAndPruneKeepsInUse(t *testing.T) {
	srv := awstest.New(t, awstest.RestJSON)
	srv.Handle("GET "+aliasPath, alias(srv, "3", nil))
	srv.Handle("GET "+versionsPath, versions(srv))
	srv.Handle("POST "+versionsPath, awstest.Fixed(srv.JSON(map[string]any{"FunctionName": "checkout", "Version": "5", "Description": "drillship:v3"})))
	srv.Handle("DELETE /2015-03-31/functions/{fn}", awstest.Fixed(awstest.Response{Status: 204}))
	c, _ := New(settings(srv), awstest.LoadOptions()...)
	if err := c.Deploy(context.Background(), "v3"); err != nil {
		t.Fatal(err)
	}
	if got := body(t, srv.Requests("POST " + versionsPath)[0]); got["Description"] != "drillship:v3" {
		t.Errorf("PublishVersion body = %v", got)
	}
	st, err := c.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Stable != "v1" || !reflect.DeepEqual(st.Running, []string{"v1"}) || !reflect.DeepEqual(st.Artifacts, []string{"1", "v1", "v2"}) {
		t.Errorf("state = %+v", st)
	}
	// No promotion record yet: 3 is the alias's primary and any other
	// version may be what it replaced, so none goes.
	srv.Handle("GET "+tagsPath, awstest.Fixed(srv.JSON(map[string]any{"Tags": map[string]string{}})))
	deleted, err := c.Prune(context.Background(), "v1", 1)
	if err != nil {
		t.Fatal(err)
	}
	if dels := srv.Requests("DELETE /2015-03-31/functions/{fn}"); len(deleted) != 0 || len(dels) != 0 {
		t.Errorf("deleted = %v, calls = %d, want none without a promotion record", deleted, len(dels))
	}
	if arn := srv.Requests("GET " + tagsPath)[0].Vars["arn"]; arn != "arn:aws:lambda:us-east-1:123456789012:function:checkout" {
		t.Errorf("ListTags resource = %q, want the unqualified function ARN", arn)
	}
}

const tagsPath = "/2017-03-31/tags/{arn}"

// fakeFunction is a stateful Lambda function behind the REST wire fake:
// published versions, one alias, tags.
type fakeFunction struct {
	mu       sync.Mutex
	versions map[int]string // number -> description
	next     int
	primary  string
	extra    map[string]any
	tags     map[string]string
}

func newFakeFunction(t *testing.T, srv *awstest.Server) *fakeFunction {
	f := &fakeFunction{versions: map[int]string{1: "first"}, next: 2, primary: "1", tags: map[string]string{}}
	srv.Handle("GET "+aliasPath, func(*awstest.Request) awstest.Response {
		f.mu.Lock()
		defer f.mu.Unlock()
		return alias(srv, f.primary, f.extra)(nil)
	})
	srv.Handle("PUT "+aliasPath, func(r *awstest.Request) awstest.Response {
		f.mu.Lock()
		defer f.mu.Unlock()
		b := body(t, r)
		f.primary = b["FunctionVersion"].(string)
		f.extra = nil
		if rc, ok := b["RoutingConfig"].(map[string]any); ok {
			if w, _ := rc["AdditionalVersionWeights"].(map[string]any); len(w) > 0 {
				f.extra = w
			}
		}
		return alias(srv, f.primary, f.extra)(nil)
	})
	srv.Handle("GET "+versionsPath, func(*awstest.Request) awstest.Response {
		f.mu.Lock()
		defer f.mu.Unlock()
		vs := []any{map[string]any{"FunctionName": "checkout", "Version": "$LATEST"}}
		for n := 1; n < f.next; n++ {
			if d, ok := f.versions[n]; ok {
				vs = append(vs, map[string]any{"FunctionName": "checkout", "Version": strconv.Itoa(n), "Description": d})
			}
		}
		return srv.JSON(map[string]any{"Versions": vs})
	})
	srv.Handle("POST "+versionsPath, func(r *awstest.Request) awstest.Response {
		f.mu.Lock()
		defer f.mu.Unlock()
		n := f.next
		f.next++
		f.versions[n] = body(t, r)["Description"].(string)
		return srv.JSON(map[string]any{"FunctionName": "checkout", "Version": strconv.Itoa(n), "Description": f.versions[n]})
	})
	srv.Handle("DELETE /2015-03-31/functions/{fn}", func(r *awstest.Request) awstest.Response {
		f.mu.Lock()
		defer f.mu.Unlock()
		n, _ := strconv.Atoi(r.Query.Get("Qualifier"))
		delete(f.versions, n)
		return awstest.Response{Status: 204}
	})
	srv.Handle("GET "+tagsPath, func(*awstest.Request) awstest.Response {
		f.mu.Lock()
		defer f.mu.Unlock()
		return srv.JSON(map[string]any{"Tags": f.tags})
	})
	srv.Handle("POST "+tagsPath, func(r *awstest.Request) awstest.Response {
		f.mu.Lock()
		defer f.mu.Unlock()
		for k, v := range body(t, r)["Tags"].(map[string]any) {
			f.tags[k] = v.(string)
		}
		return awstest.Response{Status: 204}
	})
	return f
}

// Issue 10 item 6 against the Lambda wire fake: v5 stable, v6 and v7
// rolled back, v8 promoted. keep 3 keeps v8, its rollback target v5 and
// v4. Version 1 predates the record (from=2): it may have served, but
// before every recorded promotion, so it ranks below them.
func TestPruneKeepsRollbackTarget(t *testing.T) {
	srv := awstest.New(t, awstest.RestJSON)
	f := newFakeFunction(t, srv)
	c, err := New(settings(srv), awstest.LoadOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range []string{"v2", "v3", "v4", "v5", "v6", "v7", "v8"} {
		must(c.Deploy(ctx, v))
		must(c.SetWeights(ctx, activities.Weights{v: 10}))
		if v == "v6" || v == "v7" {
			must(c.SetWeights(ctx, activities.Weights{v: 0})) // rolled back
			must(c.Stop(ctx, v))
			continue
		}
		must(c.Promote(ctx, v))
		must(c.Promote(ctx, v)) // a retry records nothing twice
	}
	if got := f.tags[promotionsTag]; got != "from=2 2 3 4 5 8" {
		t.Fatalf("promotion record %q, want %q", got, "from=2 2 3 4 5 8")
	}
	deleted, err := c.Prune(ctx, "v8", 3)
	must(err)
	if !reflect.DeepEqual(deleted, []string{"v6", "v7", "1", "v2", "v3"}) {
		t.Errorf("deleted %v, want the failed canaries v6 v7 first, then 1 v2 v3", deleted)
	}
	st, err := c.State(ctx)
	must(err)
	if !reflect.DeepEqual(st.Artifacts, []string{"v4", "v5", "v8"}) || st.Stable != "v8" {
		t.Errorf("state %+v, want artifacts v4 v5 v8, stable v8", st)
	}
}

func TestErrors(t *testing.T) {
	srv := awstest.New(t, awstest.RestJSON)
	srv.Handle("GET "+aliasPath, awstest.Sequence(
		awstest.Fixed(srv.Error(429, "TooManyRequestsException", "Rate exceeded")),
		awstest.Fixed(srv.Error(429, "TooManyRequestsException", "Rate exceeded")),
		awstest.Fixed(srv.Error(403, "AccessDeniedException", "not authorized to perform: lambda:GetAlias"))))
	c, _ := New(settings(srv), awstest.LoadOptions()...)
	_, err := c.Weights(context.Background())
	if err == nil || activities.IsPermanent(err) {
		t.Fatalf("throttled: err = %v, want plain", err)
	}
	_, err = c.Weights(context.Background())
	if !activities.IsPermanent(err) || !strings.HasPrefix(err.Error(), "lambda:GetAlias on function:checkout:live: AccessDeniedException: ") {
		t.Errorf("denied: err = %v", err)
	}
}

func TestPermissions(t *testing.T) {
	ps, err := Permissions(activities.CapRelease, map[string]any{"region": "eu-west-1", "accountId": "123456789012", "function": "checkout", "alias": "live"})
	if err != nil {
		t.Fatal(err)
	}
	fn := "arn:aws:lambda:eu-west-1:123456789012:function:checkout"
	want := []activities.Permission{
		{Actions: []string{"lambda:GetAlias", "lambda:ListTags", "lambda:ListVersionsByFunction", "lambda:PublishVersion", "lambda:TagResource", "lambda:UpdateAlias"}, Resources: []string{fn}},
		{Actions: []string{"lambda:DeleteFunction"}, Resources: []string{fn + ":*"}},
	}
	if !reflect.DeepEqual(ps, want) {
		t.Errorf("permissions = %+v", ps)
	}
}

// The record stays within Lambda's tag value limit; the oldest entries
// give way by raising from, so they count as unknown (kept), never as
// failed canaries.
func TestPromotionRecordLimit(t *testing.T) {
	p := parsePromotions("from=7 8 9", true)
	for n := 10; n < 200; n++ {
		p = p.add(strconv.Itoa(n))
	}
	s := p.String()
	if len(s) > maxTagValue {
		t.Fatalf("record is %d long", len(s))
	}
	q := parsePromotions(s, true)
	if q.ordered[len(q.ordered)-1] != "199" || q.from != 199-len(q.ordered) {
		t.Fatalf("record %q: from %d, %d entries", s, q.from, len(q.ordered))
	}
	if got := parsePromotions("from=2 3 5", true).add("3").String(); got != "from=2 5 3" {
		t.Fatalf("re-promoting 3: %q, want it moved to the end", got)
	}
}
