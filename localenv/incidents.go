package localenv

import (
	"net/http"
	"sync"
	"time"
)

// Incident statuses.
const (
	IncidentOpen     = "open"
	IncidentResolved = "resolved"
)

// Incident is the local environment's stand-in for an incident tool's
// record: what the policy's `local` incident provider asks about before a
// break-glass is allowed.
type Incident struct {
	ID         string `json:"id"`
	Title      string `json:"title,omitempty"`
	Status     string `json:"status"`               // open | resolved
	OpenedAt   int64  `json:"openedAt"`             // Unix ms of the latest opening
	ResolvedAt int64  `json:"resolvedAt,omitempty"` // Unix ms; 0 while open
}

// IncidentRequest is the body of PUT /api/incidents/{id}.
type IncidentRequest struct {
	Status string `json:"status"`
	Title  string `json:"title,omitempty"`
}

// incidentBook holds the incidents in the order they were first opened.
// It has its own lock: incidents touch nothing else of the environment.
type incidentBook struct {
	mu   sync.Mutex
	list []*Incident
}

func (b *incidentBook) find(id string) *Incident {
	for _, in := range b.list {
		if in.ID == id {
			return in
		}
	}
	return nil
}

func (b *incidentBook) all() []Incident {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Incident, 0, len(b.list))
	for _, in := range b.list {
		out = append(out, *in)
	}
	return out
}

func (b *incidentBook) get(id string) (Incident, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if in := b.find(id); in != nil {
		return *in, nil
	}
	return Incident{}, notFound("incident %q: no such incident", id)
}

// put opens or resolves id. Both are idempotent: opening an open incident
// (or resolving a resolved one) keeps its times, so a retried call changes
// nothing; opening a resolved one reopens it. A title, when given,
// replaces the old one.
func (b *incidentBook) put(id string, r IncidentRequest, now time.Time) (Incident, error) {
	if !nameRE.MatchString(id) {
		return Incident{}, badRequest("incident id %q: allowed letters, digits, '.', '_', '-' (up to 63, e.g. INC-42)", id)
	}
	if r.Status != IncidentOpen && r.Status != IncidentResolved {
		return Incident{}, badRequest("status %q: allowed %s, %s", r.Status, IncidentOpen, IncidentResolved)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	in := b.find(id)
	if in == nil {
		if r.Status == IncidentResolved {
			return Incident{}, notFound("incident %q: no such incident to resolve (open it first)", id)
		}
		in = &Incident{ID: id}
		b.list = append(b.list, in)
	}
	if r.Title != "" {
		in.Title = r.Title
	}
	switch {
	case r.Status == IncidentOpen && in.Status != IncidentOpen:
		in.Status, in.OpenedAt, in.ResolvedAt = IncidentOpen, now.UnixMilli(), 0
	case r.Status == IncidentResolved && in.Status != IncidentResolved:
		in.Status, in.ResolvedAt = IncidentResolved, now.UnixMilli()
	}
	return *in, nil
}

func (e *Env) incidentRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/incidents", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, e.incidents.all())
	})
	mux.HandleFunc("GET /api/incidents/{id}", func(w http.ResponseWriter, r *http.Request) {
		in, err := e.incidents.get(r.PathValue("id"))
		respond(w, in, err)
	})
	mux.HandleFunc("PUT /api/incidents/{id}", func(w http.ResponseWriter, r *http.Request) {
		var body IncidentRequest
		if !readJSON(w, r, &body) {
			return
		}
		in, err := e.incidents.put(r.PathValue("id"), body, time.Now())
		respond(w, in, err)
	})
}
