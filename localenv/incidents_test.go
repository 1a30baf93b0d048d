package localenv

import (
	"context"
	"net/http"
	"testing"
)

// TestIncidents: the control API keeps incidents that a person opens and
// resolves, and answers one by id with a status field (what the `local`
// incident provider reads); the client drives the same API.
func TestIncidents(t *testing.T) {
	e := start(t, Options{})
	ctx := context.Background()

	var raw map[string]any
	if code := call(t, e, http.MethodGet, "/api/incidents/INC-1", nil, &raw); code != http.StatusNotFound {
		t.Fatalf("GET unknown incident: status %d, want 404 (%v)", code, raw)
	}
	var list []Incident
	mustCall(t, e, http.MethodGet, "/api/incidents", nil, &list)
	if len(list) != 0 {
		t.Fatalf("a new environment has incidents: %+v", list)
	}

	var in Incident
	mustCall(t, e, http.MethodPut, "/api/incidents/INC-1", IncidentRequest{Status: "open", Title: "checkout down"}, &in)
	if in.ID != "INC-1" || in.Status != IncidentOpen || in.Title != "checkout down" || in.OpenedAt == 0 || in.ResolvedAt != 0 {
		t.Fatalf("opened: %+v", in)
	}
	mustCall(t, e, http.MethodGet, "/api/incidents/INC-1", nil, &raw)
	if raw["status"] != "open" {
		t.Fatalf("GET /api/incidents/INC-1: status field %v, want open (%v)", raw["status"], raw)
	}

	// Opening again is a no-op (times kept), as a retried call must be.
	var again Incident
	mustCall(t, e, http.MethodPut, "/api/incidents/INC-1", IncidentRequest{Status: "open"}, &again)
	if again != in {
		t.Fatalf("opening an open incident changed it: %+v, was %+v", again, in)
	}

	cl, err := NewClient(e.URL())
	if err != nil {
		t.Fatal(err)
	}
	res, err := cl.ResolveIncident(ctx, "INC-1")
	if err != nil || res.Status != IncidentResolved || res.ResolvedAt < res.OpenedAt || res.Title != "checkout down" {
		t.Fatalf("ResolveIncident = %+v, %v", res, err)
	}
	if got, err := cl.Incident(ctx, "INC-1"); err != nil || got != res {
		t.Fatalf("Incident = %+v, %v; want %+v", got, err, res)
	}
	if _, err := cl.OpenIncident(ctx, "INC-2", ""); err != nil {
		t.Fatal(err)
	}
	list, err = cl.Incidents(ctx)
	if err != nil || len(list) != 2 || list[0].ID != "INC-1" || list[0].Status != IncidentResolved || list[1].ID != "INC-2" || list[1].Status != IncidentOpen {
		t.Fatalf("Incidents = %+v, %v", list, err)
	}
	// Reopening clears the resolution.
	re, err := cl.OpenIncident(ctx, "INC-1", "")
	if err != nil || re.Status != IncidentOpen || re.ResolvedAt != 0 || re.Title != "checkout down" {
		t.Fatalf("reopen = %+v, %v", re, err)
	}

	// Bad input is refused with 400, an unknown incident to resolve 404;
	// neither creates anything.
	for _, c := range []struct {
		path string
		body any
		want int
	}{
		{"/api/incidents/INC-3", IncidentRequest{Status: "closed"}, http.StatusBadRequest},
		{"/api/incidents/INC-3", IncidentRequest{}, http.StatusBadRequest},
		{"/api/incidents/bad%20id", IncidentRequest{Status: "open"}, http.StatusBadRequest},
		{"/api/incidents/INC-3", IncidentRequest{Status: "resolved"}, http.StatusNotFound},
	} {
		var eb ErrorBody
		if code := call(t, e, http.MethodPut, c.path, c.body, &eb); code != c.want || eb.Error == "" {
			t.Errorf("PUT %s %+v: status %d (%q), want %d with an error", c.path, c.body, code, eb.Error, c.want)
		}
	}
	if _, err := cl.ResolveIncident(ctx, "INC-9"); !Refused(err) {
		t.Errorf("ResolveIncident(unknown) = %v, want a refusal", err)
	}
	if list, _ = cl.Incidents(ctx); len(list) != 2 {
		t.Errorf("refused requests created incidents: %+v", list)
	}
}
