package fis

import (
	"context"
	"strings"
	"testing"

	"github.com/drillship/drillship/activities"
	"github.com/drillship/drillship/activities/awsconf/awstest"
)

func experiment(srv *awstest.Server, status, reason string) awstest.Handler {
	return awstest.Fixed(srv.JSON(map[string]any{"experiment": map[string]any{
		"id": "EXPaBcDeFgHiJkLmN", "arn": "arn:aws:fis:us-east-1:123456789012:experiment/EXPaBcDeFgHiJkLmN",
		"experimentTemplateId": "EXT1a2b3c4d5e6f7", "roleArn": "arn:aws:iam::123456789012:role/fis",
		"state":        map[string]any{"status": status, "reason": reason},
		"creationTime": 1.7639e9, "startTime": 1.7639e9,
	}}))
}

func newFaults(t *testing.T, srv *awstest.Server) *Faults {
	f, err := New(map[string]any{"region": "us-east-1", "endpoint": srv.URL, "pollInterval": "5ms", "maxWait": "5s",
		"templates": []any{"EXT1a2b3c4d5e6f7"}}, awstest.LoadOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

var fault = activities.Fault{Kind: "experiment", Params: map[string]string{"template": "EXT1a2b3c4d5e6f7", "clientToken": "drill-2026-11-23"}}

func TestInjectWaitsRunningThenStop(t *testing.T) {
	srv := awstest.New(t, awstest.RestJSON)
	srv.Handle("POST /experiments", experiment(srv, "initiating", "Experiment is initiating."))
	srv.Handle("GET /experiments/{id}", awstest.Sequence(
		experiment(srv, "initiating", "Experiment is initiating."),
		experiment(srv, "running", "Experiment is running."),
		experiment(srv, "running", "Experiment is running.")))
	srv.Handle("DELETE /experiments/{id}", experiment(srv, "stopping", "Stopping."))
	f := newFaults(t, srv)
	id, err := f.Inject(context.Background(), fault)
	if err != nil {
		t.Fatal(err)
	}
	if id != "EXPaBcDeFgHiJkLmN" {
		t.Errorf("handle = %q", id)
	}
	start := srv.Requests("POST /experiments")[0].Doc
	if start["experimentTemplateId"] != "EXT1a2b3c4d5e6f7" || start["clientToken"] != "drill-2026-11-23" {
		t.Errorf("StartExperiment = %v", start)
	}
	if n := len(srv.Requests("GET /experiments/{id}")); n != 2 {
		t.Errorf("GetExperiment calls = %d, want 2", n)
	}
	if _, err := f.Stop(context.Background(), fault, id); err != nil {
		t.Fatal(err)
	}
	stops := srv.Requests("DELETE /experiments/{id}")
	if len(stops) != 1 || stops[0].Vars["id"] != id {
		t.Errorf("StopExperiment = %v", stops)
	}
	// Stopping a completed experiment is fine and calls nothing more.
	srv.Handle("GET /experiments/{id}", experiment(srv, "completed", "Experiment completed."))
	if _, err := f.Stop(context.Background(), fault, id); err != nil || len(srv.Requests("DELETE /experiments/{id}")) != 1 {
		t.Errorf("stop of completed: %v", err)
	}
}

func TestInjectFailedIsPermanentWithReason(t *testing.T) {
	srv := awstest.New(t, awstest.RestJSON)
	srv.Handle("POST /experiments", experiment(srv, "pending", "Experiment is pending."))
	srv.Handle("GET /experiments/{id}", experiment(srv, "failed", "Target resolution returned empty set."))
	_, err := newFaults(t, srv).Inject(context.Background(), fault)
	if !activities.IsPermanent(err) || !strings.Contains(err.Error(), "failed: Target resolution returned empty set.") {
		t.Errorf("err = %v", err)
	}
}

func TestDeniedAndThrottled(t *testing.T) {
	srv := awstest.New(t, awstest.RestJSON)
	srv.Handle("POST /experiments", awstest.Sequence(
		awstest.Fixed(srv.Error(429, "ThrottlingException", "Rate exceeded")),
		awstest.Fixed(srv.Error(429, "ThrottlingException", "Rate exceeded")),
		awstest.Fixed(srv.Error(403, "AccessDeniedException", "not authorized to perform: fis:StartExperiment"))))
	f := newFaults(t, srv)
	_, err := f.Inject(context.Background(), fault)
	if err == nil || activities.IsPermanent(err) {
		t.Fatalf("throttled: %v", err)
	}
	_, err = f.Inject(context.Background(), fault)
	if !activities.IsPermanent(err) || !strings.HasPrefix(err.Error(), "fis:StartExperiment on experiment-template/EXT1a2b3c4d5e6f7: AccessDeniedException: ") {
		t.Errorf("denied: %v", err)
	}
	// Same token on the retry: FIS returns the same experiment.
	reqs := srv.Requests("POST /experiments")
	if reqs[0].Doc["clientToken"] != reqs[2].Doc["clientToken"] {
		t.Error("client token changed between attempts")
	}
}
