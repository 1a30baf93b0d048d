// Package ofunleash is an OpenFeature provider that reads flags from an
// Unleash server's client API, as an application would: it polls
// /api/client/features with a client token and evaluates boolean flags
// locally (enabled in the token's environment, then the strategies). No
// Unleash Go client is available here, so this is the part of one that
// drillship needs. It imports nothing of drillship, so that both the lab's
// sample service and the unleash provider can use it.
package ofunleash

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/open-feature/go-sdk/openfeature"
)

// Feature is one flag as the client API returns it.
type Feature struct {
	Name       string     `json:"name"`
	Enabled    bool       `json:"enabled"`
	Strategies []Strategy `json:"strategies"`
}

// Strategy is one activation strategy of a flag.
type Strategy struct {
	Name       string            `json:"name"`
	Parameters map[string]string `json:"parameters"`
	// Constraints are not evaluated: a strategy with any is treated as not
	// matching, so a flag never turns on for people it was not meant for.
	Constraints []json.RawMessage `json:"constraints"`
}

// Provider polls the client API and answers from the last answer it got.
type Provider struct {
	URL      string // base URL, e.g. http://127.0.0.1:4242
	Token    string // a client API token (environment-scoped)
	Interval time.Duration
	HTTP     *http.Client

	mu       sync.RWMutex
	features map[string]Feature
	fetched  time.Time
	lastErr  error
	stop     context.CancelFunc
	done     chan struct{}
}

// New returns a provider that polls every interval once Start is called.
func New(url, token string, interval time.Duration) *Provider {
	return &Provider{URL: url, Token: token, Interval: interval, HTTP: &http.Client{Timeout: 2 * time.Second}}
}

