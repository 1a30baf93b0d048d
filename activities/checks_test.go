package activities

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"
)

// querySignals answers each query by its metric and scope: the provider is
// the checks' boundary, so a test decides what the world shows.
type querySignals func(q Query) (Sample, error)

func (f querySignals) Sample(ctx context.Context, q Query) (Sample, error) { return f(q) }

func checkEnv(t *testing.T, f querySignals, details any) (*testsuite.TestActivityEnvironment, *Activities) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.SetTestTimeout(20 * time.Second)
	a := New(NewRegistry(Provider{Name: "fake", Signals: func(map[string]any) (Signals, error) { return f, nil }}), nil)
	env.RegisterActivity(a)
	if details != nil {
		env.SetHeartbeatDetails(details)
	}
	return env, a
}

func ptrF(v float64) *float64 { return &v }

func errorsCheck(name, region string) Check {
	return Check{Name: name, Query: Query{Metric: MetricErrorRate, Scope: map[string]string{"region": region}, Window: 2 * time.Second}, Max: ptrF(0.02)}
}

func runWait(t *testing.T, f querySignals, in WaitInput, details any) WaitResult {
	t.Helper()
	env, a := checkEnv(t, f, details)
	v, err := env.ExecuteActivity(a.WaitFor, in)
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	var r WaitResult
	if err := v.Get(&r); err != nil {
		t.Fatal(err)
	}
	return r
}

// Issue 11 item 8: a window with no requests said the steady state held (a
// drained region has no errors). Now it is inconclusive, never passing.
func TestNoDataOnMaxCheckIsInconclusive(t *testing.T) {
	r := errorsCheck("east-errors", "east").Eval(Sample{NoData: true, At: 1})
	if r.OK || !r.Inconclusive || r.Failed() {
		t.Fatalf("%+v: want inconclusive, neither passing nor failing", r)
	}
	probe := Check{Name: "east-up", Query: Query{Metric: MetricUp}, Min: ptrF(1)}.Eval(Sample{NoData: true, At: 1})
	if !probe.Failed() {
		t.Fatalf("%+v: a probe with no answer is down", probe)
	}
}

// A steady-state wait on a drained region never passes (the old wait passed
// at its first sample).
func TestWaitAllPassNotMetOnEmptyWindow(t *testing.T) {
	empty := querySignals(func(q Query) (Sample, error) { return Sample{NoData: true, At: nowMs()}, nil })
	r := runWait(t, empty, WaitInput{ChecksInput: ChecksInput{Signals: Target{Provider: "fake"}, Checks: []Check{errorsCheck("east-errors", "east")}},
		Until: UntilAllPass, Interval: 20 * time.Millisecond, Timeout: 300 * time.Millisecond}, nil)
	if r.Met || !r.TimedOut || !strings.Contains(r.Detail, "INCONCLUSIVE") {
		t.Fatalf("%+v: want timed out on inconclusive data", r)
	}
}

// minRequests: 0.4 requests in the window are too few to judge.
func TestMinRequestsMakesThinWindowInconclusive(t *testing.T) {
	thin := querySignals(func(q Query) (Sample, error) {
		if q.Metric == MetricRequests {
			return Sample{Value: 0.2, At: nowMs()}, nil // per second, over 2s
		}
		return Sample{Value: 0, At: nowMs()}, nil
	})
	env, a := checkEnv(t, thin, nil)
	c := errorsCheck("errors", "east")
	c.MinRequests = 5
	v, err := env.ExecuteActivity(a.Evaluate, ChecksInput{Signals: Target{Provider: "fake"}, Checks: []Check{c}})
	if err != nil {
		t.Fatal(err)
	}
	var rs []CheckResult
	if err := v.Get(&rs); err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || rs[0].OK || !rs[0].Inconclusive || !strings.Contains(rs[0].Detail, "minRequests 5") {
		t.Fatalf("%+v: want inconclusive for too few requests", rs)
	}
}

