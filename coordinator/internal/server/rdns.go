package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/httpapi"
	"github.com/hostplane/hostplane/coordinator/internal/rdns"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
)

// rdnsMetrics are the reconciler's Prometheus metrics on --metrics-addr.
type rdnsMetrics struct {
	passes   *prometheus.CounterVec // result: ok, error
	changes  *prometheus.CounterVec // change: replace, delete, zone_create, zone_delete
	duration prometheus.Histogram
}

func newRDNSMetrics(m *httpapi.Metrics, read func(func(store.ReadTx) error) error) *rdnsMetrics {
	r := &rdnsMetrics{
		passes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hostplane_rdns_passes_total",
			Help: "Reconcile passes of the reverse zones against PowerDNS on this leader, by result."}, []string{"result"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hostplane_rdns_changes_total",
			Help: "Changes made in PowerDNS: PTR rrsets replaced or deleted, zones created or deleted."}, []string{"change"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "hostplane_rdns_pass_duration_seconds",
			Help: "Duration of a reconcile pass.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)}),
	}
	pending := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hostplane_rdns_zones_pending",
		Help: "Mapped reverse zones whose last change PowerDNS does not serve yet (or being removed)."}, func() float64 {
		n := 0
		_ = read(func(rt store.ReadTx) error {
			zs, err := rt.ReverseZones()
			for _, z := range zs {
				if z.Removing || z.Dirty() {
					n++
				}
			}
			return err
		})
		return float64(n)
	})
	m.Register(r.passes, r.changes, r.duration, pending)
	return r
}

// RDNSConfig is how the leader reaches PowerDNS Authoritative to serve the
// PTR names of servers' addresses in the mapped reverse zones.
type RDNSConfig struct {
	// APIURL is PowerDNS's webserver URL (http://127.0.0.1:8081); empty:
	// no PowerDNS, PTR names are only recorded.
	APIURL string
	// APIKeyFile holds the API key (it is read at start, sent only in
	// X-API-Key and never logged or written to Raft).
	APIKeyFile string
	ServerID   string
	// Nameservers is a comma-separated list of the NS names of the zones
	// hostplane creates.
	Nameservers string
	TTL         int
	// Resync: a full pass this often even with no change (repairs zones
	// edited or lost behind hostplane's back).
	Resync time.Duration
	// RetryMax bounds the back-off while PowerDNS cannot be reached.
	RetryMax time.Duration

	// Set in code only (tests).
	RetryInitial time.Duration

	key string
}

func rdnsDefaults() RDNSConfig {
	return RDNSConfig{ServerID: "localhost", TTL: 3600, Resync: 5 * time.Minute, RetryMax: 30 * time.Second}
}

func bindRDNSFlags(fs *pflag.FlagSet, c *RDNSConfig) {
	d := rdnsDefaults()
	if c.ServerID == "" {
		c.ServerID, c.TTL, c.Resync, c.RetryMax = d.ServerID, d.TTL, d.Resync, d.RetryMax
	}
	fs.StringVar(&c.APIURL, "pdns-api-url", c.APIURL, "URL of the PowerDNS Authoritative webserver whose HTTP API serves the PTR names of mapped reverse zones, e.g. http://127.0.0.1:8081 (empty: PTR names are only recorded)")
	fs.StringVar(&c.APIKeyFile, "pdns-api-key-file", c.APIKeyFile, "file holding the PowerDNS API key (required with --pdns-api-url)")
	fs.StringVar(&c.ServerID, "pdns-server-id", c.ServerID, "PowerDNS server id in the API's paths")
	fs.StringVar(&c.Nameservers, "pdns-nameservers", c.Nameservers, "NS names of the reverse zones hostplane creates in PowerDNS, e.g. ns1.example.com,ns2.example.com (required with --pdns-api-url)")
	fs.IntVar(&c.TTL, "pdns-ptr-ttl", c.TTL, "TTL in seconds of the PTR records")
	fs.DurationVar(&c.Resync, "pdns-resync-interval", c.Resync, "the leader compares every mapped zone with PowerDNS this often even when nothing changed")
	fs.DurationVar(&c.RetryMax, "pdns-retry-max", c.RetryMax, "longest wait between attempts while PowerDNS cannot be reached")
}

