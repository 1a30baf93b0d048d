package fis

import (
	"context"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/awsconf/awstest"
)

const tmpl = "EXT1a2b3c4d5e6f7"

func ownedFault(owner string) activities.Fault {
	return activities.Fault{Kind: KindExperiment, Params: map[string]string{"template": tmpl}, Owner: owner}
}

func fakeSettings(fk *awstest.FIS) map[string]any {
	return map[string]any{"region": "us-east-1", "endpoint": fk.URL, "pollInterval": "5ms", "maxWait": "100ms"}
}

// Issue 11 item 9: an experiment that started but never came to run. The
// inject fails, yet the activity's error carries the handle, and a restore
// that has no handle at all still finds the experiment by its owner tag and
// stops it. On the old code InjectFault dropped the handle and Stop with an
// empty handle returned success while the experiment went on.
func TestFailedInjectKeepsHandleAndRestoreFindsByTag(t *testing.T) {
	fk := awstest.NewFIS(t)
	fk.StartAs(tmpl, "initiating")
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.SetTestTimeout(20 * time.Second)
	a := activities.New(activities.NewRegistry(activities.Provider{Name: Name,
		Faults: func(cfg map[string]any) (activities.Faults, error) { return New(cfg, awstest.LoadOptions()...) }}), nil)
	env.RegisterActivity(a)
	target := activities.Target{Provider: Name, Config: fakeSettings(fk)}

	_, err := env.ExecuteActivity(a.InjectFault, activities.FaultInput{Target: target, Fault: ownedFault("drill-9")})
	if err == nil {
		t.Fatal("inject of an experiment that never runs succeeded")
	}
	h := activities.HandleOf(err)
	if h == "" || fk.Status(h) != "initiating" {
		t.Fatalf("handle from the failed inject = %q (status %q); err %v", h, fk.Status(h), err)
	}
	if tags := fk.Tags(h); tags[TagOwner] != "drill-9" || tags[TagKind] != KindExperiment {
		t.Fatalf("experiment tags = %v", tags)
	}

	// Someone else's experiments of the same template, running.
	fk.StartAs(tmpl, "running")
	person := fk.Put(tmpl, nil)
	other := fk.Put(tmpl, map[string]string{TagOwner: "drill-10", TagKind: KindExperiment})

	v, err := env.ExecuteActivity(a.StopFault, activities.FaultInput{Target: target, Fault: ownedFault("drill-9")})
	if err != nil {
		t.Fatal(err)
	}
	var r activities.FaultResult
	if err := v.Get(&r); err != nil {
		t.Fatal(err)
	}
	if len(r.Stopped) != 1 || r.Stopped[0] != h || r.NotFound || fk.Status(h) != "stopped" {
		t.Fatalf("restore without a handle = %+v, experiment %s is %s; want it stopped", r, h, fk.Status(h))
	}
	if fk.Status(person) != "running" || fk.Status(other) != "running" {
		t.Fatalf("others' experiments: %s %s, %s %s; want both running", person, fk.Status(person), other, fk.Status(other))
	}
}

// A handle naming someone else's experiment is left alone and said so; the
// owner's own experiment is found by tag instead.
func TestStopLeavesOthersExperiments(t *testing.T) {
	fk := awstest.NewFIS(t)
	f, err := New(fakeSettings(fk), awstest.LoadOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	mine, err := f.Inject(ctx, ownedFault("drill-1"))
	if err != nil {
		t.Fatal(err)
	}
	// A retried inject (another client token) finds the running one.
	again, err := f.Inject(ctx, activities.Fault{Kind: KindExperiment, Params: map[string]string{"template": tmpl, "clientToken": "other"}, Owner: "drill-1"})
	if err != nil || again != mine {
		t.Fatalf("retried inject = %q, %v; want %s", again, err, mine)
	}
	person := fk.Put(tmpl, nil)
	other := fk.Put(tmpl, map[string]string{TagOwner: "drill-2", TagKind: KindExperiment})

	r, err := f.Stop(ctx, ownedFault("drill-1"), person)
	if err != nil {
		t.Fatal(err)
	}
	if r.NotOurs != person+" belongs to no drill (put in by hand)" || len(r.Stopped) != 1 || r.Stopped[0] != mine {
		t.Fatalf("stop with a person's handle = %+v", r)
	}
	r, err = f.Stop(ctx, ownedFault("drill-1"), other)
	if err != nil || r.NotOurs != other+" belongs to drill-2" || len(r.Stopped) != 1 || r.Stopped[0] != mine {
		t.Fatalf("stop with another drill's handle = %+v, %v", r, err)
	}
	if fk.Status(mine) != "stopped" || fk.Status(person) != "running" || fk.Status(other) != "running" {
		t.Fatalf("statuses: mine %s person %s other %s", fk.Status(mine), fk.Status(person), fk.Status(other))
	}
	// An owner-less stop (a run from before ownership) may not stop a
	// drill's experiment by its handle.
	r, err = f.Stop(ctx, ownedFault(""), other)
	if err != nil || r.NotOurs == "" || !r.NotFound || fk.Status(other) != "running" {
		t.Fatalf("owner-less stop of a drill's experiment = %+v, %v (status %s)", r, err, fk.Status(other))
	}
	// A handle FIS does not know: the owner's are looked up by tag.
	r, err = f.Stop(ctx, ownedFault("drill-1"), "EXP99")
	if err != nil || r.NotFound || len(r.Stopped) != 1 || r.Stopped[0] != mine {
		t.Fatalf("stop with an unknown handle = %+v, %v", r, err)
	}
	// Nothing of this owner: not found, not an error.
	r, err = f.Stop(ctx, ownedFault("drill-3"), "")
	if err != nil || !r.NotFound || len(r.Stopped) != 0 {
		t.Fatalf("stop of an experiment never started = %+v, %v", r, err)
	}
}
