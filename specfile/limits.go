package specfile

import (
	"fmt"
	"time"
)

// Limits every spec kind applies, with the reasons. Messages give the
// allowed range; the reference documents these constants.
const (
	// MaxWindow: a look-back over a day is a typo, not an SLI.
	MaxWindow = 24 * time.Hour
	// MinWindow: one second of requests is the least that says anything.
	MinWindow = time.Second
	// MinAnalysisInterval and MinDrillInterval: sampling faster than every
	// 100ms measures the sampler, not the service. Both allow sub-second
	// polls because time-to-rollback and time-to-detect are measured below
	// a second (the benchmark samples every 250ms).
	MinAnalysisInterval = 100 * time.Millisecond
	MinDrillInterval    = 100 * time.Millisecond
	// MaxInterval: sampling less often than hourly watches nothing.
	MaxInterval = time.Hour
	// MaxDuration bounds pauses, bakes, timeouts, holds and targets: a
	// deploy or drill step that waits over a week is a typo (99999h).
	MaxDuration = 7 * 24 * time.Hour
	// MaxCount bounds counts such as failureLimit and artifacts.keep.
	MaxCount = 1000
)

// Range checks that d lies in lo..hi and reports it on path with the
// allowed range. Zero is "not set" and passes when zeroOK.
func (c *Checker) Range(path string, d time.Duration, lo, hi time.Duration, zeroOK bool) {
	if d == 0 && zeroOK {
		return
	}
	switch {
	case d < 0 && lo >= 0:
		c.Fail(path, "%s is negative (allowed: %s..%s)", fmtDur(d), fmtDur(lo), fmtDur(hi))
	case d < lo || d > hi:
		c.Fail(path, "%s is out of range (allowed: %s..%s)", fmtDur(d), fmtDur(lo), fmtDur(hi))
	}
}

// Count checks that n lies in lo..hi.
func (c *Checker) Count(path string, n, lo, hi int) {
	if n < lo || n > hi {
		c.Fail(path, "%d is out of range (allowed: %d..%d)", n, lo, hi)
	}
}

// fmtDur writes durations as specs take them, with whole days said in
// words: 168h (7 days) rather than 168h0m0s.
func fmtDur(d time.Duration) string {
	switch {
	case d == 24*time.Hour:
		return "24h (1 day)"
	case d != 0 && d%(24*time.Hour) == 0:
		return fmt.Sprintf("%s (%d days)", shortDur(d), d/(24*time.Hour))
	}
	return shortDur(d)
}

func shortDur(d time.Duration) string {
	s := d.String()
	for _, suf := range []string{"m0s", "h0m"} {
		if len(s) > len(suf) && s[len(s)-len(suf):] == suf {
			s = s[:len(s)-len(suf)+1]
		}
	}
	return s
}

// WrittenZero reports a duration written as 0 where 0 would be replaced by
// a default: call it before defaults are applied, so that "interval: 0s"
// is refused rather than silently becoming 5s.
func (c *Checker) WrittenZero(path string, d time.Duration, lo, hi time.Duration) {
	if d == 0 && c.Root != nil && c.Has(path) {
		c.Fail(path, "0s is out of range (allowed: %s..%s)", fmtDur(lo), fmtDur(hi))
	}
}

// Failed reports whether a problem was recorded at path, so that a check
// depending on it does not pile a second message on the first.
func (c *Checker) Failed(path string) bool {
	for _, e := range c.Errs {
		if e.Field == path {
			return true
		}
	}
	return false
}