func (c *RDNSConfig) validate() error {
	d := rdnsDefaults()
	if c.ServerID == "" {
		c.ServerID = d.ServerID
	}
	if c.TTL == 0 {
		c.TTL = d.TTL
	}
	if c.Resync == 0 {
		c.Resync = d.Resync
	}
	if c.RetryMax == 0 {
		c.RetryMax = d.RetryMax
	}
	if c.RetryInitial == 0 {
		c.RetryInitial = 500 * time.Millisecond
	}
	if c.APIURL == "" {
		return nil
	}
	var errs []error
	if u, err := url.Parse(c.APIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		errs = append(errs, fmt.Errorf("pdns-api-url %q: must be an http(s) URL without credentials", c.APIURL))
	}
	if c.APIKeyFile == "" {
		errs = append(errs, errors.New("pdns-api-key-file is required with pdns-api-url"))
	} else if raw, err := os.ReadFile(c.APIKeyFile); err != nil {
		errs = append(errs, fmt.Errorf("pdns-api-key-file: %w", err))
	} else if c.key = strings.TrimSpace(string(raw)); c.key == "" || strings.ContainsAny(c.key, "\r\n") {
		errs = append(errs, errors.New("pdns-api-key-file: the file must hold the key on one line"))
	}
	if len(c.nameservers()) == 0 {
		errs = append(errs, errors.New("pdns-nameservers is required with pdns-api-url"))
	}
	for _, ns := range c.nameservers() {
		if rdns.ValidTarget(strings.TrimSuffix(ns, ".")) != nil {
			errs = append(errs, fmt.Errorf("pdns-nameservers: %q is not a fully qualified host name", ns))
		}
	}
	for _, r := range c.ServerID {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			errs = append(errs, fmt.Errorf("pdns-server-id %q: letters, digits, '.', '_' and '-' only", c.ServerID))
			break
		}
	}
	if c.TTL < 1 || c.TTL > 604800 {
		errs = append(errs, fmt.Errorf("pdns-ptr-ttl %d: from 1 to 604800", c.TTL))
	}
	if c.Resync < time.Second || c.RetryMax < 100*time.Millisecond {
		errs = append(errs, errors.New("pdns-resync-interval must be at least 1s and pdns-retry-max at least 100ms"))
	}
	return errors.Join(errs...)
}

func (c *RDNSConfig) nameservers() []string {
	var out []string
	for _, ns := range strings.Split(c.Nameservers, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			out = append(out, ns)
		}
	}
	return out
}

// rdnsJobs is the leader's PowerDNS reconciler. Without --pdns-api-url the
// names are only recorded; an unmapped zone then has nothing to delete in
// PowerDNS and its entry is dropped at once.
func (s *Server) rdnsJobs() []func(ctx context.Context) {
	c := s.cfg.RDNS
	if c.APIURL == "" {
		return []func(ctx context.Context){s.dropRemovedZones}
	}
	client := &rdns.Client{BaseURL: c.APIURL, ServerID: c.ServerID, Key: c.key, HTTP: &http.Client{Timeout: 15 * time.Second}}
	r := &reconciler{s: s, c: client, cfg: c, log: s.log.With("component", "rdns"), met: s.rdnsMet}
	return []func(ctx context.Context){r.run}
}

type reconciler struct {
	s   *Server
	c   *rdns.Client
	met *rdnsMetrics
	cfg RDNSConfig
	log interface {
		Info(string, ...any)
		Warn(string, ...any)
	}
}

