package ecs

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/awsconf/awstest"
)

const (
	acct   = "arn:aws:ecs:us-east-1:123456789012:"
	repo   = "123456789012.dkr.ecr.us-east-1.amazonaws.com/web"
	family = "web"
)

func tdARN(rev int) string { return fmt.Sprintf("%stask-definition/%s:%d", acct, family, rev) }

// setup: revision 1 runs v0 (in no service), revision 2 runs v1 in both.
func setup(t *testing.T) (*awstest.ECS, *Release) {
	f := awstest.NewECS(t, family, []string{repo + ":v0", repo + ":v1"}, map[string]int{"web": 3, "web-canary": 0})
	srv := f.Server
	r, err := New(map[string]any{"region": "us-east-1", "endpoint": srv.URL, "pollInterval": "5ms", "maxWait": "5s",
		"cluster": "prod", "service": "web", "canaryService": "web-canary", "container": "web"}, awstest.LoadOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	return f, r
}

func TestDeployPromotePrune(t *testing.T) {
	f, r := setup(t)
	srv := f.Server
	ctx := context.Background()
	if err := r.Deploy(ctx, "v2"); err != nil {
		t.Fatal(err)
	}
	regs := srv.Requests("RegisterTaskDefinition")
	if len(regs) != 1 {
		t.Fatalf("RegisterTaskDefinition calls = %d", len(regs))
	}
	doc := regs[0].Doc
	cds := doc["containerDefinitions"].([]any)
	if doc["family"] != "web" || cds[0].(map[string]any)["image"] != repo+":v2" ||
		cds[1].(map[string]any)["image"] != "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable" ||
		doc["executionRoleArn"] != "arn:aws:iam::123456789012:role/ecsTaskExecutionRole" || doc["networkMode"] != "awsvpc" {
		t.Errorf("RegisterTaskDefinition = %v", doc)
	}
	if got := srv.Requests("RegisterTaskDefinition")[0].Header.Get("X-Amz-Target"); got != "AmazonEC2ContainerServiceV20141113.RegisterTaskDefinition" {
		t.Errorf("target = %q", got)
	}
	up := srv.Requests("UpdateService")[0].Doc
	if up["cluster"] != "prod" || up["service"] != "web-canary" || up["taskDefinition"] != tdARN(3) || up["desiredCount"] != 1.0 {
		t.Errorf("UpdateService = %v", up)
	}
	// Deploying again changes nothing.
	if err := r.Deploy(ctx, "v2"); err != nil {
		t.Fatal(err)
	}
	if len(srv.Requests("RegisterTaskDefinition")) != 1 || len(srv.Requests("UpdateService")) != 1 {
		t.Errorf("second deploy registered or updated again: %v", srv.Ops())
	}

	if err := r.Promote(ctx, "v2"); err != nil {
		t.Fatal(err)
	}
	up = srv.Requests("UpdateService")[1].Doc
	if up["service"] != "web" || up["taskDefinition"] != tdARN(3) {
		t.Errorf("promote UpdateService = %v", up)
	}
	if err := r.Stop(ctx, "v2"); err != nil {
		t.Fatal(err)
	}
	up = srv.Requests("UpdateService")[2].Doc
	if up["service"] != "web-canary" || up["desiredCount"] != 0.0 {
		t.Errorf("stop UpdateService = %v", up)
	}

	st, err := r.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := activities.ReleaseState{Stable: "v2", Running: []string{"v2"}, Artifacts: []string{"v0", "v1", "v2"}}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("state = %+v, want %+v", st, want)
	}
	if tags := f.Tags(3); tags[tagDeployed] == "" || tags[tagPromoted] == "" {
		t.Errorf("revision 3 tags = %v, want deployed and promoted marks", tags)
	}
	// Revisions 1 and 2 predate drillship's marks: either may be what v2
	// replaced, so neither goes.
	deleted, err := r.Prune(ctx, "v2", 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(deleted) != 0 {
		t.Errorf("deleted = %v, want nothing while the rollback target is unproven", deleted)
	}
	if revs := f.Revisions(); len(revs) != 3 {
		t.Errorf("left revisions = %v", revs)
	}
}

// Issue 10 item 6 against the ECS wire fake: v5 stable, v6 and v7 rolled
// back, v8 promoted. keep 3 keeps v8, its rollback target v5 and v4.
func TestPruneKeepsRollbackTarget(t *testing.T) {
	f, r := setup(t)
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range []string{"v2", "v3", "v4", "v5", "v6", "v7", "v8"} {
		must(r.Deploy(ctx, v))
		if v != "v6" && v != "v7" {
			must(r.Promote(ctx, v))
			time.Sleep(2 * time.Millisecond) // promotion marks are Unix ms
		}
		must(r.Stop(ctx, v)) // the canary service scales to zero
		if v == "v7" {
			// After a rollback the workflow prunes too: v6, the first
			// failed canary, goes; v7 is still the canary's revision.
			deleted, err := r.Prune(ctx, "v5", 3)
			must(err)
			if !reflect.DeepEqual(deleted, []string{"v6", "v0", "v1", "v2"}) {
				t.Fatalf("after v7's rollback deleted %v, want v6 then v0 v1 v2 (v5, its target v4, v3 kept)", deleted)
			}
		}
	}
	deleted, err := r.Prune(ctx, "v8", 3)
	must(err)
	if !reflect.DeepEqual(deleted, []string{"v7", "v3"}) {
		t.Errorf("deleted %v, want the failed canary v7 first, then v3", deleted)
	}
	left := map[string]bool{}
	for _, img := range f.Revisions() {
		left[img[len(repo)+1:]] = true
	}
	if !reflect.DeepEqual(left, map[string]bool{"v4": true, "v5": true, "v8": true}) {
		t.Errorf("left %v, want v4 v5 v8", left)
	}
	if again, err := r.Prune(ctx, "v8", 3); err != nil || len(again) != 0 {
		t.Errorf("second prune: %v %v, want nothing", again, err)
	}
}

func TestAccessDeniedAndThrottle(t *testing.T) {
	f, r := setup(t)
	srv := f.Server
	srv.Handle("UpdateService", awstest.Sequence(
		awstest.Fixed(srv.Error(400, "ThrottlingException", "Rate exceeded")),
		awstest.Fixed(srv.Error(400, "ThrottlingException", "Rate exceeded")),
		awstest.Fixed(srv.Error(400, "AccessDeniedException", "User is not authorized to perform: ecs:UpdateService"))))
	err := r.Deploy(context.Background(), "v2")
	if err == nil || activities.IsPermanent(err) {
		t.Fatalf("throttled: %v", err)
	}
	err = r.Deploy(context.Background(), "v2")
	if !activities.IsPermanent(err) || !strings.HasPrefix(err.Error(), "ecs:UpdateService on service/prod/web-canary: AccessDeniedException: ") {
		t.Errorf("denied: %v", err)
	}
}

func TestPermissions(t *testing.T) {
	ps, err := Permissions(activities.CapRelease, map[string]any{"region": "us-east-1", "accountId": "123456789012",
		"cluster": "prod", "service": "web", "canaryService": "web-canary"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ps[0].Resources, []string{acct + "service/prod/web-canary", acct + "service/prod/web"}) {
		t.Errorf("permissions = %+v", ps)
	}
}
