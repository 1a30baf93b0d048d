package activities

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/drillship/drillship/analysis"
)

// The provider is the watch's boundary: fakeSignals answers each sample from
// a script (n counts the samples from 0), so a test can make the canary bad,
// silent, erroring or slow at a chosen sample.
type fakeSignals struct {
	mu     sync.Mutex
	n      int
	answer func(ctx context.Context, n int) (Sample, error)
	// lookBack, when set, answers queries whose window reaches further
	// back than a normal sample's (a resumed watch judging its gap).
	lookBack func(q Query) (Sample, error)
}

func (f *fakeSignals) Sample(ctx context.Context, q Query) (Sample, error) {
	f.mu.Lock()
	n := f.n
	f.n++
	f.mu.Unlock()
	if f.lookBack != nil && q.Window > time.Second {
		return f.lookBack(q)
	}
	return f.answer(ctx, n)
}

func (f *fakeSignals) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

func errorRate(v float64) func(context.Context, int) (Sample, error) {
	return func(context.Context, int) (Sample, error) { return Sample{Value: v, At: nowMs()}, nil }
}

func noData(context.Context, int) (Sample, error) { return Sample{NoData: true, At: nowMs()}, nil }

const (
	good = 0.01
	bad  = 0.30
	iv   = 25 * time.Millisecond
)

func watchInput(d time.Duration) WatchInput {
	limit := 0.10
	return WatchInput{
		Signals:  Target{Provider: "fake"},
		Metrics:  []analysis.Metric{{Name: "errors", Metric: MetricErrorRate, Max: &limit}},
		Canary:   "v2",
		Stable:   "v1",
		Interval: iv,
		Duration: d,
		Baseline: true,
	}
}

// runWatch runs the Watch activity in the SDK's test environment, resuming
// from details when they are given, as a retried attempt does.
func runWatch(t *testing.T, f *fakeSignals, in WatchInput, details *WatchProgress) WatchResult {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.SetTestTimeout(20 * time.Second)
	a := New(NewRegistry(Provider{Name: "fake", Signals: func(map[string]any) (Signals, error) { return f, nil }}), nil)
	env.RegisterActivity(a)
	if details != nil {
		env.SetHeartbeatDetails(*details)
	}
	v, err := env.ExecuteActivity(a.Watch, in)
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	var r WatchResult
	if err := v.Get(&r); err != nil {
		t.Fatal(err)
	}
	if r.StartedAt == 0 || r.EndedAt < r.StartedAt || r.Attempts < 1 {
		t.Errorf("startedAt %d endedAt %d attempts %d: always filled", r.StartedAt, r.EndedAt, r.Attempts)
	}
	return r
}

// overWindow is what a crashed first attempt left in its last heartbeat that
// reached the server: it began long ago and sampled for `seen` before it
// died, so by the window's clock the window is over.
func overWindow(conclusive int, seen time.Duration) *WatchProgress {
	started := time.Now().Add(-10 * time.Second).UnixMilli()
	return &WatchProgress{
		StartedAt: started,
		LastAt:    started + seen.Milliseconds(),
		PeriodAt:  started,
		Period:    analysis.Evidence{Conclusive: conclusive},
		Result:    WatchResult{Samples: conclusive, Conclusive: conclusive, StartedAt: started, Attempts: 1},
	}
}