// Issue 11 item 8: one failing read blinded every check (the first error
// returned). Now the east probe still fires while the west read fails.
func TestOneFailingReadDoesNotBlindOthers(t *testing.T) {
	f := querySignals(func(q Query) (Sample, error) {
		if q.Scope["region"] == "west" {
			return Sample{}, errors.New("503 from the metrics backend")
		}
		return Sample{Value: 0, At: nowMs()}, nil // east probe: down
	})
	r := runWait(t, f, WaitInput{ChecksInput: ChecksInput{Signals: Target{Provider: "fake"}, Checks: []Check{
		{Name: "west-errors", Query: Query{Metric: MetricErrorRate, Scope: map[string]string{"region": "west"}}, Max: ptrF(0.05)},
		{Name: "east-up", Query: Query{Metric: MetricUp, Scope: map[string]string{"region": "east"}}, Min: ptrF(1)},
	}}, Until: UntilAnyFails, Interval: 20 * time.Millisecond, Timeout: 2 * time.Second}, nil)
	if !r.Met || len(r.Results) != 2 || !r.Results[1].Failed() || !r.Results[0].Inconclusive {
		t.Fatalf("%+v: want the east probe to fire despite the west read failing", r)
	}
}

// A retried wait (its heartbeat says the last sample was 11 s ago) records
// the unobserved time as a gap, and a HoldFor streak that began before the
// gap does not count: holding was not seen during it. The old wait returned
// Met at once with the old streak's start.
func TestWaitResumeRecordsGapAndRestartsHold(t *testing.T) {
	ok := querySignals(func(q Query) (Sample, error) { return Sample{Value: 0.001, At: nowMs()}, nil })
	now := nowMs()
	details := waitProgress{StartedAt: now - 20_000, StreakAt: now - 15_000, Samples: 20, LastAt: now - 11_000}
	r := runWait(t, ok, WaitInput{ChecksInput: ChecksInput{Signals: Target{Provider: "fake"}, Checks: []Check{errorsCheck("errors", "all")}},
		Until: UntilAllPass, Interval: 20 * time.Millisecond, HoldFor: 200 * time.Millisecond, Timeout: time.Minute}, details)
	if !r.Met || r.At < now {
		t.Fatalf("%+v: want met on a streak observed after the resume (at >= %d)", r, now)
	}
	if len(r.Gaps) != 1 || r.Gaps[0].From != now-11_000+20 || r.Gaps[0].To < now || r.UnobservedMs < 10_900 {
		t.Fatalf("gaps %+v unobserved %d: want one gap from the due sample to the resume", r.Gaps, r.UnobservedMs)
	}
}

// Issue 11 item 8: the guard's `for` state was not heartbeated, so a
// retried guard restarted every window. A check failing since 5 s ago with
// for: 5s trips on the resumed attempt's first sample.
func TestGuardKeepsForStateAcrossRetry(t *testing.T) {
	bad := querySignals(func(q Query) (Sample, error) { return Sample{Value: 0.95, At: nowMs()}, nil })
	now := nowMs()
	details := guardProgress{Since: map[string]int64{"outage": now - 5_000}, Samples: 10, LastAt: now - 10}
	env, a := checkEnv(t, bad, details)
	start := time.Now()
	v, err := env.ExecuteActivity(a.Guard, WaitInput{ChecksInput: ChecksInput{Signals: Target{Provider: "fake"}, Checks: []Check{
		{Name: "outage", Query: Query{Metric: MetricErrorRate}, Max: ptrF(0.9), For: 5 * time.Second},
	}}, Interval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var r GuardResult
	if err := v.Get(&r); err != nil {
		t.Fatal(err)
	}
	if !r.Tripped || r.Name != "outage" || time.Since(start) > 2*time.Second {
		t.Fatalf("%+v after %s: want an immediate trip from the heartbeated failing time", r, time.Since(start))
	}
	if len(r.Gaps) != 0 {
		t.Fatalf("gaps %+v: the last sample was one interval ago, nothing was missed", r.Gaps)
	}
}

// An inconclusive guardrail reading neither trips nor clears the failing
// time.
func TestGuardIgnoresInconclusive(t *testing.T) {
	n := 0
	f := querySignals(func(q Query) (Sample, error) {
		n++
		if n%2 == 0 {
			return Sample{NoData: true, At: nowMs()}, nil
		}
		return Sample{Value: 0.95, At: nowMs()}, nil
	})
	env, a := checkEnv(t, f, nil)
	v, err := env.ExecuteActivity(a.Guard, WaitInput{ChecksInput: ChecksInput{Signals: Target{Provider: "fake"}, Checks: []Check{
		{Name: "outage", Query: Query{Metric: MetricErrorRate}, Max: ptrF(0.9), For: 200 * time.Millisecond},
	}}, Interval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var r GuardResult
	if err := v.Get(&r); err != nil || !r.Tripped {
		t.Fatalf("%+v %v: failing readings between inconclusive ones still trip", r, err)
	}
}