// run makes PowerDNS follow the state: a pass over the changed zones
// whenever reverse DNS changed (checked every 250 ms, so a burst of changes
// is one pass), a full pass over every zone when it starts (a new leader)
// and every Resync, and after a failure a full pass again with a doubling
// back-off up to RetryMax.
func (r *reconciler) run(ctx context.Context) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var done uint64 // the rdns_changed index the last good pass covered
	nextFull := time.Now()
	var retryAt time.Time
	backoff := time.Duration(0)
	for {
		var changed uint64
		_ = r.s.Node.FSM.Read(func(rt store.ReadTx) error { changed = rt.RDNSChanged(); return nil })
		now := time.Now()
		full := !now.Before(nextFull)
		due := full || changed != done
		if backoff > 0 {
			due, full = !now.Before(retryAt), true
		}
		if due {
			start := time.Now()
			covered, err := r.pass(ctx, full)
			r.met.duration.Observe(time.Since(start).Seconds())
			if err != nil && ctx.Err() == nil {
				r.met.passes.WithLabelValues("error").Inc()
			} else if err == nil {
				r.met.passes.WithLabelValues("ok").Inc()
			}
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				backoff = min(max(2*backoff, r.cfg.RetryInitial), r.cfg.RetryMax)
				retryAt = now.Add(backoff)
				r.log.Warn("powerdns reconcile failed; will retry", "err", err, "retry_in", backoff)
			default:
				if backoff > 0 {
					r.log.Info("powerdns reachable again; reverse zones in sync")
				}
				backoff, done, nextFull = 0, covered, now.Add(r.cfg.Resync)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// pass reconciles the zones that changed (every zone when full) from one
// consistent read of the state and records the outcome through Raft (one
// entry, only for zones whose synced index or error changed). It returns the
// rdns_changed index it covered, or the first error.
func (r *reconciler) pass(ctx context.Context, full bool) (uint64, error) {
	var (
		zones   []store.ReverseZone
		servers []store.Server
		applied uint64
		changed uint64
	)
	err := r.s.Node.FSM.Read(func(rt store.ReadTx) (err error) {
		applied, changed = rt.AppliedIndex(), rt.RDNSChanged()
		if zones, err = rt.ReverseZones(); err != nil || len(zones) == 0 {
			return err
		}
		servers, err = rt.AllServers()
		return err
	})
	if err != nil {
		return 0, err
	}
	desired := Desired(zones, servers)
	var results []fsm.ZoneSyncResult
	var firstErr error
	for _, z := range zones {
		if !full && !z.Removing && !z.Dirty() && z.LastError == "" {
			continue // PowerDNS has it as it stands
		}
		res := fsm.ZoneSyncResult{Zone: z.Zone}
		var err error
		if z.Removing {
			var pz rdns.Zone
			if pz, err = rdns.ParseZone(z.Zone); err == nil {
				err = r.c.DeleteZone(ctx, pz.FQDN())
			}
			if err == nil {
				r.met.changes.WithLabelValues("zone_delete").Inc()
				res.Deleted = true
				r.log.Info("reverse zone deleted from powerdns", "zone", z.Zone)
			}
		} else {
			var st rdns.Stats
			st, err = r.c.Sync(ctx, desired[z.Zone], rdns.Options{Nameservers: r.cfg.nameservers(), TTL: r.cfg.TTL})
			if err == nil {
				r.count(st)
			}
			if err == nil && (st.Created || st.Replaced > 0 || st.Delete > 0) {
				r.log.Info("reverse zone synced to powerdns", "zone", z.Zone, "created", st.Created, "replaced", st.Replaced, "deleted", st.Delete)
			}
		}
		switch {
		case err != nil:
			if firstErr == nil {
				firstErr = fmt.Errorf("zone %s: %w", z.Zone, err)
			}
			if msg := err.Error(); msg != z.LastError { // an unchanged error is not written again
				res.Error = msg
				results = append(results, res)
			}
		case res.Deleted:
			results = append(results, res)
		case z.Dirty() || z.LastError != "":
			res.Index = applied
			results = append(results, res)
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
	}
	if len(results) > 0 {
		if _, err := r.s.propose(ctx, fsm.CmdReverseZoneSynced, fsm.ReverseZoneSynced{Zones: results}); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("record sync state: %w", err)
		}
	}
	return changed, firstErr
}

// count adds what a successful Sync changed to the metrics.
func (r *reconciler) count(st rdns.Stats) {
	if st.Created {
		r.met.changes.WithLabelValues("zone_create").Inc()
	}
	r.met.changes.WithLabelValues("replace").Add(float64(st.Replaced))
	r.met.changes.WithLabelValues("delete").Add(float64(st.Delete))
}

// Desired is what PowerDNS should serve: for every mapped zone, the PTR of
// each address of a server not terminated whose longest mapped zone it is.
func Desired(zones []store.ReverseZone, servers []store.Server) map[string]rdns.Desired {
	live, _ := fsm.LiveZones(zones)
	out := make(map[string]rdns.Desired, len(live))
	for _, z := range live {
		out[z.Name] = rdns.Desired{Zone: z, PTRs: map[netip.Addr]string{}}
	}
	for _, s := range servers {
		if s.Status == api.ServerTerminated || len(s.PTRs) == 0 {
			continue
		}
		for _, ip := range fsm.ServerAddrs(s) {
			host := s.PTRs[ip.String()]
			if host == "" {
				continue
			}
			if z, ok := rdns.Match(live, ip); ok {
				out[z.Name].PTRs[ip] = host
			}
		}
	}
	return out
}

// dropRemovedZones is the leader job without PowerDNS: unmapped zones are
// dropped (nothing was published, nothing to delete).
func (s *Server) dropRemovedZones(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		var gone []fsm.ZoneSyncResult
		_ = s.Node.FSM.Read(func(rt store.ReadTx) error {
			zs, err := rt.ReverseZones()
			for _, z := range zs {
				if z.Removing {
					gone = append(gone, fsm.ZoneSyncResult{Zone: z.Zone, Deleted: true})
				}
			}
			return err
		})
		if len(gone) > 0 {
			if _, err := s.propose(ctx, fsm.CmdReverseZoneSynced, fsm.ReverseZoneSynced{Zones: gone}); err != nil && ctx.Err() == nil {
				s.log.Warn("drop unmapped reverse zones", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
