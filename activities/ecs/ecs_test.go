package ecs

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/awsconf/awstest"
)

const (
	acct   = "arn:aws:ecs:us-east-1:123456789012:"
	repo   = "123456789012.dkr.ecr.us-east-1.amazonaws.com/web"
	family = "web"
)

// fakeECS keeps services and task definitions and answers the awsJson1.1
// calls the provider makes.
type fakeECS struct {
	mu       sync.Mutex
	images   map[int]string // revision -> image
	services map[string]*svc
	next     int
}

type svc struct {
	rev     int
	desired int
}

func tdARN(rev int) string { return fmt.Sprintf("%stask-definition/%s:%d", acct, family, rev) }

func revOf(arn string) int {
	var n int
	fmt.Sscanf(arn[strings.LastIndex(arn, ":")+1:], "%d", &n)
	return n
}

func (f *fakeECS) taskDef(rev int) map[string]any {
	return map[string]any{
		"taskDefinitionArn": tdARN(rev), "family": family, "revision": rev, "status": "ACTIVE",
		"networkMode": "awsvpc", "cpu": "256", "memory": "512", "requiresCompatibilities": []string{"FARGATE"},
		"executionRoleArn": "arn:aws:iam::123456789012:role/ecsTaskExecutionRole",
		"containerDefinitions": []any{
			map[string]any{"name": "web", "image": f.images[rev], "essential": true,
				"portMappings": []any{map[string]any{"containerPort": 8080, "protocol": "tcp"}}},
			map[string]any{"name": "log-router", "image": "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable", "essential": true},
		},
	}
}

func (f *fakeECS) install(srv *awstest.Server) {
	srv.Handle("DescribeServices", func(r *awstest.Request) awstest.Response {
		f.mu.Lock()
		defer f.mu.Unlock()
		var out []any
		for _, n := range r.Doc["services"].([]any) {
			s := f.services[n.(string)]
			out = append(out, map[string]any{
				"serviceArn": acct + "service/prod/" + n.(string), "serviceName": n, "clusterArn": acct + "cluster/prod",
				"status": "ACTIVE", "desiredCount": s.desired, "runningCount": s.desired, "pendingCount": 0,
				"taskDefinition": tdARN(s.rev),
				"deployments": []any{map[string]any{"id": "ecs-svc/1", "status": "PRIMARY", "taskDefinition": tdARN(s.rev),
					"desiredCount": s.desired, "runningCount": s.desired, "rolloutState": "COMPLETED"}},
			})
		}
		return srv.JSON(map[string]any{"services": out, "failures": []any{}})
	})
	srv.Handle("DescribeTaskDefinition", func(r *awstest.Request) awstest.Response {
		f.mu.Lock()
		defer f.mu.Unlock()
		return srv.JSON(map[string]any{"taskDefinition": f.taskDef(revOf(r.Doc["taskDefinition"].(string)))})
	})
	srv.Handle("ListTaskDefinitions", func(r *awstest.Request) awstest.Response {
		f.mu.Lock()
		defer f.mu.Unlock()
		var arns []string
		for rev := 1; rev < f.next; rev++ {
			if _, ok := f.images[rev]; ok {
				arns = append(arns, tdARN(rev))
			}
		}
		if r.Doc["sort"] == "DESC" {
			for i, j := 0, len(arns)-1; i < j; i, j = i+1, j-1 {
				arns[i], arns[j] = arns[j], arns[i]
			}
		}
		return srv.JSON(map[string]any{"taskDefinitionArns": arns})
	})
	srv.Handle("RegisterTaskDefinition", func(r *awstest.Request) awstest.Response {
		f.mu.Lock()
		defer f.mu.Unlock()
		rev := f.next
		f.next++
		f.images[rev] = r.Doc["containerDefinitions"].([]any)[0].(map[string]any)["image"].(string)
		return srv.JSON(map[string]any{"taskDefinition": f.taskDef(rev)})
	})
	srv.Handle("UpdateService", func(r *awstest.Request) awstest.Response {
		f.mu.Lock()
		defer f.mu.Unlock()
		s := f.services[r.Doc["service"].(string)]
		if td, ok := r.Doc["taskDefinition"].(string); ok {
			s.rev = revOf(td)
		}
		if n, ok := r.Doc["desiredCount"].(float64); ok {
			s.desired = int(n)
		}
		return srv.JSON(map[string]any{"service": map[string]any{"serviceName": r.Doc["service"]}})
	})
	srv.Handle("DeregisterTaskDefinition", func(r *awstest.Request) awstest.Response {
		f.mu.Lock()
		defer f.mu.Unlock()
		rev := revOf(r.Doc["taskDefinition"].(string))
		td := f.taskDef(rev)
		td["status"] = "INACTIVE"
		delete(f.images, rev)
		return srv.JSON(map[string]any{"taskDefinition": td})
	})
}

func setup(t *testing.T) (*awstest.Server, *fakeECS, *Release) {
	srv := awstest.New(t, awstest.JSON11)
	f := &fakeECS{images: map[int]string{6: repo + ":v0", 7: repo + ":v1"}, next: 8,
		services: map[string]*svc{"web": {rev: 7, desired: 3}, "web-canary": {rev: 7, desired: 0}}}
	f.install(srv)
	r, err := New(map[string]any{"region": "us-east-1", "endpoint": srv.URL, "pollInterval": "5ms", "maxWait": "5s",
		"cluster": "prod", "service": "web", "canaryService": "web-canary", "container": "web"}, awstest.LoadOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	return srv, f, r
}

func TestDeployPromotePrune(t *testing.T) {
	srv, f, r := setup(t)
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
	if up["cluster"] != "prod" || up["service"] != "web-canary" || up["taskDefinition"] != tdARN(8) || up["desiredCount"] != 1.0 {
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
	if up["service"] != "web" || up["taskDefinition"] != tdARN(8) {
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
	deleted, err := r.Prune(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(deleted, []string{"v1", "v0"}) {
		t.Errorf("deleted = %v", deleted)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.images[8]; !ok || len(f.images) != 1 {
		t.Errorf("left revisions = %v", f.images)
	}
}

func TestAccessDeniedAndThrottle(t *testing.T) {
	srv, _, r := setup(t)
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