// The bug of issue 10: the retry found the window over and passed at once.
// Now it looks back over the time nobody watched, and then watches for the
// rest of the window's observed time: a bad canary fails either way. (The
// old watch returned {Failed: false, Samples: 2} here.)
func TestRetryAfterWindowOverFailsBadCanary(t *testing.T) {
	f := &fakeSignals{answer: errorRate(bad)}
	in := watchInput(300 * time.Millisecond)
	in.FailureLimit = 1
	r := runWatch(t, f, in, overWindow(2, 100*time.Millisecond))
	if !r.Failed || r.Insufficient || !strings.Contains(r.Reason, "looking back over 9.9s unobserved") || f.count() != 1 {
		t.Fatalf("retried watch of a bad canary: %+v after %d samples; want failed on the look-back over the gap", r, f.count())
	}
	// Without the look-back (a canary that only fails now), it fails on
	// the samples after the resume.
	f = &fakeSignals{answer: errorRate(bad), lookBack: func(Query) (Sample, error) { return Sample{Value: good, At: nowMs()}, nil }}
	r = runWatch(t, f, in, overWindow(2, 100*time.Millisecond))
	if !r.Failed || r.Insufficient || r.Failures != 2 || f.count() != 3 {
		t.Fatalf("retried watch of a bad canary: %+v after %d samples; want failed on values after 2 new samples", r, f.count())
	}
	if len(r.Gaps) != 1 || r.UnobservedMs < 9000 || r.Gaps[0].Attempt < 2 || r.Attempts < 2 {
		t.Fatalf("gaps %+v unobserved %d attempts %d: the crash must show as unobserved time", r.Gaps, r.UnobservedMs, r.Attempts)
	}
}

// With nothing seen before the crash and a canary that gives no data, the
// retry never passes. (The old watch passed it with 0 samples.)
func TestRetryWithNoEvidenceNeverPasses(t *testing.T) {
	f := &fakeSignals{answer: noData}
	r := runWatch(t, f, watchInput(200*time.Millisecond), overWindow(0, 0))
	if !r.Failed || !r.Insufficient || r.Conclusive != 0 {
		t.Fatalf("%+v: want failed for insufficient evidence", r)
	}
	if !strings.HasPrefix(r.Reason, "insufficient evidence: 0 conclusive samples of 4 needed") || !strings.Contains(r.Reason, "ms unobserved") {
		t.Fatalf("reason %q", r.Reason)
	}
	if f.count() == 0 {
		t.Fatal("the retry took no sample: it must watch the remaining observed time")
	}
}

// A good canary's retry passes, but only after watching what the crashed
// attempt did not: the window is extended by the gap.
func TestGapExtendsWindow(t *testing.T) {
	f := &fakeSignals{answer: errorRate(good)}
	in := watchInput(400 * time.Millisecond)
	now := time.Now()
	p := &WatchProgress{
		StartedAt: now.Add(-300 * time.Millisecond).UnixMilli(),
		LastAt:    now.Add(-200 * time.Millisecond).UnixMilli(), // watched 100ms, then the worker died
		PeriodAt:  now.Add(-300 * time.Millisecond).UnixMilli(),
		Period:    analysis.Evidence{Conclusive: 4},
		Result:    WatchResult{Samples: 4, Conclusive: 4, Attempts: 1},
	}
	r := runWatch(t, f, in, p)
	ran := time.Since(now)
	if r.Failed {
		t.Fatalf("good canary failed: %+v", r)
	}
	// 400ms window, 100ms seen: 300ms remain. The old watch stopped at
	// the window's original end, 100ms from now.
	if ran < 275*time.Millisecond {
		t.Fatalf("the retry watched %s; the window must be extended by the unobserved time", ran)
	}
	if len(r.Gaps) != 1 || r.Gaps[0].From != p.LastAt || r.Gaps[0].To < now.UnixMilli() || r.UnobservedMs < 200 {
		t.Fatalf("gaps %+v unobserved %d", r.Gaps, r.UnobservedMs)
	}
	// One of the new samples is the look-back over the gap: it is never
	// counted as evidence.
	if r.Samples != 4+f.count()-1 || r.Conclusive != r.Samples || r.StartedAt != p.StartedAt {
		t.Fatalf("%+v after %d new samples: counts carry on from the heartbeat", r, f.count())
	}
}

