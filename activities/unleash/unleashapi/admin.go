// Package unleashapi speaks Unleash's admin API over plain HTTP (no Unleash
// Go client is available here): read a flag's state in an environment,
// turn it on or off, set a gradual rollout, create a flag, keep a note in a
// tag. It imports nothing of drillship, so that the lab can use it too.
package unleashapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Admin is an admin API client.
type Admin struct {
	URL   string // base URL, e.g. http://127.0.0.1:4242
	Token string // an admin API token
	HTTP  *http.Client
}

// NewAdmin returns a client with a per-request timeout.
func NewAdmin(base, token string, timeout time.Duration) *Admin {
	return &Admin{URL: strings.TrimRight(base, "/"), Token: token, HTTP: &http.Client{Timeout: timeout}}
}

// StatusError is an answer other than 2xx.
type StatusError struct {
	Code int
	Msg  string
	Op   string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("unleash %s: %d %s", e.Op, e.Code, strings.TrimSpace(e.Msg))
}

// NotFound reports whether err is a 404 from Unleash.
func NotFound(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == http.StatusNotFound
}

// Client reports whether err is one a retry cannot fix (4xx but 408/429).
func Client(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code >= 400 && se.Code < 500 && se.Code != 408 && se.Code != 429
}

func (a *Admin) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.URL+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", a.Token)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("unleash %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return &StatusError{Code: resp.StatusCode, Msg: string(b), Op: method + " " + path}
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("unleash %s %s: %w", method, path, err)
		}
	}
	return nil
}

// Strategy is an activation strategy in an environment.
type Strategy struct {
	ID          string            `json:"id,omitempty"`
	Name        string            `json:"name"`
	Parameters  map[string]string `json:"parameters,omitempty"`
	Constraints []json.RawMessage `json:"constraints,omitempty"`
	Disabled    bool              `json:"disabled,omitempty"`
}

// Environment is a flag's state in one environment.
type Environment struct {
	Name       string     `json:"name"`
	Enabled    bool       `json:"enabled"`
	Strategies []Strategy `json:"strategies"`
}

// Feature is a flag as the admin API returns it.
type Feature struct {
	Name         string        `json:"name"`
	Project      string        `json:"project"`
	Environments []Environment `json:"environments"`
}

// Env returns the flag's state in env.
func (f Feature) Env(env string) (Environment, bool) {
	for _, e := range f.Environments {
		if e.Name == env {
			return e, true
		}
	}
	return Environment{}, false
}

func featurePath(project, feature string) string {
	return "/api/admin/projects/" + url.PathEscape(project) + "/features/" + url.PathEscape(feature)
}

// Feature reads a flag.
func (a *Admin) Feature(ctx context.Context, project, feature string) (Feature, error) {
	var f Feature
	err := a.do(ctx, http.MethodGet, featurePath(project, feature), nil, &f)
	return f, err
}

// State reads whether the flag is on in env and its strategies there.
func (a *Admin) State(ctx context.Context, project, feature, env string) (Environment, error) {
	f, err := a.Feature(ctx, project, feature)
	if err != nil {
		return Environment{}, err
	}
	e, ok := f.Env(env)
	if !ok {
		return Environment{}, &StatusError{Code: http.StatusNotFound, Op: "environment", Msg: fmt.Sprintf("flag %s of project %s has no environment %s", feature, project, env)}
	}
	return e, nil
}

// Toggle turns the flag on or off in env. Unleash answers 200 whether or
// not it changed anything, so a retry is harmless.
func (a *Admin) Toggle(ctx context.Context, project, feature, env string, on bool) error {
	op := "off"
	if on {
		op = "on"
	}
	return a.do(ctx, http.MethodPost, featurePath(project, feature)+"/environments/"+url.PathEscape(env)+"/"+op, nil, nil)
}

// Create makes a release flag in project; one that exists already is fine.
func (a *Admin) Create(ctx context.Context, project, feature, description string) error {
	err := a.do(ctx, http.MethodPost, "/api/admin/projects/"+url.PathEscape(project)+"/features",
		map[string]any{"name": feature, "type": "release", "description": description}, nil)
	var se *StatusError
	if errors.As(err, &se) && se.Code == http.StatusConflict {
		return nil
	}
	return err
}

// RolloutStrategy is the strategy whose rollout parameter drillship sets.
const RolloutStrategy = "flexibleRollout"

// Rollout returns the rollout percentage of the flag's first gradual
// rollout strategy in env, and whether it has one.
func Rollout(e Environment) (int, string, bool) {
	for _, s := range e.Strategies {
		if s.Name == RolloutStrategy && len(s.Constraints) == 0 && !s.Disabled {
			p, err := strconv.Atoi(s.Parameters["rollout"])
			if err != nil {
				continue
			}
			return p, s.ID, true
		}
	}
	return 0, "", false
}

// SetRollout sets the rollout percentage of the flag's gradual rollout in
// env, adding the strategy when there is none. It reads first and writes
// only when the value differs.
func (a *Admin) SetRollout(ctx context.Context, project, feature, env string, pct int) error {
	e, err := a.State(ctx, project, feature, env)
	if err != nil {
		return err
	}
	cur, id, ok := Rollout(e)
	if ok && cur == pct {
		return nil
	}
	s := Strategy{Name: RolloutStrategy, Parameters: map[string]string{
		"rollout": strconv.Itoa(pct), "stickiness": "default", "groupId": feature}}
	base := featurePath(project, feature) + "/environments/" + url.PathEscape(env) + "/strategies"
	if ok {
		return a.do(ctx, http.MethodPut, base+"/"+url.PathEscape(id), s, nil)
	}
	return a.do(ctx, http.MethodPost, base, s, nil)
}

// Tag is a feature tag.
type Tag struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// Tags reads a flag's tags.
func (a *Admin) Tags(ctx context.Context, feature string) ([]Tag, error) {
	var out struct {
		Tags []Tag `json:"tags"`
	}
	err := a.do(ctx, http.MethodGet, "/api/admin/features/"+url.PathEscape(feature)+"/tags", nil, &out)
	return out.Tags, err
}

// AddTag adds a tag; one that is there already is fine.
func (a *Admin) AddTag(ctx context.Context, feature string, t Tag) error {
	err := a.do(ctx, http.MethodPost, "/api/admin/features/"+url.PathEscape(feature)+"/tags", t, nil)
	var se *StatusError
	if errors.As(err, &se) && se.Code == http.StatusConflict {
		return nil
	}
	return err
}

// RemoveTag removes a tag; one that is gone already is fine.
func (a *Admin) RemoveTag(ctx context.Context, feature string, t Tag) error {
	err := a.do(ctx, http.MethodDelete, "/api/admin/features/"+url.PathEscape(feature)+"/tags/"+url.PathEscape(t.Type)+"/"+url.PathEscape(t.Value), nil, nil)
	if NotFound(err) {
		return nil
	}
	return err
}

// Health asks /health; nil when Unleash answers 200.
func (a *Admin) Health(ctx context.Context) error {
	return a.do(ctx, http.MethodGet, "/health", nil, nil)
}
