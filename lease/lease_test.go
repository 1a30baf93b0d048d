package lease_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/drillship/drillship/lease"
	"github.com/drillship/drillship/stack"
)

// Short timings so that the liveness tests run in seconds; the lock
// workflows read them from their input, so they are fixed per lock.
const (
	grace = 2 * time.Second
	every = 250 * time.Millisecond
)

var (
	setup   sync.Once
	shared  client.Client
	stopAll func()
)

func TestMain(m *testing.M) {
	code := m.Run()
	if stopAll != nil {
		stopAll()
	}
	os.Exit(code)
}

// temporalClient starts the embedded server and a worker with the lease
// registered, once for the package.
func temporalClient(t testing.TB) client.Client {
	t.Helper()
	setup.Do(func() {
		lease.Grace, lease.CheckEvery, lease.Linger = grace, every, 2*time.Second
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		st, err := stack.Start(ctx, stack.Options{})
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.DialContext(ctx, client.Options{HostPort: st.Address(), Namespace: st.Namespace(),
			Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
		if err != nil {
			st.Stop()
			t.Fatal(err)
		}
		w := sdkworker.New(c, lease.TaskQueue, sdkworker.Options{})
		lease.Register(w, c)
		w.RegisterWorkflowWithOptions(holderWorkflow, workflow.RegisterOptions{Name: "holder"})
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		shared = c
		stopAll = func() { w.Stop(); c.Close(); st.Stop() }
	})
	if shared == nil {
		t.Fatal("no Temporal server")
	}
	return shared
}

// holderWorkflow stands for a deploy: it runs until signalled "done".
func holderWorkflow(ctx workflow.Context) error {
	workflow.GetSignalChannel(ctx, "done").Receive(ctx, nil)
	return nil
}

func startHolder(t testing.TB, c client.Client, id string) {
	t.Helper()
	_, err := c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: id, TaskQueue: lease.TaskQueue}, "holder")
	if err != nil {
		t.Fatal(err)
	}
}

func acquire(t *testing.T, c client.Client, in lease.AcquireInput) lease.AcquireResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := lease.Acquire(ctx, c, in)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func release(t *testing.T, c client.Client, in lease.ReleaseInput) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := lease.Release(ctx, c, in); err != nil {
		t.Fatal(err)
	}
}

func holders(t *testing.T, c client.Client, key string) []string {
	t.Helper()
	hs, err := lease.Holders(context.Background(), c, key)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, h := range hs {
		ids = append(ids, h.ID)
	}
	return ids
}

