package analysis

import (
	"strings"
	"testing"
	"time"
)

func TestMinConclusive(t *testing.T) {
	for _, tc := range []struct {
		window, interval time.Duration
		want, got        int
	}{
		{time.Minute, 5 * time.Second, 0, 6},       // 12 samples fit: half
		{50 * time.Second, 10 * time.Second, 0, 3}, // 5 fit: rounded up
		{3 * time.Second, 5 * time.Second, 0, 1},   // shorter than one interval: still one
		{0, 5 * time.Second, 0, 1},
		{time.Minute, 0, 0, 1},
		{time.Minute, 5 * time.Second, 2, 2}, // an explicit minimum wins
	} {
		if got := MinConclusive(tc.window, tc.interval, tc.want); got != tc.got {
			t.Errorf("MinConclusive(%s, %s, %d) = %d, want %d", tc.window, tc.interval, tc.want, got, tc.got)
		}
	}
}

func TestShortfall(t *testing.T) {
	for _, tc := range []struct {
		e    Evidence
		need int
		want string // "" passes
	}{
		{Evidence{Conclusive: 6}, 6, ""},
		{Evidence{Conclusive: 7, Inconclusive: 5}, 6, ""},
		{Evidence{}, 0, "insufficient evidence: 0 conclusive samples of 1 needed (0 inconclusive, 0 errors, 0 ms unobserved)"},
		{Evidence{Conclusive: 2, Inconclusive: 4, Errors: 3, UnobservedMs: 12000}, 6,
			"insufficient evidence: 2 conclusive samples of 6 needed (4 inconclusive, 3 errors, 12000 ms unobserved)"},
	} {
		got := tc.e.Shortfall(tc.need)
		if got != tc.want {
			t.Errorf("%+v need %d: %q, want %q", tc.e, tc.need, got, tc.want)
		}
		if got != "" && !strings.HasPrefix(got, "insufficient evidence") {
			t.Errorf("reason %q", got)
		}
	}
}

func TestTooManyErrors(t *testing.T) {
	for _, tc := range []struct {
		n, limit int
		want     bool
	}{{4, 0, false}, {5, 0, true}, {1, 1, false}, {2, 1, true}, {0, 0, false}} {
		if got := TooManyErrors(tc.n, tc.limit); got != tc.want {
			t.Errorf("TooManyErrors(%d, %d) = %v", tc.n, tc.limit, got)
		}
	}
}
