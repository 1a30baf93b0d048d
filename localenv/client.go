package localenv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client drives a local environment's control API from another process
// (`drillship env`). It speaks the API as documented in this package's doc;
// it adds no behaviour of its own.
type Client struct {
	base string
	http *http.Client
}

// APIError is an error answer of the control API: Status is its HTTP
// status (400 bad input, 404 unknown, 409 conflict), Msg what it said.
type APIError struct {
	Status int
	Msg    string
}

func (e *APIError) Error() string { return e.Msg }

// Refused reports whether err is the environment refusing the request
// (a 4xx answer): nothing was changed, and asking again will not help.
func Refused(err error) bool {
	var a *APIError
	return errors.As(err, &a) && a.Status >= 400 && a.Status < 500
}

// NewClient returns a client of the control API at base, as `drillship dev`
// prints it (http://127.0.0.1:NNNN); a bare host:port is taken as http.
func NewClient(base string) (*Client, error) {
	base = strings.TrimRight(strings.TrimSpace(base), "/")
	if base != "" && !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("%q is not the URL of a local environment's control API (such as http://127.0.0.1:8234, as `drillship dev` prints it)", base)
	}
	return &Client{base: base, http: &http.Client{Timeout: 10 * time.Second}}, nil
}

// URL is the control API's base URL.
func (c *Client) URL() string { return c.base }

// State is GET /api/state.
func (c *Client) State(ctx context.Context) (State, error) {
	var s State
	err := c.do(ctx, http.MethodGet, "/api/state", nil, &s)
	return s, err
}

// Faults is GET /api/faults: every fault ever injected, ended ones too.
func (c *Client) Faults(ctx context.Context) ([]FaultRecord, error) {
	var fs []FaultRecord
	err := c.do(ctx, http.MethodGet, "/api/faults", nil, &fs)
	return fs, err
}

// Inject is POST /api/faults.
func (c *Client) Inject(ctx context.Context, req FaultRequest) (FaultRecord, error) {
	var f FaultRecord
	err := c.do(ctx, http.MethodPost, "/api/faults", req, &f)
	return f, err
}

// StopOwned is POST /api/faults/stop: ends only req.Owner's fault.
func (c *Client) StopOwned(ctx context.Context, req FaultRequest) (StopAnswer, error) {
	var a StopAnswer
	err := c.do(ctx, http.MethodPost, "/api/faults/stop", req, &a)
	return a, err
}

// EndFault is DELETE /api/faults/{id}: ends the fault whoever owns it.
func (c *Client) EndFault(ctx context.Context, id string) (FaultRecord, error) {
	var f FaultRecord
	err := c.do(ctx, http.MethodDelete, "/api/faults/"+url.PathEscape(id), nil, &f)
	return f, err
}

// SetWeights is PUT /api/weights/regions or /api/weights/versions (level
// "region" or "version"); it answers the weights after the change.
func (c *Client) SetWeights(ctx context.Context, level string, w map[string]int) (map[string]int, error) {
	if level != levelRegion && level != levelVersion {
		return nil, fmt.Errorf("weights level %q: allowed %s, %s", level, levelRegion, levelVersion)
	}
	var got map[string]int
	err := c.do(ctx, http.MethodPut, "/api/weights/"+level+"s", w, &got)
	return got, err
}

// SetLoad is PUT /api/load.
func (c *Client) SetLoad(ctx context.Context, multiplier float64) (Load, error) {
	var l Load
	err := c.do(ctx, http.MethodPut, "/api/load", map[string]float64{"multiplier": multiplier}, &l)
	return l, err
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("local environment at %s: %w (is `drillship dev` running? it prints the URL)", c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("local environment at %s: %s %s: %w", c.base, method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e ErrorBody
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("%s %s: %s", method, path, resp.Status)
		}
		return &APIError{Status: resp.StatusCode, Msg: e.Error}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("local environment at %s: %s %s: unexpected answer: %w", c.base, method, path, err)
	}
	return nil
}

// Incidents is GET /api/incidents.
func (c *Client) Incidents(ctx context.Context) ([]Incident, error) {
	var is []Incident
	err := c.do(ctx, http.MethodGet, "/api/incidents", nil, &is)
	return is, err
}

// Incident is GET /api/incidents/{id}.
func (c *Client) Incident(ctx context.Context, id string) (Incident, error) {
	var in Incident
	err := c.do(ctx, http.MethodGet, "/api/incidents/"+url.PathEscape(id), nil, &in)
	return in, err
}

// OpenIncident is PUT /api/incidents/{id} with status open; an empty title
// keeps the one it has.
func (c *Client) OpenIncident(ctx context.Context, id, title string) (Incident, error) {
	return c.putIncident(ctx, id, IncidentRequest{Status: IncidentOpen, Title: title})
}

// ResolveIncident is PUT /api/incidents/{id} with status resolved.
func (c *Client) ResolveIncident(ctx context.Context, id string) (Incident, error) {
	return c.putIncident(ctx, id, IncidentRequest{Status: IncidentResolved})
}

func (c *Client) putIncident(ctx context.Context, id string, r IncidentRequest) (Incident, error) {
	var in Incident
	err := c.do(ctx, http.MethodPut, "/api/incidents/"+url.PathEscape(id), r, &in)
	return in, err
}