// waitFree polls until key has no holder and returns how long it took.
func waitFree(t *testing.T, c client.Client, key string, limit time.Duration) time.Duration {
	t.Helper()
	t0 := time.Now()
	for time.Since(t0) < limit {
		if len(holders(t, c, key)) == 0 {
			return time.Since(t0)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s still held by %v after %s", key, holders(t, c, key), limit)
	return 0
}

func TestConcurrentAcquireGrantsOne(t *testing.T) {
	c := temporalClient(t)
	const n = 8
	key := "service:race@test"
	for i := 0; i < n; i++ {
		startHolder(t, c, fmt.Sprintf("race/%d", i))
	}
	results := make([]lease.AcquireResult, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = acquire(t, c, lease.AcquireInput{Keys: []string{key}, Holder: fmt.Sprintf("race/%d", i), What: "deploy"})
		}()
	}
	wg.Wait()
	winner := ""
	for i, r := range results {
		if r.Granted {
			if winner != "" {
				t.Fatalf("granted to %s and race/%d", winner, i)
			}
			winner = fmt.Sprintf("race/%d", i)
		}
	}
	if winner == "" {
		t.Fatalf("nobody granted: %+v", results)
	}
	for i, r := range results {
		if !r.Granted && (r.HeldBy != winner || r.Key != key || r.HeldWhat != "deploy") {
			t.Errorf("race/%d refused naming %+v, want %s holding %s", i, r, winner, key)
		}
	}
	if got := holders(t, c, key); len(got) != 1 || got[0] != winner {
		t.Fatalf("holders %v, want [%s]", got, winner)
	}
	release(t, c, lease.ReleaseInput{Keys: []string{key}, Holder: winner})
	if got := holders(t, c, key); len(got) != 0 {
		t.Fatalf("holders after release %v", got)
	}
}

func TestNeverStartedHolderFreesWithinGrace(t *testing.T) {
	c := temporalClient(t)
	key := "service:ghost@test"
	t0 := time.Now()
	if r := acquire(t, c, lease.AcquireInput{Keys: []string{key}, Holder: "deploy/ghost/v1"}); !r.Granted {
		t.Fatalf("%+v", r)
	}
	// Before the grace period the key stays held: the CLI may be about to
	// start the workflow.
	if r := acquire(t, c, lease.AcquireInput{Keys: []string{key}, Holder: "deploy/ghost/v2"}); r.Granted || r.HeldBy != "deploy/ghost/v1" {
		t.Fatalf("second acquire: %+v", r)
	}
	waitFree(t, c, key, grace+3*time.Second)
	freed := time.Since(t0)
	if freed < grace {
		t.Fatalf("freed after %s, before the %s grace period", freed, grace)
	}
	t.Logf("never-started holder freed %s after its grant (grace %s, check every %s)", freed, grace, every)
	if r := acquire(t, c, lease.AcquireInput{Keys: []string{key}, Holder: "deploy/ghost/v2"}); !r.Granted {
		t.Fatalf("after the holder was dropped: %+v", r)
	}
}

func TestTerminatedHolderFrees(t *testing.T) {
	c := temporalClient(t)
	key := "service:term@test"
	startHolder(t, c, "deploy/term/v1")
	if r := acquire(t, c, lease.AcquireInput{Keys: []string{key}, Holder: "deploy/term/v1"}); !r.Granted {
		t.Fatalf("%+v", r)
	}
	// Held past the grace period while it runs.
	time.Sleep(grace + 2*every)
	if got := holders(t, c, key); len(got) != 1 {
		t.Fatalf("running holder dropped: %v", got)
	}
	if err := c.TerminateWorkflow(context.Background(), "deploy/term/v1", "", "test"); err != nil {
		t.Fatal(err)
	}
	took := waitFree(t, c, key, 4*every+2*time.Second)
	t.Logf("terminated holder freed in %s (check every %s)", took, every)
}

// A finished run of the holder's id is an earlier deploy of that version,
// not the holder: the new holder keeps the key while its own run runs.
func TestEarlierRunOfHolderIDIsNotTheHolder(t *testing.T) {
	c := temporalClient(t)
	key := "service:rerun@test"
	id := "deploy/rerun/v1"
	startHolder(t, c, id)
	if err := c.SignalWorkflow(context.Background(), id, "", "done", nil); err != nil {
		t.Fatal(err)
	}
	run := c.GetWorkflow(context.Background(), id, "")
	if err := run.Get(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if r := acquire(t, c, lease.AcquireInput{Keys: []string{key}, Holder: id}); !r.Granted {
		t.Fatalf("%+v", r)
	}
	time.Sleep(3 * every)
	if got := holders(t, c, key); len(got) != 1 {
		t.Fatalf("holder dropped for an earlier run's close: %v", got)
	}
	startHolder(t, c, id)
	time.Sleep(grace + 2*every)
	if got := holders(t, c, key); len(got) != 1 {
		t.Fatalf("running holder dropped: %v", got)
	}
	if err := c.SignalWorkflow(context.Background(), id, "", "done", nil); err != nil {
		t.Fatal(err)
	}
	waitFree(t, c, key, 4*every+2*time.Second)
}

func TestReentrantParentAndRelease(t *testing.T) {
	c := temporalClient(t)
	key := "traffic:local/weights/reentrant"
	drill := "drill/rollback-drill/x"
	startHolder(t, c, drill)
	for i := 0; i < 2; i++ { // the CLI's acquire, then the workflow's own
		if r := acquire(t, c, lease.AcquireInput{Keys: []string{key}, Holder: drill, What: "drill"}); !r.Granted {
			t.Fatalf("acquire %d by the holder: %+v", i, r)
		}
	}
	if r := acquire(t, c, lease.AcquireInput{Keys: []string{key}, Holder: "deploy/web/v8"}); r.Granted || r.HeldBy != drill || r.HeldWhat != "drill" {
		t.Fatalf("other deploy: %+v", r)
	}
	child := "deploy/web/v9"
	startHolder(t, c, child)
	if r := acquire(t, c, lease.AcquireInput{Keys: []string{key}, Holder: child, Parent: drill}); !r.Granted {
		t.Fatalf("the drill's own deploy: %+v", r)
	}
	release(t, c, lease.ReleaseInput{Keys: []string{key}, Holder: "deploy/web/v8"}) // not a holder
	if got := holders(t, c, key); len(got) != 2 || got[0] != drill || got[1] != child {
		t.Fatalf("after a non-holder's release: %v", got)
	}
	release(t, c, lease.ReleaseInput{Keys: []string{key}, Holder: child})
	if got := holders(t, c, key); len(got) != 1 || got[0] != drill {
		t.Fatalf("after the child's release: %v", got)
	}
	release(t, c, lease.ReleaseInput{Keys: []string{key}, Holder: drill})
	if r := acquire(t, c, lease.AcquireInput{Keys: []string{key}, Holder: "deploy/web/v8"}); !r.Granted {
		t.Fatalf("after the drill's release: %+v", r)
	}
	release(t, c, lease.ReleaseInput{Keys: []string{key}, Holder: "deploy/web/v8"})
	// Releasing a key that has no lock at all is a no-op too.
	release(t, c, lease.ReleaseInput{Keys: []string{"service:never@test"}, Holder: drill})
}

func TestMultiKeyRefusalReleasesWhatItTook(t *testing.T) {
	c := temporalClient(t)
	k1, k2, k3 := "multi:a", "multi:b", "multi:c"
	startHolder(t, c, "multi/holder")
	startHolder(t, c, "multi/other")
	if r := acquire(t, c, lease.AcquireInput{Keys: []string{k2}, Holder: "multi/holder", What: "deploy"}); !r.Granted {
		t.Fatalf("%+v", r)
	}
	r := acquire(t, c, lease.AcquireInput{Keys: []string{k3, k2, k1}, Holder: "multi/other"})
	if r.Granted || r.Key != k2 || r.HeldBy != "multi/holder" {
		t.Fatalf("multi-key acquire: %+v", r)
	}
	for _, k := range []string{k1, k3} {
		if got := holders(t, c, k); len(got) != 0 {
			t.Fatalf("%s still held by %v after the refusal", k, got)
		}
	}
	release(t, c, lease.ReleaseInput{Keys: []string{k2}, Holder: "multi/holder"})
	if r := acquire(t, c, lease.AcquireInput{Keys: []string{k1, k2, k3}, Holder: "multi/other"}); !r.Granted {
		t.Fatalf("%+v", r)
	}
	for _, k := range []string{k1, k2, k3} {
		if got := holders(t, c, k); len(got) != 1 || got[0] != "multi/other" {
			t.Fatalf("%s: %v", k, got)
		}
	}
	release(t, c, lease.ReleaseInput{Keys: []string{k1, k2, k3}, Holder: "multi/other"})
}

// A free lock ends after lingering; the next acquire starts a new one.
func TestFreeLockEndsAndRestarts(t *testing.T) {
	c := temporalClient(t)
	key := "service:linger@test"
	startHolder(t, c, "linger/a")
	startHolder(t, c, "linger/b")
	if r := acquire(t, c, lease.AcquireInput{Keys: []string{key}, Holder: "linger/a"}); !r.Granted {
		t.Fatalf("%+v", r)
	}
	release(t, c, lease.ReleaseInput{Keys: []string{key}, Holder: "linger/a"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.GetWorkflow(ctx, lease.LockID(key), "").Get(ctx, nil); err != nil {
		t.Fatalf("free lock did not end: %v", err)
	}
	// Releasing on an ended lock is a no-op, not an error.
	release(t, c, lease.ReleaseInput{Keys: []string{key}, Holder: "linger/a"})
	if r := acquire(t, c, lease.AcquireInput{Keys: []string{key}, Holder: "linger/a"}); !r.Granted {
		t.Fatalf("%+v", r)
	}
	if r := acquire(t, c, lease.AcquireInput{Keys: []string{key}, Holder: "linger/b"}); r.Granted {
		t.Fatalf("second holder granted on the new lock: %+v", r)
	}
	release(t, c, lease.ReleaseInput{Keys: []string{key}, Holder: "linger/a"})
}

// A deploy that has just ended does not block the next one until the lock's
// next check: the refused acquirer has the lock check at once.
func TestEndedHolderIsReplacedAtOnce(t *testing.T) {
	c := temporalClient(t)
	old := lease.CheckEvery
	lease.CheckEvery = time.Hour // this lock would not look by itself
	defer func() { lease.CheckEvery = old }()
	key := "service:ended@test"
	startHolder(t, c, "deploy/ended/v1")
	if r := acquire(t, c, lease.AcquireInput{Keys: []string{key}, Holder: "deploy/ended/v1"}); !r.Granted {
		t.Fatalf("%+v", r)
	}
	if err := c.SignalWorkflow(context.Background(), "deploy/ended/v1", "", "done", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.GetWorkflow(context.Background(), "deploy/ended/v1", "").Get(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if r := acquire(t, c, lease.AcquireInput{Keys: []string{key}, Holder: "deploy/ended/v2"}); !r.Granted {
		t.Fatalf("after the holder ended: %+v", r)
	}
	if took := time.Since(t0); took > 5*time.Second {
		t.Fatalf("took %s", took)
	}
	release(t, c, lease.ReleaseInput{Keys: []string{key}, Holder: "deploy/ended/v2"})
}

// A lock held for long continues as new with its holders, and keeps
// refusing and granting across the new runs.
func TestLockContinuesAsNewWithItsHolders(t *testing.T) {
	c := temporalClient(t)
	old := lease.SetMaxEvents(40)
	defer lease.SetMaxEvents(old)
	key := "service:long@test"
	startHolder(t, c, "deploy/long/v1")
	if r := acquire(t, c, lease.AcquireInput{Keys: []string{key}, Holder: "deploy/long/v1", What: "deploy"}); !r.Granted {
		t.Fatalf("%+v", r)
	}
	first := c.GetWorkflow(context.Background(), lease.LockID(key), "").GetRunID()
	deadline := time.Now().Add(20 * time.Second)
	runs := map[string]bool{first: true}
	for len(runs) < 3 && time.Now().Before(deadline) {
		// Acquires race the continue-as-new: each must still be refused.
		if r := acquire(t, c, lease.AcquireInput{Keys: []string{key}, Holder: "deploy/long/v2"}); r.Granted || r.HeldBy != "deploy/long/v1" {
			t.Fatalf("during continue-as-new: %+v", r)
		}
		d, err := c.DescribeWorkflowExecution(context.Background(), lease.LockID(key), "")
		if err != nil {
			t.Fatal(err)
		}
		runs[d.GetWorkflowExecutionInfo().GetExecution().GetRunId()] = true
		time.Sleep(100 * time.Millisecond)
	}
	if len(runs) < 3 {
		t.Fatalf("lock did not continue as new: runs %v", runs)
	}
	if got := holders(t, c, key); len(got) != 1 || got[0] != "deploy/long/v1" {
		t.Fatalf("holders after continue-as-new: %v", got)
	}
	if err := c.SignalWorkflow(context.Background(), "deploy/long/v1", "", "done", nil); err != nil {
		t.Fatal(err)
	}
	if r := acquire(t, c, lease.AcquireInput{Keys: []string{key}, Holder: "deploy/long/v2"}); !r.Granted {
		// The holder may not have closed yet when this was refused.
		waitFree(t, c, key, 4*every+2*time.Second)
	}
}

// BenchmarkAcquireRelease: one grant and one release of a key whose lock
// runs (the common case: a lock lingers between deploys).
func BenchmarkAcquireRelease(b *testing.B) {
	c := temporalClient(b)
	key := "service:bench@test"
	ctx := context.Background()
	for b.Loop() {
		r, err := lease.Acquire(ctx, c, lease.AcquireInput{Keys: []string{key}, Holder: "bench/a"})
		if err != nil || !r.Granted {
			b.Fatal(r, err)
		}
		if err := lease.Release(ctx, c, lease.ReleaseInput{Keys: []string{key}, Holder: "bench/a"}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRefusal: an acquire refused by a held lock (validator only,
// nothing written to the lock's history).
func BenchmarkRefusal(b *testing.B) {
	c := temporalClient(b)
	key := "service:bench-held@test"
	ctx := context.Background()
	startHolder(b, c, "bench/holder")
	if r, err := lease.Acquire(ctx, c, lease.AcquireInput{Keys: []string{key}, Holder: "bench/holder"}); err != nil || !r.Granted {
		b.Fatal(r, err)
	}
	for b.Loop() {
		r, err := lease.Acquire(ctx, c, lease.AcquireInput{Keys: []string{key}, Holder: "bench/other"})
		if err != nil || r.Granted {
			b.Fatal(r, err)
		}
	}
}
