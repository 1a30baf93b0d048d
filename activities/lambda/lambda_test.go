package lambda

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
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
	c, _ := New(settings(srv), awstest.LoadOptions()...)
	if err := c.Promote(context.Background(), "v2"); err != nil {
		t.Fatal(err)
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
	// keep 1: versions 1 and 3 are beyond it; 3 is the alias's primary.
	deleted, err := c.Prune(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	dels := srv.Requests("DELETE /2015-03-31/functions/{fn}")
	if !reflect.DeepEqual(deleted, []string{"1"}) || len(dels) != 1 || dels[0].Query.Get("Qualifier") != "1" {
		t.Errorf("deleted = %v, calls = %d", deleted, len(dels))
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
		{Actions: []string{"lambda:GetAlias", "lambda:ListVersionsByFunction", "lambda:PublishVersion", "lambda:UpdateAlias"}, Resources: []string{fn}},
		{Actions: []string{"lambda:DeleteFunction"}, Resources: []string{fn + ":*"}},
	}
	if !reflect.DeepEqual(ps, want) {
		t.Errorf("permissions = %+v", ps)
	}
}