// Issue 13's outside test: the worker watching the bake was killed, the
// canary served 30% errors for 7 s, was good again, and a new worker
// resumed: the watch saw only the good part and promoted it ("unobserved
// 15.5s, not counted"). Now the resumed watch looks back over the gap with
// one sample whose windows cover it, and a failure there counts for every
// interval it spans. A good look-back is not evidence: a silent canary
// after it still fails for lack of it.
func TestLookBackOverGap(t *testing.T) {
	in := watchInput(200 * time.Millisecond)
	in.FailureLimit = 1
	var looked Query
	f := &fakeSignals{answer: errorRate(good), lookBack: func(q Query) (Sample, error) { looked = q; return Sample{Value: bad, At: nowMs()}, nil }}
	r := runWatch(t, f, in, overWindow(2, 100*time.Millisecond))
	if !r.Failed || r.Insufficient || !strings.Contains(r.Reason, "looking back over 9.9s unobserved: errors: error_rate 0.3 above max 0.1") {
		t.Fatalf("canary bad while unwatched, good after: %+v; want failed on the look-back", r)
	}
	if looked.Window < 9900*time.Millisecond {
		t.Fatalf("the look-back's window %s does not cover the 9.9s gap", looked.Window)
	}

	f = &fakeSignals{answer: noData, lookBack: func(Query) (Sample, error) { return Sample{Value: good, At: nowMs()}, nil }}
	r = runWatch(t, f, in, overWindow(0, 0))
	if !r.Failed || !r.Insufficient || r.Conclusive != 0 {
		t.Fatalf("a good look-back then no data: %+v; want insufficient evidence (the gap is not evidence)", r)
	}
}

// A fresh window of a silent canary fails for lack of evidence; so does one
// whose provider keeps erroring below the consecutive-error limit.
func TestNoEvidenceFails(t *testing.T) {
	for name, answer := range map[string]func(context.Context, int) (Sample, error){
		"no data": noData,
		"errors":  func(context.Context, int) (Sample, error) { return Sample{}, errors.New("connection refused") },
	} {
		t.Run(name, func(t *testing.T) {
			in := watchInput(150 * time.Millisecond)
			in.ConsecutiveErrorLimit = 100
			r := runWatch(t, &fakeSignals{answer: answer}, in, nil)
			if !r.Failed || !r.Insufficient || r.Samples == 0 || r.Inconclusive != r.Samples {
				t.Fatalf("%+v", r)
			}
			if name == "errors" && r.Errors != r.Samples {
				t.Fatalf("errors %d of %d samples", r.Errors, r.Samples)
			}
		})
	}
}

func TestEnoughEvidencePasses(t *testing.T) {
	// Every other sample has no data: half the samples conclusive is
	// exactly the default minimum.
	f := &fakeSignals{answer: func(ctx context.Context, n int) (Sample, error) {
		if n%2 == 1 {
			return noData(ctx, n)
		}
		return Sample{Value: good, At: nowMs()}, nil
	}}
	in := watchInput(200 * time.Millisecond)
	in.MinConclusive = 2
	r := runWatch(t, f, in, nil)
	if r.Failed || r.Conclusive < 2 || r.Inconclusive == 0 || r.Attempts != 1 || r.UnobservedMs != 0 {
		t.Fatalf("%+v", r)
	}
}

func TestPermanentErrorFailsAtOnce(t *testing.T) {
	for name, err := range map[string]error{
		"permanent":     Permanent(errors.New(`prometheus: expr "sum(rate(x[5s]": bad_data: parse error`)),
		"non-retryable": temporal.NewNonRetryableApplicationError("access denied", "AccessDenied", nil),
	} {
		t.Run(name, func(t *testing.T) {
			f := &fakeSignals{answer: func(context.Context, int) (Sample, error) { return Sample{}, err }}
			r := runWatch(t, f, watchInput(time.Minute), nil)
			if !r.Failed || r.Insufficient || f.count() != 1 || r.Errors != 1 {
				t.Fatalf("%+v after %d samples: want failed on the first", r, f.count())
			}
			want := "parse error"
			if name == "non-retryable" {
				want = "access denied"
			}
			if !strings.Contains(r.Reason, want) {
				t.Fatalf("reason %q does not carry the provider's message", r.Reason)
			}
		})
	}
}

