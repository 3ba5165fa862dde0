package httpapi

import (
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the coordinator's Prometheus series, on a registry of its own (no
// global state, so several coordinators can run in one test process).
type Metrics struct {
	reg          *prometheus.Registry
	requests     *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	applyLatency prometheus.Histogram
	// clusterTLSConns counts mutual-TLS connections accepted from other
	// coordinators (forwarding); with connection reuse it grows slowly.
	clusterTLSConns prometheus.Counter
	// channelRequests counts requests followers forwarded over the
	// forwarding channel (forwardmux.go) and this coordinator served.
	channelRequests prometheus.Counter
	// series caches the request series by route and method (observe).
	series seriesCache
}

// NewMetrics registers the series; fsmSize and raftState are sampled on scrape.
func NewMetrics(fsmSize func() float64, appliedIndex func() float64) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hostplane_http_requests_total", Help: "HTTP requests by route, method and status.",
	}, []string{"route", "method", "status"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "hostplane_http_request_duration_seconds", Help: "HTTP request latency by route and method.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route", "method"})
	m.applyLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "hostplane_raft_apply_duration_seconds", Help: "Time from proposing a command to its commit and apply on the leader.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	})
	m.clusterTLSConns = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "hostplane_cluster_tls_connections_total", Help: "Mutual-TLS connections accepted on the API listener from other coordinators (forwarding).",
	})
	m.channelRequests = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "hostplane_forward_channel_requests_total", Help: "Requests other coordinators forwarded to this one over their forwarding channels.",
	})
	m.reg.MustRegister(m.requests, m.latency, m.applyLatency, m.clusterTLSConns, m.channelRequests,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hostplane_fsm_size_bytes", Help: "Size of the FSM database."}, fsmSize),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hostplane_fsm_applied_index", Help: "Raft index of the last command applied to the FSM."}, appliedIndex),
		collectors.NewGoCollector(),
	)
	return m
}

// Register adds series owned by other parts of the coordinator.
func (m *Metrics) Register(cs ...prometheus.Collector) { m.reg.MustRegister(cs...) }

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// MetricsHandler is the metrics listener's handler: GET /metrics, with the
// headers of every response; anything else is a 404.
func (m *Metrics) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	return secureHeaders(mux)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

// Unwrap lets http.ResponseController reach the connection (SSE deadlines, flushes).
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = 200
	}
	return s.ResponseWriter.Write(b)
}

// Flush lets server-sent events pass through the wrapper.
func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// instrument records request counts and latency by matched route pattern.
func (a *API) instrument(next http.Handler) http.Handler {
	if a.metrics == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		if sw.status == 0 {
			sw.status = 200
		}
		a.metrics.observe(route, r.Method, sw.status, time.Since(start))
	})
}

// observe counts one request of route and method answered with status and
// records its latency d: the series requests.WithLabelValues(route, method,
// status) and latency.WithLabelValues(route, method), looked up once per
// route and method (and status) and then kept, instead of hashing the
// labels on every request. Past maxCachedSeries routes and methods (methods
// are the client's to choose on a pattern without one), or maxCachedStatuses
// statuses of one, the series are looked up each time as before.
func (m *Metrics) observe(route, method string, status int, d time.Duration) {
	s := m.routeSeries(route, method)
	if s == nil {
		m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
		m.latency.WithLabelValues(route, method).Observe(d.Seconds())
		return
	}
	s.counter(m, route, method, status).Inc()
	s.latency.Observe(d.Seconds())
}

const (
	maxCachedSeries   = 1024
	maxCachedStatuses = 16
)

type seriesKey struct{ route, method string }

// routeSeries are one route and method's series.
type routeSeries struct {
	latency  prometheus.Observer
	mu       sync.Mutex                      // serializes additions to statuses
	statuses atomic.Pointer[[]statusCounter] // copied on write
}

type statusCounter struct {
	status int
	c      prometheus.Counter
}

// seriesCache maps route and method to their series; the map is copied on
// write, so a look-up takes no lock.
type seriesCache struct {
	mu sync.Mutex
	m  atomic.Pointer[map[seriesKey]*routeSeries]
}

// routeSeries is route and method's series, nil when the cache is full.
func (m *Metrics) routeSeries(route, method string) *routeSeries {
	k := seriesKey{route, method}
	if p := m.series.m.Load(); p != nil {
		if s := (*p)[k]; s != nil {
			return s
		}
	}
	m.series.mu.Lock()
	defer m.series.mu.Unlock()
	var old map[seriesKey]*routeSeries
	if p := m.series.m.Load(); p != nil {
		old = *p
	}
	if s := old[k]; s != nil {
		return s
	}
	if len(old) >= maxCachedSeries {
		return nil
	}
	next := make(map[seriesKey]*routeSeries, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	s := &routeSeries{latency: m.latency.WithLabelValues(route, method)}
	next[k] = s
	m.series.m.Store(&next)
	return s
}

// counter is the request counter of status (of s's route and method).
func (s *routeSeries) counter(m *Metrics, route, method string, status int) prometheus.Counter {
	if p := s.statuses.Load(); p != nil {
		for _, sc := range *p {
			if sc.status == status {
				return sc.c
			}
		}
	}
	c := m.requests.WithLabelValues(route, method, strconv.Itoa(status))
	s.mu.Lock()
	defer s.mu.Unlock()
	var old []statusCounter
	if p := s.statuses.Load(); p != nil {
		old = *p
	}
	if len(old) < maxCachedStatuses && !slices.ContainsFunc(old, func(sc statusCounter) bool { return sc.status == status }) {
		next := append(slices.Clip(old), statusCounter{status, c})
		s.statuses.Store(&next)
	}
	return c
}