// Fetch reads every flag once from the client API.
func (p *Provider) Fetch(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/api/client/features", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", p.Token)
	resp, err := p.HTTP.Do(req)
	if err != nil {
		p.setErr(err)
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("unleash client API: %s", resp.Status)
		p.setErr(err)
		return err
	}
	var body struct {
		Features []Feature `json:"features"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		p.setErr(err)
		return err
	}
	m := make(map[string]Feature, len(body.Features))
	for _, f := range body.Features {
		m[f.Name] = f
	}
	p.mu.Lock()
	p.features, p.fetched, p.lastErr = m, time.Now(), nil
	p.mu.Unlock()
	return nil
}

func (p *Provider) setErr(err error) {
	p.mu.Lock()
	p.lastErr = err
	p.mu.Unlock()
}

// Start fetches once (failing if that fails) and then polls until Close.
func (p *Provider) Start(ctx context.Context) error {
	if err := p.Fetch(ctx); err != nil {
		return err
	}
	pctx, cancel := context.WithCancel(context.Background())
	p.stop, p.done = cancel, make(chan struct{})
	go func() {
		defer close(p.done)
		t := time.NewTicker(p.Interval)
		defer t.Stop()
		for {
			select {
			case <-pctx.Done():
				return
			case <-t.C:
				fctx, c := context.WithTimeout(pctx, 2*time.Second)
				_ = p.Fetch(fctx) // the last good answer stays in use
				c()
			}
		}
	}()
	return nil
}

// Close stops polling.
func (p *Provider) Close() {
	if p.stop != nil {
		p.stop()
		<-p.done
		p.stop = nil
	}
}

// Lookup returns a flag as the last fetch saw it.
func (p *Provider) Lookup(name string) (Feature, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	f, ok := p.features[name]
	return f, ok
}

// Fetched returns when the flags in use were read.
func (p *Provider) Fetched() time.Time {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.fetched
}

// Metadata names the provider for OpenFeature.
func (p *Provider) Metadata() openfeature.Metadata {
	return openfeature.Metadata{Name: "drillship-unleash"}
}

// Hooks: none.
func (p *Provider) Hooks() []openfeature.Hook { return nil }

// BooleanEvaluation answers whether flag is on for the targeting key.
func (p *Provider) BooleanEvaluation(_ context.Context, flag string, def bool, fc openfeature.FlattenedContext) openfeature.BoolResolutionDetail {
	p.mu.RLock()
	f, ok := p.features[flag]
	fetched, lastErr := p.fetched, p.lastErr
	p.mu.RUnlock()
	if fetched.IsZero() {
		msg := "no answer from the client API yet"
		if lastErr != nil {
			msg += ": " + lastErr.Error()
		}
		return openfeature.BoolResolutionDetail{Value: def, ProviderResolutionDetail: openfeature.ProviderResolutionDetail{
			ResolutionError: openfeature.NewProviderNotReadyResolutionError(msg), Reason: openfeature.ErrorReason}}
	}
	if !ok {
		return openfeature.BoolResolutionDetail{Value: def, ProviderResolutionDetail: openfeature.ProviderResolutionDetail{
			ResolutionError: openfeature.NewFlagNotFoundResolutionError(flag), Reason: openfeature.ErrorReason}}
	}
	key, _ := fc[openfeature.TargetingKey].(string)
	on, reason := Evaluate(f, key)
	return openfeature.BoolResolutionDetail{Value: on, ProviderResolutionDetail: openfeature.ProviderResolutionDetail{Reason: reason}}
}

// Evaluate decides a boolean flag for a targeting key (empty: a random
// draw per evaluation, as Unleash's "random" stickiness does).
func Evaluate(f Feature, key string) (bool, openfeature.Reason) {
	if !f.Enabled {
		return false, openfeature.DisabledReason
	}
	if len(f.Strategies) == 0 {
		// Unleash treats an enabled flag without strategies as on for all.
		return true, openfeature.StaticReason
	}
	for _, s := range f.Strategies {
		if len(s.Constraints) > 0 {
			continue
		}
		switch s.Name {
		case "default":
			return true, openfeature.StaticReason
		case "flexibleRollout", "gradualRolloutRandom":
			pct, err := strconv.Atoi(s.Parameters["rollout"])
			if err != nil {
				pct, _ = strconv.Atoi(s.Parameters["percentage"])
			}
			group := s.Parameters["groupId"]
			if group == "" {
				group = f.Name
			}
			var bucket uint32
			if key == "" || s.Name == "gradualRolloutRandom" {
				bucket = rand.Uint32N(100) + 1
			} else {
				bucket = Normalize(group, key)
			}
			if pct > 0 && int(bucket) <= pct {
				return true, openfeature.SplitReason
			}
		}
	}
	return false, openfeature.DefaultReason
}

// Normalize places a key in 1..100 as Unleash's SDKs do (murmur3 32-bit,
// seed 0, of "group:key"), so a user sees the same answer here as in them.
func Normalize(group, key string) uint32 {
	return murmur3([]byte(group+":"+key))%100 + 1
}

func murmur3(data []byte) uint32 {
	const c1, c2 = 0xcc9e2d51, 0x1b873593
	var h uint32
	n := len(data) / 4
	for i := 0; i < n; i++ {
		k := uint32(data[4*i]) | uint32(data[4*i+1])<<8 | uint32(data[4*i+2])<<16 | uint32(data[4*i+3])<<24
		k *= c1
		k = k<<15 | k>>17
		k *= c2
		h ^= k
		h = h<<13 | h>>19
		h = h*5 + 0xe6546b64
	}
	var k uint32
	tail := data[4*n:]
	switch len(tail) {
	case 3:
		k ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		k ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		k ^= uint32(tail[0])
		k *= c1
		k = k<<15 | k>>17
		k *= c2
		h ^= k
	}
	h ^= uint32(len(data))
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

// The other types are not used by drillship: they answer the default.
func (p *Provider) StringEvaluation(_ context.Context, _ string, def string, _ openfeature.FlattenedContext) openfeature.StringResolutionDetail {
	return openfeature.StringResolutionDetail{Value: def, ProviderResolutionDetail: typeMismatch()}
}

// FloatEvaluation answers the default (boolean flags only).
func (p *Provider) FloatEvaluation(_ context.Context, _ string, def float64, _ openfeature.FlattenedContext) openfeature.FloatResolutionDetail {
	return openfeature.FloatResolutionDetail{Value: def, ProviderResolutionDetail: typeMismatch()}
}

// IntEvaluation answers the default (boolean flags only).
func (p *Provider) IntEvaluation(_ context.Context, _ string, def int64, _ openfeature.FlattenedContext) openfeature.IntResolutionDetail {
	return openfeature.IntResolutionDetail{Value: def, ProviderResolutionDetail: typeMismatch()}
}

// ObjectEvaluation answers the default (boolean flags only).
func (p *Provider) ObjectEvaluation(_ context.Context, _ string, def any, _ openfeature.FlattenedContext) openfeature.InterfaceResolutionDetail {
	return openfeature.InterfaceResolutionDetail{Value: def, ProviderResolutionDetail: typeMismatch()}
}

func typeMismatch() openfeature.ProviderResolutionDetail {
	return openfeature.ProviderResolutionDetail{
		ResolutionError: openfeature.NewTypeMismatchResolutionError("this provider serves boolean flags only"),
		Reason:          openfeature.ErrorReason}
}

// ErrNotReady is returned by Client when the first fetch fails.
var ErrNotReady = errors.New("ofunleash: provider not ready")

// Client registers p under domain and returns an OpenFeature client of it.
// p must have been started.
func Client(domain string, p *Provider) (*openfeature.Client, error) {
	if p.Fetched().IsZero() {
		return nil, ErrNotReady
	}
	if err := openfeature.SetNamedProviderAndWait(domain, p); err != nil {
		return nil, err
	}
	return openfeature.NewClient(domain), nil
}
