package lease_test

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/drillship/drillship/lease"
)

var record = flag.Bool("record", false, "record the lock histories missing from testdata")

// Recorded lock histories are kept forever and replayed against the current
// code: a lock held across a worker upgrade must keep replaying. Record
// missing ones with: go test ./lease -run TestRecordLockHistories -args -record
var lockHistories = []string{"lock-continued-as-new.json", "lock-completed.json"}

func TestRecordLockHistories(t *testing.T) {
	if !*record {
		t.Skip("run with -args -record to record missing histories")
	}
	missing := false
	for _, f := range lockHistories {
		if _, err := os.Stat(filepath.Join("testdata", f)); err != nil {
			missing = true
		}
	}
	if !missing {
		t.Skip("every lock history is recorded; recorded histories are kept, not re-recorded")
	}
	c := temporalClient(t)
	old := lease.SetMaxEvents(40)
	defer lease.SetMaxEvents(old)
	key := "service:replay@test"
	holder := "deploy/replay/v1"
	startHolder(t, c, holder)
	// A grant, a re-entrant grant, a refusal (not in history: the validator
	// refuses), a grant through a parent and a release by the child.
	for _, in := range []lease.AcquireInput{
		{Keys: []string{key}, Holder: holder, What: "deploy of replay v1"},
		{Keys: []string{key}, Holder: holder, What: "deploy of replay v1"},
		{Keys: []string{key}, Holder: "deploy/replay/v2"},
		{Keys: []string{key}, Holder: "deploy/replay/v1/child", Parent: holder},
	} {
		acquire(t, c, in)
	}
	release(t, c, lease.ReleaseInput{Keys: []string{key}, Holder: "deploy/replay/v1/child"})
	first := c.GetWorkflow(context.Background(), lease.LockID(key), "").GetRunID()
	deadline := time.Now().Add(30 * time.Second)
	for {
		d, err := c.DescribeWorkflowExecution(context.Background(), lease.LockID(key), "")
		if err != nil {
			t.Fatal(err)
		}
		if d.GetWorkflowExecutionInfo().GetExecution().GetRunId() != first {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the lock did not continue as new")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := c.SignalWorkflow(context.Background(), holder, "", "done", nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	last := c.GetWorkflow(ctx, lease.LockID(key), "")
	if err := last.Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	d, err := c.DescribeWorkflowExecution(ctx, lease.LockID(key), "")
	if err != nil {
		t.Fatal(err)
	}
	writeHistory(t, c, lease.LockID(key), first, "lock-continued-as-new.json")
	writeHistory(t, c, lease.LockID(key), d.GetWorkflowExecutionInfo().GetExecution().GetRunId(), "lock-completed.json")
}

func writeHistory(t *testing.T, c client.Client, id, runID, file string) {
	t.Helper()
	path := filepath.Join("testdata", file)
	if _, err := os.Stat(path); err == nil {
		return
	}
	h := &historypb.History{}
	it := c.GetWorkflowHistory(context.Background(), id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		h.Events = append(h.Events, ev)
	}
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll("testdata", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded %s: %d events, last %s", path, len(h.Events), h.Events[len(h.Events)-1].GetEventType())
}

func TestReplayLockHistories(t *testing.T) {
	logger := sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))
	for _, file := range lockHistories {
		t.Run(file, func(t *testing.T) {
			path := filepath.Join("testdata", file)
			f, err := os.Open(path)
			if err != nil {
				t.Fatalf("%v (record it with: go test ./lease -run TestRecordLockHistories -args -record)", err)
			}
			defer f.Close()
			h, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
			if err != nil {
				t.Fatal(err)
			}
			r := sdkworker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(lease.LockWorkflowFunc, workflow.RegisterOptions{Name: lease.LockWorkflow})
			if err := r.ReplayWorkflowHistory(logger, h); err != nil {
				t.Fatalf("replaying %s against the current lock workflow: %v", path, err)
			}
		})
	}
}
