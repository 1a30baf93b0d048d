package analysis

import (
	"fmt"
	"time"
)

// DefaultConsecutiveErrorLimit is how many provider errors in a row a watch
// tolerates before it fails (Argo Rollouts' default, so that people who know
// it are not surprised).
const DefaultConsecutiveErrorLimit = 4

// Evidence is what a watch window saw. Only conclusive samples (a pass or a
// fail verdict) are evidence; inconclusive ones (no data, too few requests,
// provider errors) and time nobody watched are not.
type Evidence struct {
	Conclusive   int   `json:"conclusive"`
	Inconclusive int   `json:"inconclusive"` // provider errors included
	Errors       int   `json:"errors"`
	UnobservedMs int64 `json:"unobservedMs"`
}

// MinConclusive is how many conclusive samples a window of the given length
// needs: want when it is positive, otherwise half the samples the window
// holds at this interval, rounded up, and never fewer than one. A window of
// zero samples therefore never passes.
func MinConclusive(window, interval time.Duration, want int) int {
	if want > 0 {
		return want
	}
	if interval <= 0 || window <= 0 {
		return 1
	}
	// ceil(window / interval / 2) in integers.
	n := int((window + 2*interval - 1) / (2 * interval))
	return max(n, 1)
}

// Shortfall returns why e is not enough to pass a window that needs need
// conclusive samples, or "" when it is enough.
func (e Evidence) Shortfall(need int) string {
	need = max(need, 1)
	if e.Conclusive >= need {
		return ""
	}
	return fmt.Sprintf("insufficient evidence: %d conclusive samples of %d needed (%d inconclusive, %d errors, %d ms unobserved)",
		e.Conclusive, need, e.Inconclusive, e.Errors, e.UnobservedMs)
}

// TooManyErrors reports whether consecutive provider errors exceed limit
// (DefaultConsecutiveErrorLimit when limit is 0 or less).
func TooManyErrors(consecutive, limit int) bool {
	if limit <= 0 {
		limit = DefaultConsecutiveErrorLimit
	}
	return consecutive > limit
}
