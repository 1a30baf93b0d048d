package localenv

import (
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// noneLabel is the version (or region) a request is recorded under when the
// proxy found nothing to send it to: those failures hurt users too.
const noneLabel = "none"

// metrics records what users saw at the proxy, per (region, version), in a
// ring of time buckets: a windowed query sums whole buckets, so it is exact
// to the bucket and costs only the buckets it covers. Latencies are kept as
// raw samples so that quantiles are exact, not interpolated.
type metrics struct {
	bucketMs int64
	slots    int64

	mu     sync.Mutex
	series map[seriesKey]*series

	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

type seriesKey struct{ region, version string }

type series struct {
	mu   sync.Mutex
	ring []slot
}

type slot struct {
	idx   int64 // bucket number (Unix ms / bucket); a stale slot has an old one
	count uint64
	errs  uint64
	lat   []uint32 // microseconds
}

func newMetrics(bucket time.Duration) *metrics {
	m := &metrics{
		bucketMs: bucket.Milliseconds(),
		series:   map[seriesKey]*series{},
		reg:      prometheus.NewRegistry(),
	}
	m.slots = int64(history/time.Millisecond) / m.bucketMs
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "drillship_local_requests_total",
		Help: "Requests through the local environment's proxy, by region, version and status code.",
	}, []string{"region", "version", "code"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "drillship_local_request_duration_seconds",
		Help:    "Latency of requests through the local environment's proxy.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"region", "version"})
	m.reg.MustRegister(m.requests, m.duration)
	return m
}

// record counts one request. Status >= 500 (a transport error is a 502) is
// an error.
func (m *metrics) record(region, version string, status int, d time.Duration, at time.Time) {
	k := seriesKey{region, version}
	m.mu.Lock()
	s := m.series[k]
	if s == nil {
		s = &series{ring: make([]slot, m.slots)}
		m.series[k] = s
	}
	m.mu.Unlock()

	idx := at.UnixMilli() / m.bucketMs
	us := uint32(min(d.Microseconds(), math.MaxUint32))
	s.mu.Lock()
	sl := &s.ring[idx%m.slots]
	if sl.idx != idx {
		sl.idx, sl.count, sl.errs, sl.lat = idx, 0, 0, sl.lat[:0]
	}
	sl.count++
	if status >= 500 {
		sl.errs++
	}
	sl.lat = append(sl.lat, us)
	s.mu.Unlock()

	m.requests.WithLabelValues(region, version, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(region, version).Observe(d.Seconds())
}

// window is what a query saw over the buckets it covered.
type window struct {
	count, errs uint64
	lat         []uint32
}

// query sums the buckets of the series that keep accepts over the window
// ending at now (the current, partial bucket included).
func (m *metrics) query(keep func(region, version string) bool, w time.Duration, now time.Time) window {
	last := now.UnixMilli() / m.bucketMs
	n := (w.Milliseconds() + m.bucketMs - 1) / m.bucketMs
	n = max(min(n, m.slots), 1)
	first := last - n + 1

	m.mu.Lock()
	var picked []*series
	for k, s := range m.series {
		if keep(k.region, k.version) {
			picked = append(picked, s)
		}
	}
	m.mu.Unlock()

	var out window
	for _, s := range picked {
		s.mu.Lock()
		for idx := first; idx <= last; idx++ {
			sl := &s.ring[idx%m.slots]
			if sl.idx != idx {
				continue
			}
			out.count += sl.count
			out.errs += sl.errs
			out.lat = append(out.lat, sl.lat...)
		}
		s.mu.Unlock()
	}
	return out
}

// quantile returns the q-quantile (nearest rank) of lat in seconds.
func quantile(lat []uint32, q float64) float64 {
	if len(lat) == 0 {
		return 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	i = max(min(i, len(s)-1), 0)
	return float64(s[i]) / 1e6
}