func TestConsecutiveErrorsFail(t *testing.T) {
	f := &fakeSignals{answer: func(context.Context, int) (Sample, error) {
		return Sample{}, errors.New("prometheus: 503 service unavailable")
	}}
	in := watchInput(time.Minute)
	in.ConsecutiveErrorLimit = 2
	r := runWatch(t, f, in, nil)
	if !r.Failed || r.Insufficient || r.Errors != 3 || f.count() != 3 {
		t.Fatalf("%+v: want failed on the third error in a row", r)
	}
	if !strings.Contains(r.Reason, "3 times in a row") || !strings.Contains(r.Reason, "503") {
		t.Fatalf("reason %q", r.Reason)
	}

	// Errors that a good sample interrupts are not in a row.
	f = &fakeSignals{answer: func(ctx context.Context, n int) (Sample, error) {
		if n%3 == 2 {
			return Sample{Value: good, At: nowMs()}, nil
		}
		return Sample{}, errors.New("timeout")
	}}
	in = watchInput(300 * time.Millisecond)
	in.ConsecutiveErrorLimit, in.MinConclusive = 2, 2
	if r := runWatch(t, f, in, nil); r.Failed || r.Errors == 0 {
		t.Fatalf("interrupted errors: %+v", r)
	}
}

// A provider that hangs (and ignores its context) costs one sample timeout,
// counted as an error, not the watch.
func TestSlowSampleIsBounded(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	f := &fakeSignals{answer: func(context.Context, int) (Sample, error) {
		<-release
		return Sample{Value: good}, nil
	}}
	in := watchInput(time.Minute)
	in.SampleTimeout = 50 * time.Millisecond
	in.ConsecutiveErrorLimit = 1
	start := time.Now()
	r := runWatch(t, f, in, nil)
	if !r.Failed || r.Errors != 2 || !strings.Contains(r.Reason, "timed out after 50ms") {
		t.Fatalf("%+v", r)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("two hung samples took %s", took)
	}
}

// A held canary is judged period by period: the first period has the
// evidence and passes, the second has too little and fails the watch.
// (The old forever-watch never judged evidence and ran until cancelled.)
func TestForeverFailsOnThinPeriod(t *testing.T) {
	f := &fakeSignals{answer: func(ctx context.Context, n int) (Sample, error) {
		if n < 10 {
			return Sample{Value: good, At: nowMs()}, nil
		}
		return noData(ctx, n)
	}}
	in := watchInput(200 * time.Millisecond)
	in.Forever = true
	r := runWatch(t, f, in, nil)
	if !r.Failed || !r.Insufficient || r.Conclusive != 10 || r.Samples <= 10 {
		t.Fatalf("%+v: want the first period passed and the second failed", r)
	}
	if !strings.Contains(r.Reason, "of 4 needed") {
		t.Fatalf("reason %q: a period of 8 samples needs 4", r.Reason)
	}
}

