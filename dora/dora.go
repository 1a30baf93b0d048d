// Package dora computes the DORA delivery figures from finished deploys.
package dora

import (
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/drillship/drillship/workflows"
)

// Stats are the four DORA figures over a window.
type Stats struct {
	Window       string  `json:"window"`
	Deploys      int     `json:"deploys"`
	Promoted     int     `json:"promoted"`
	Failed       int     `json:"failed"` // rolled back or aborted
	PerDay       float64 `json:"deploymentsPerDay"`
	ChangeFail   float64 `json:"changeFailureRate"`
	RestoreP50Ms *int64  `json:"timeToRestoreMedianMs,omitempty"`
	LeadP50Ms    *int64  `json:"leadTimeMedianMs,omitempty"`
}

// Compute figures from results over window. Deployment frequency counts
// promotions; a change failure is a deploy that rolled back or was aborted;
// time to restore is the measured time-to-rollback; lead time is from the
// commit to promotion, where a commit time was given.
func Compute(results []workflows.DeployResult, window time.Duration) Stats {
	s := Stats{Window: window.String(), Deploys: len(results)}
	var restore, lead []int64
	for _, r := range results {
		switch r.Outcome {
		case workflows.OutcomePromoted:
			s.Promoted++
			if r.LeadTimeMs != nil {
				lead = append(lead, *r.LeadTimeMs)
			}
		case workflows.OutcomeRolledBack, workflows.OutcomeAborted:
			s.Failed++
			if r.TimeToRollbackMs != nil {
				restore = append(restore, *r.TimeToRollbackMs)
			}
		}
	}
	if days := window.Hours() / 24; days > 0 {
		s.PerDay = float64(s.Promoted) / days
	}
	if n := s.Promoted + s.Failed; n > 0 {
		s.ChangeFail = float64(s.Failed) / float64(n)
	}
	s.RestoreP50Ms = median(restore)
	s.LeadP50Ms = median(lead)
	return s
}

func median(v []int64) *int64 {
	if len(v) == 0 {
		return nil
	}
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	m := v[len(v)/2]
	if len(v)%2 == 0 {
		m = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return &m
}

// Print writes the figures for people.
func (s Stats) Print(w io.Writer) {
	fmt.Fprintf(w, "DORA figures over %s (%d deploys)\n", s.Window, s.Deploys)
	fmt.Fprintf(w, "  deployment frequency  %.2f per day (%d promoted)\n", s.PerDay, s.Promoted)
	fmt.Fprintf(w, "  change failure rate   %.1f%% (%d rolled back or aborted)\n", 100*s.ChangeFail, s.Failed)
	fmt.Fprintf(w, "  time to restore       %s\n", msOrNone(s.RestoreP50Ms))
	fmt.Fprintf(w, "  lead time for changes %s\n", msOrNone(s.LeadP50Ms))
}

func msOrNone(v *int64) string {
	if v == nil {
		return "n/a"
	}
	return (time.Duration(*v) * time.Millisecond).String() + " (median)"
}
