package httpapi

import (
	"net/http"
	"strconv"
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
		a.metrics.requests.WithLabelValues(route, r.Method, strconv.Itoa(sw.status)).Inc()
		a.metrics.latency.WithLabelValues(route, r.Method).Observe(time.Since(start).Seconds())
	})
}