// Every sample is in the heartbeat before the watch acts on it, and the
// final result is in the last heartbeat; a cancelled watch returns what it
// saw with the error.
func TestHeartbeatBeforeActingAndCancel(t *testing.T) {
	var (
		mu    sync.Mutex
		beats []WatchProgress
	)
	newWatcher := func(in WatchInput, answer func(context.Context, int) (Sample, error)) *watcher {
		f := &fakeSignals{answer: answer}
		return &watcher{
			in:      in,
			sample:  func(ctx context.Context) (analysis.Verdict, error) { return judge(ctx, f, in, in.Metrics) },
			beat:    func(p WatchProgress) { mu.Lock(); beats = append(beats, p); mu.Unlock() },
			log:     log.NewStructuredLogger(nil),
			attempt: 1,
		}
	}

	in := watchInput(time.Minute)
	r, err := newWatcher(in, func(ctx context.Context, n int) (Sample, error) {
		if n == 2 {
			return Sample{Value: bad, At: nowMs()}, nil
		}
		return Sample{Value: good, At: nowMs()}, nil
	}).run(context.Background(), nil)
	if err != nil || !r.Failed || r.Samples != 3 {
		t.Fatalf("%+v, %v", r, err)
	}
	before := beats[len(beats)-2]
	if before.Result.Samples != 3 || before.Result.Failures != 1 || before.Result.Failed {
		t.Fatalf("heartbeat before acting: %+v", before.Result)
	}
	if last := beats[len(beats)-1]; !last.Result.Failed || last.Result.EndedAt != r.EndedAt {
		t.Fatalf("last heartbeat %+v, result %+v", last.Result, r)
	}

	// The workflow cancels a hold: the result so far travels as the
	// cancellation's details, and the error is benign and final.
	beats = nil
	in.Forever = true
	ctx, cancel := context.WithCancelCause(context.Background())
	time.AfterFunc(150*time.Millisecond, func() { cancel(temporal.NewCanceledError()) })
	r, err = newWatcher(in, errorRate(good)).run(ctx, nil)
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || ae.Type() != "Stopped" || !ae.NonRetryable() {
		t.Fatalf("cancelled watch: err %v", err)
	}
	if r.Failed || r.Samples == 0 || r.Conclusive != r.Samples || r.EndedAt == 0 || r.Attempts != 1 {
		t.Fatalf("cancelled watch: %+v", r)
	}
	var ce *temporal.CanceledError
	var details WatchResult
	if !errors.As(err, &ce) || ce.Details(&details) != nil || details.Samples != r.Samples {
		t.Fatalf("cancellation details %+v (err %v), want the result %+v", details, err, r)
	}
	if last := beats[len(beats)-1]; last.Result.Samples != r.Samples {
		t.Fatalf("last heartbeat %+v, result %+v", last.Result, r)
	}

	// The worker shutting down is not the workflow's doing: retryable, so
	// another worker resumes the window.
	ctx, cancel = context.WithCancelCause(context.Background())
	time.AfterFunc(100*time.Millisecond, func() { cancel(errors.New("worker is now shutdown")) })
	_, err = newWatcher(in, errorRate(good)).run(ctx, nil)
	if !errors.As(err, &ae) || ae.Type() != "Interrupted" || ae.NonRetryable() {
		t.Fatalf("worker shutdown: err %v, want a retryable error", err)
	}
}

// At 100% only metrics with a max can be judged; a spec whose metrics all
// compare with stable has nothing to measure, and nothing is not a pass.
func TestNothingToMeasureIsNotEvidence(t *testing.T) {
	ratio := 2.0
	in := watchInput(100 * time.Millisecond)
	in.Metrics = []analysis.Metric{{Name: "vs-stable", Metric: MetricErrorRate, MaxVsBaseline: &ratio}}
	in.Baseline = false
	r := runWatch(t, &fakeSignals{answer: errorRate(good)}, in, nil)
	if !r.Failed || !r.Insufficient || r.Conclusive != 0 {
		t.Fatalf("%+v", r)
	}
}

func TestWatchHeartbeatTimeout(t *testing.T) {
	for _, tc := range []struct{ interval, sample, want time.Duration }{
		{time.Second, 0, 8 * time.Second},                 // 1s + 5s default + 2s
		{10 * time.Second, 0, 22 * time.Second},           // the sample timeout follows the interval
		{time.Minute, 0, time.Minute + 32*time.Second},    // capped at 30s
		{time.Second, 20 * time.Second, 23 * time.Second}, // a given sample timeout
		{0, 0, 12 * time.Second},                          // default interval 5s
	} {
		got := WatchHeartbeatTimeout(tc.interval, tc.sample)
		if got != tc.want {
			t.Errorf("WatchHeartbeatTimeout(%s, %s) = %s, want %s", tc.interval, tc.sample, got, tc.want)
		}
		if st := watchSampleTimeout(tc.interval, tc.sample); got <= watchInterval(tc.interval)+st {
			t.Errorf("heartbeat timeout %s not longer than an interval plus a sample (%s)", got, st)
		}
	}
}
