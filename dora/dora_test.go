package dora

import (
	"strings"
	"testing"
	"time"

	"github.com/drillship/drillship/audit"
	"github.com/drillship/drillship/workflows"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// at is t0 plus h hours, in Unix ms.
func at(h float64) int64 { return t0.Add(time.Duration(h * float64(time.Hour))).UnixMilli() }

func ms(v int64) *int64 { return &v }

// promoted is a deploy of version (previous prev) that reached stable.
func promoted(version, prev string, start float64) workflows.DeployResult {
	return workflows.DeployResult{Service: "web", Environment: "prod", Version: version, Previous: prev,
		Outcome: workflows.OutcomePromoted, StartedAt: at(start), FirstTrafficAt: at(start) + 1000, EndedAt: at(start + 0.5),
		Steps: []workflows.StepRecord{{Step: 1, Kind: workflows.WatchWindow, Weight: 10}, {Kind: workflows.WatchBake, Weight: 100}}}
}

// canaryRollback: the canary failed its analysis at 10%.
func canaryRollback(version string, start float64) workflows.DeployResult {
	return workflows.DeployResult{Service: "web", Environment: "prod", Version: version, Previous: "v1",
		Outcome: workflows.OutcomeRolledBack, StartedAt: at(start), FirstTrafficAt: at(start) + 1000, EndedAt: at(start + 0.1),
		FailedSampleAt: at(start) + 5000, RollbackAt: at(start) + 7000, TimeToRollbackMs: ms(2000),
		Steps: []workflows.StepRecord{{Step: 1, Kind: workflows.WatchWindow, Weight: 10, Verdict: workflows.VerdictFail}}}
}

// abortedBeforeTraffic: refused or aborted before the canary served.
func abortedBeforeTraffic(version string, start float64, outcome string) workflows.DeployResult {
	return workflows.DeployResult{Service: "web", Environment: "prod", Version: version, Previous: "v1",
		Outcome: outcome, StartedAt: at(start), EndedAt: at(start + 0.01)}
}

// bakeRollback: reached 100%, failed its bake.
func bakeRollback(version, prev string, start float64) workflows.DeployResult {
	r := canaryRollback(version, start)
	r.Previous = prev
	r.TimeToRollbackMs = ms(4000)
	r.Reason = "bake: error-rate 0.2 > 0.05"
	r.Steps = append(r.Steps, workflows.StepRecord{Kind: workflows.WatchBake, Weight: 100, Verdict: workflows.VerdictFail})
	return r
}

func hotfix(r workflows.DeployResult) workflows.DeployResult { r.Hotfix = true; return r }

func TestCompute(t *testing.T) {
	now := t0.Add(10 * 24 * time.Hour)
	cases := []struct {
		name       string
		results    []workflows.DeployResult
		marks      []Mark
		window     time.Duration
		production int
		caught     int
		before     int
		failures   map[string]string // deploy -> cause
		changeFail float64
		perDay     float64
		restore    *int64
		how        map[string]string // figure -> substring of its How
	}{{
		name:       "aborts before traffic and canary rollbacks are not change failures",
		results:    []workflows.DeployResult{promoted("v2", "v1", 0), canaryRollback("v3", 1), abortedBeforeTraffic("v4", 2, workflows.OutcomeAborted), abortedBeforeTraffic("v5", 3, workflows.OutcomeRefused)},
		window:     30 * 24 * time.Hour,
		production: 1, caught: 1, before: 2, failures: map[string]string{},
		changeFail: 0, perDay: 0.1,
		how: map[string]string{FigChangeFail: "0 of 1 deploys that reached production caused a failure (none); not counted: 1 caught as canaries before promotion, 2 ended before any traffic",
			FigFrequency: "1 promoted over 10.00 days"},
	}, {
		name:       "a bake failure after promotion is a change failure restored by its rollback",
		results:    []workflows.DeployResult{promoted("v2", "v1", 0), bakeRollback("v3", "v2", 24)},
		window:     30 * 24 * time.Hour,
		production: 2, failures: map[string]string{"deploy/web/v3": CauseRolledBack},
		changeFail: 0.5, perDay: 0.1, restore: ms(4000),
		how: map[string]string{FigRestoreTime: "median of 1 of 1 failures"},
	}, {
		name:       "a hotfix marks the version it fixed; time to restore up to the hotfix reaching stable",
		results:    []workflows.DeployResult{promoted("v2", "v1", 0), hotfix(promoted("v3", "v2", 2)), promoted("v4", "v3", 5)},
		window:     30 * 24 * time.Hour,
		production: 3, failures: map[string]string{"deploy/web/v2": CauseHotfixed},
		changeFail: 1.0 / 3, perDay: 0.3, restore: ms(2 * 3600 * 1000),
	}, {
		name:       "putting the previous version back is a revert of the one in between",
		results:    []workflows.DeployResult{promoted("v2", "v1", 0), promoted("v1", "v2", 1)},
		window:     30 * 24 * time.Hour,
		production: 2, failures: map[string]string{"deploy/web/v2": CauseReverted},
		changeFail: 0.5, perDay: 0.2, restore: ms(3600 * 1000),
	}, {
		name:    "a person's mark counts, with the failure time they give",
		results: []workflows.DeployResult{promoted("v2", "v1", 0), promoted("v3", "v2", 24)},
		marks: []Mark{{Deploy: "deploy/web/v2", Who: "ana", FailedAt: at(3), RestoredAt: at(3.25)},
			{Deploy: "deploy/web/v9", Who: "ana"}}, // not listed: ignored
		window:     30 * 24 * time.Hour,
		production: 2, failures: map[string]string{"deploy/web/v2": CauseMarked},
		changeFail: 0.5, perDay: 0.2, restore: ms(15 * 60 * 1000),
		how: map[string]string{FigChangeFail: "1 marked"},
	}, {
		name: "a hotfix of another service or environment fixes nothing here",
		results: []workflows.DeployResult{promoted("v2", "v1", 0), func() workflows.DeployResult {
			r := hotfix(promoted("v7", "v6", 1))
			r.Environment = "staging"
			return r
		}()},
		window:     30 * 24 * time.Hour,
		production: 2, failures: map[string]string{}, changeFail: 0, perDay: 0.2,
	}, {
		name: "a failed rollback of a serving canary is a failure in production",
		results: []workflows.DeployResult{func() workflows.DeployResult {
			r := canaryRollback("v3", 0)
			r.Outcome, r.TimeToRollbackMs = workflows.OutcomeRollbackFailed, nil
			return r
		}()},
		window:     30 * 24 * time.Hour,
		production: 1, failures: map[string]string{"deploy/web/v3": CauseRolledBack}, changeFail: 1, perDay: 0,
	}, {
		name:       "the span is the window when deploys are older than it",
		results:    []workflows.DeployResult{promoted("v2", "v1", 0), promoted("v3", "v2", 9*24)},
		window:     5 * 24 * time.Hour,
		production: 2, failures: map[string]string{}, perDay: 2.0 / 5,
		how: map[string]string{FigFrequency: "(the window)"},
	}, {
		name:       "a span under a day counts as one day",
		results:    []workflows.DeployResult{promoted("v2", "v1", 10*24-2)},
		window:     30 * 24 * time.Hour,
		production: 1, failures: map[string]string{}, perDay: 1,
		how: map[string]string{FigFrequency: "under a day"},
	}, {
		name:     "nothing listed",
		window:   30 * 24 * time.Hour,
		failures: map[string]string{}, perDay: 0,
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := Compute(c.results, Options{Window: c.window, Now: now, Marks: c.marks})
			if s.Production != c.production || s.CaughtBeforePromotion != c.caught || s.BeforeTraffic != c.before {
				t.Errorf("production %d caught %d before traffic %d, want %d %d %d", s.Production, s.CaughtBeforePromotion, s.BeforeTraffic, c.production, c.caught, c.before)
			}
			got := map[string]string{}
			for _, f := range s.Failures {
				got[f.Deploy] = f.Cause
			}
			if len(got) != len(c.failures) {
				t.Errorf("failures %v, want %v", got, c.failures)
			}
			for id, cause := range c.failures {
				if got[id] != cause {
					t.Errorf("failure %s: cause %q, want %q (all %v)", id, got[id], cause, got)
				}
			}
			if d := s.ChangeFail - c.changeFail; d > 1e-9 || d < -1e-9 {
				t.Errorf("change failure rate %v, want %v", s.ChangeFail, c.changeFail)
			}
			if d := s.PerDay - c.perDay; d > 1e-9 || d < -1e-9 {
				t.Errorf("per day %v, want %v (%s)", s.PerDay, c.perDay, s.How[FigFrequency])
			}
			switch {
			case c.restore == nil && s.RestoreP50Ms != nil:
				t.Errorf("time to restore %d, want none", *s.RestoreP50Ms)
			case c.restore != nil && (s.RestoreP50Ms == nil || *s.RestoreP50Ms != *c.restore):
				t.Errorf("time to restore %v, want %d", s.RestoreP50Ms, *c.restore)
			}
			for fig, want := range c.how {
				if !strings.Contains(s.How[fig], want) {
					t.Errorf("how %s = %q, want it to contain %q", fig, s.How[fig], want)
				}
			}
			for _, fig := range []string{FigFrequency, FigChangeFail, FigRestoreTime, FigLeadTime} {
				if s.How[fig] == "" {
					t.Errorf("no how for %s", fig)
				}
			}
		})
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []int64
		want *int64
	}{{nil, nil}, {[]int64{5}, ms(5)}, {[]int64{9, 1, 5}, ms(5)}, {[]int64{4, 1, 3, 2}, ms(2)}} {
		got := median(c.in)
		if (got == nil) != (c.want == nil) || (got != nil && *got != *c.want) {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestMarksFromAudit(t *testing.T) {
	path := t.TempDir() + "/audit.jsonl"
	if m, err := MarksFromAudit(path); err != nil || m != nil {
		t.Fatalf("no log: %v %v, want none", m, err)
	}
	want := Mark{Deploy: "deploy/web/v2", Who: "ana", Reason: "checkout broke", FailedAt: at(3), RestoredAt: at(4)}
	for _, r := range []audit.Record{{Key: "a", Action: "approve", Who: "bo", Workflow: "deploy/web/v3"}, MarkRecord(want, "web", "v2"), MarkRecord(want, "web", "v2")} {
		if _, err := audit.Append(path, r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := MarksFromAudit(path)
	if err != nil || len(got) != 1 || got[0] != want {
		t.Fatalf("marks %+v (%v), want just %+v (a repeated mark is one record)", got, err, want)
	}
	if rep, err := audit.Verify(path); err != nil || !rep.OK() {
		t.Fatalf("the log with marks does not verify: %+v %v", rep, err)
	}
	s := Compute([]workflows.DeployResult{promoted("v2", "v1", 0)}, Options{Now: t0.Add(48 * time.Hour), Marks: got})
	if len(s.Failures) != 1 || s.RestoreP50Ms == nil || *s.RestoreP50Ms != 3600*1000 {
		t.Fatalf("stats from the marks %+v, want v2 failed and restored in 1h", s)
	}
}
