package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/drillship/drillship/audit"
)

// The release policy's activities (package policy decides; these read the
// world it decides on and keep the audit log).

// RatiosInput asks for the error ratio of an SLI over each window: from
// Good and Total queries (1 - good/total) or from one ErrorRatio query.
// Version, when set, narrows every query to that version (scope version,
// {{version}} in PromQL): a canary's own burn.
type RatiosInput struct {
	Signals    Target          `json:"signals"`
	Good       *Query          `json:"good,omitempty"`
	Total      *Query          `json:"total,omitempty"`
	ErrorRatio *Query          `json:"errorRatio,omitempty"`
	Windows    []time.Duration `json:"windows"`
	Version    string          `json:"version,omitempty"`
}

// RatioReading is the SLI's error ratio over one window.
type RatioReading struct {
	Window time.Duration `json:"window"`
	Value  float64       `json:"value"`
	NoData bool          `json:"noData,omitempty"`
	Detail string        `json:"detail,omitempty"`
	At     int64         `json:"at"`
}

// ErrorRatios reads the SLI over each window of in.
func (a *Activities) ErrorRatios(ctx context.Context, in RatiosInput) ([]RatioReading, error) {
	out, err := ReadErrorRatios(ctx, a.Reg, in)
	return out, wrap("error ratios", err)
}

// ReadErrorRatios is ErrorRatios outside a worker (the CLI's policy check).
func ReadErrorRatios(ctx context.Context, reg *Registry, in RatiosInput) ([]RatioReading, error) {
	sig, err := reg.Signals(in.Signals)
	if err != nil {
		return nil, Permanent(err)
	}
	q := func(base *Query, w time.Duration) (Sample, error) {
		x := *base
		x.Window = w
		if in.Version != "" {
			x.Scope = map[string]string{}
			for k, v := range base.Scope {
				x.Scope[k] = v
			}
			x.Scope["version"] = in.Version
		}
		return sig.Sample(ctx, x)
	}
	var out []RatioReading
	for _, w := range in.Windows {
		r := RatioReading{Window: w, At: nowMs()}
		if in.ErrorRatio != nil {
			s, err := q(in.ErrorRatio, w)
			if err != nil {
				return nil, err
			}
			r.Value, r.NoData, r.Detail = s.Value, s.NoData, s.Detail
		} else {
			good, err := q(in.Good, w)
			if err != nil {
				return nil, err
			}
			total, err := q(in.Total, w)
			if err != nil {
				return nil, err
			}
			switch {
			case good.NoData || total.NoData || total.Value <= 0:
				r.NoData, r.Detail = true, fmt.Sprintf("good %v, total %v", good.Value, total.Value)
			default:
				r.Value = min(max(1-good.Value/total.Value, 0), 1)
				r.Detail = fmt.Sprintf("good %.6g of %.6g", good.Value, total.Value)
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// IncidentInput asks whether an incident is open: GET URL ({{id}}
// replaced), open when 2xx and the JSON field at Field (a dotted path) is
// one of Open.
type IncidentInput struct {
	// Provider is http (URL as given) or local: URL empty, filled where
	// the local environment's control URL is known (the worker's
	// --local-env; the CLI's), so the policy names no port.
	Provider string            `json:"provider,omitempty"`
	ID       string            `json:"id"`
	URL      string            `json:"url"`
	Field    string            `json:"field"`
	Open     []string          `json:"open"`
	Headers  map[string]string `json:"headers,omitempty"`
	Timeout  time.Duration     `json:"timeout,omitempty"`
}

// IncidentStatus is what the incident provider answered.
type IncidentStatus struct {
	Open   bool   `json:"open"`
	Status string `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// VerifyIncident asks the incident provider about in.ID.
func (a *Activities) VerifyIncident(ctx context.Context, in IncidentInput) (IncidentStatus, error) {
	in, err := in.AtLocal(a.LocalEnvURL)
	if err != nil {
		return IncidentStatus{}, wrap("verify incident", Permanent(err))
	}
	st, err := CheckIncident(ctx, in)
	return st, wrap("verify incident", err)
}

// AtLocal fills the URL of a local provider's input from the local
// environment's control URL base; other inputs are returned as they are.
func (in IncidentInput) AtLocal(base string) (IncidentInput, error) {
	if in.Provider != "local" || in.URL != "" {
		return in, nil
	}
	base = strings.TrimRight(strings.TrimSpace(base), "/")
	if base == "" {
		return in, fmt.Errorf("incident provider local: no local environment is known here (give --local-env URL or DRILLSHIP_LOCAL_ENV, as `drillship dev` prints it)")
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	in.URL = base + "/api/incidents/{{id}}"
	return in, nil
}

// CheckIncident is VerifyIncident outside a worker. An incident that is not
// found or not open is an answer, not an error; an unreachable provider is
// an error (retried in a worker).
func CheckIncident(ctx context.Context, in IncidentInput) (IncidentStatus, error) {
	if in.Timeout <= 0 {
		in.Timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, in.Timeout)
	defer cancel()
	u := strings.ReplaceAll(in.URL, "{{id}}", url.PathEscape(in.ID))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return IncidentStatus{}, Permanent(err)
	}
	req.Header.Set("Accept", "application/json")
	for k, v := range in.Headers {
		// ${NAME} references are expanded here, so no secret is in the
		// workflow's history.
		req.Header.Set(k, os.ExpandEnv(v))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return IncidentStatus{}, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return IncidentStatus{Status: "not found", Detail: fmt.Sprintf("GET %s: 404", u)}, nil
	case resp.StatusCode >= 500:
		return IncidentStatus{}, fmt.Errorf("GET %s: %s", u, resp.Status)
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return IncidentStatus{Status: resp.Status, Detail: fmt.Sprintf("GET %s: %s", u, resp.Status)}, nil
	}
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		return IncidentStatus{Status: "unreadable", Detail: "the answer is not JSON: " + err.Error()}, nil
	}
	for _, part := range strings.Split(in.Field, ".") {
		m, ok := doc.(map[string]any)
		if !ok {
			doc = nil
			break
		}
		doc = m[part]
	}
	status := fmt.Sprint(doc)
	if doc == nil {
		status = "(no " + in.Field + ")"
	}
	return IncidentStatus{Open: slices.Contains(in.Open, status), Status: status, Detail: fmt.Sprintf("GET %s: %s = %s", u, in.Field, status)}, nil
}

// AuditInput appends one record to the audit log at File (empty: the
// worker's DRILLSHIP_AUDIT_LOG, else drillship-audit.jsonl).
type AuditInput struct {
	File   string       `json:"file,omitempty"`
	Record audit.Record `json:"record"`
}

// AppendAudit appends in.Record; the record's Key makes a retry a no-op.
func (a *Activities) AppendAudit(ctx context.Context, in AuditInput) (audit.Record, error) {
	r, err := audit.Append(audit.Path(in.File), in.Record)
	return r, wrap("audit", err)
}
