// Package reconcile is the leader's job that makes PowerDNS Authoritative
// serve the PTR names recorded in the replicated state: for each mapped
// reverse zone, the PTR rrsets of the addresses it hosts (longest match),
// created, replaced and deleted through PowerDNS's HTTP API. The outcome of
// each pass is recorded through Raft (fsm.CmdReverseZoneSynced), so every
// coordinator shows whether an address's PTR is in sync.
package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/rdns"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/internal/clock"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the reconciler's Prometheus metrics (the coordinator serves
// them on --metrics-addr); make them once per process.
type Metrics struct {
	passes   *prometheus.CounterVec // result: ok, error
	changes  *prometheus.CounterVec // change: replace, delete, zone_create, zone_delete
	duration prometheus.Histogram

	collectors []prometheus.Collector
}

// NewMetrics makes the metrics; state feeds the pending-zones gauge.
func NewMetrics(state store.Reader) *Metrics {
	r := &Metrics{
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
		_ = state.Read(func(rt store.ReadTx) error {
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
	r.collectors = []prometheus.Collector{r.passes, r.changes, r.duration, pending}
	return r
}

// Collectors are the metrics to register.
func (m *Metrics) Collectors() []prometheus.Collector { return m.collectors }

// Config is how the reconciler works.
type Config struct {
	// Nameservers are the NS names of the zones it creates.
	Nameservers []string
	// TTL of the PTR rrsets.
	TTL int
	// Resync: a full pass this often even with no change.
	Resync time.Duration
	// RetryInitial and RetryMax bound the back-off while PowerDNS cannot be
	// reached.
	RetryInitial, RetryMax time.Duration
	// Now is the clock the pass's command is stamped at (a zone's synced_at):
	// the cluster's (httpapi API.Now), never earlier than the entries
	// applied, so a zone is not shown synced before it was mapped on a
	// leader whose clock is behind (nil: time.Now). The passes' own timing
	// (Resync, the back-off) stays on the wall clock.
	Now func() time.Time
}

// Applier proposes a command through Raft (the API's apply).
type Applier func(ctx context.Context, env *fsm.Envelope) (*fsm.Result, error)

// Reconciler makes PowerDNS serve the PTR names of the replicated state.
// Run it on the leader, once per term; it keeps nothing between runs beyond
// what the FSM holds.
type Reconciler struct {
	c     *rdns.Client
	state store.Reader
	apply Applier
	met   *Metrics
	cfg   Config
	log   *slog.Logger
}

// New makes a reconciler for PowerDNS reached through c.
func New(c *rdns.Client, cfg Config, state store.Reader, apply Applier, met *Metrics, log *slog.Logger) *Reconciler {
	if cfg.TTL <= 0 {
		cfg.TTL = 3600
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 5 * time.Minute
	}
	if cfg.RetryInitial <= 0 {
		cfg.RetryInitial = 500 * time.Millisecond
	}
	if cfg.RetryMax < cfg.RetryInitial {
		cfg.RetryMax = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Reconciler{c: c, state: state, apply: apply, met: met, cfg: cfg, log: log}
}

func (r *Reconciler) propose(ctx context.Context, t fsm.CommandType, payload any) error {
	now := time.Now
	if r.cfg.Now != nil {
		now = r.cfg.Now // nil in DropRemoved's, whose command stores no time
	}
	env, err := fsm.NewEnvelope(t, now(), payload)
	if err != nil {
		return err
	}
	_, err = r.apply(ctx, env)
	return err
}

// Run makes PowerDNS follow the state: a pass over the changed zones
// whenever reverse DNS changed (checked every 250 ms, so a burst of changes
// is one pass), a full pass over every zone when it starts (a new leader)
// and every Resync, and after a failure a full pass again with a doubling
// back-off up to RetryMax.
func (r *Reconciler) Run(ctx context.Context) {
	var done uint64 // the rdns_changed index the last good pass covered
	nextFull := time.Now()
	var retryAt time.Time
	backoff := time.Duration(0)
	rc, _ := r.state.(interface{ Restores() uint64 })
	var restores uint64
	if rc != nil {
		restores = rc.Restores()
	}
	clock.Every(ctx, 250*time.Millisecond, func() {
		var changed uint64
		_ = r.state.Read(func(rt store.ReadTx) error { changed = rt.RDNSChanged(); return nil })
		now := time.Now()
		if rc != nil {
			// A restore replaced the state PowerDNS followed: a zone the
			// backup holds as synced is served as the replaced state said.
			if n := rc.Restores(); n != restores {
				restores, nextFull = n, now
			}
		}
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
	})
}

// pass reconciles the zones that changed (every zone when full) from one
// consistent read of the state and records the outcome through Raft (one
// entry, only for zones whose synced index or error changed). It returns the
// rdns_changed index it covered, or the first error.
func (r *Reconciler) pass(ctx context.Context, full bool) (uint64, error) {
	var (
		zones   []store.ReverseZone
		servers []store.Server
		applied uint64
		changed uint64
		epoch   uint64
	)
	err := r.state.Read(func(rt store.ReadTx) (err error) {
		applied, changed, epoch = readIndex(rt), rt.RDNSChanged(), rt.RestoreEpoch()
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
			st, err = r.c.Sync(ctx, desired[z.Zone], rdns.Options{Nameservers: r.cfg.Nameservers, TTL: r.cfg.TTL})
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
	if full {
		if err := r.dropUnmapped(ctx, zones); err != nil && firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
	}
	if len(results) > 0 {
		if err := r.propose(ctx, fsm.CmdReverseZoneSynced, fsm.ReverseZoneSynced{Zones: results, StateEpoch: epoch}); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("record sync state: %w", err)
		}
	}
	return changed, firstErr
}

// dropUnmapped deletes from PowerDNS the zones of this cluster's account
// (rdns.Client.Account, --pdns-account) that the state does not map: a zone
// only a state that a `cluster restore` replaced held (its unmapping is not
// in the restored state's log), or one whose deletion was lost. Without an
// account it deletes nothing (the default: a PowerDNS several clusters
// share without accounts of their own keeps every cluster's zones). A zone
// of another account (made by hand, or another cluster's) stays, whatever
// its name. A deposed
// leader still in a full pass over its older state may delete a zone the
// new leader has just mapped; the new leader's next pass creates it again.
func (r *Reconciler) dropUnmapped(ctx context.Context, zones []store.ReverseZone) error {
	if r.c.Account == "" {
		return nil
	}
	owned, err := r.c.OwnedZones(ctx)
	if err != nil {
		return err
	}
	mapped := make(map[string]bool, len(zones))
	for _, z := range zones {
		mapped[strings.ToLower(strings.TrimSuffix(z.Zone, "."))] = true
	}
	for _, name := range owned {
		key := strings.ToLower(strings.TrimSuffix(name, "."))
		if _, err := rdns.ParseZone(key); err != nil || mapped[key] {
			continue // not a zone hostplane could have made
		}
		if err := r.c.DeleteZone(ctx, name); err != nil {
			return fmt.Errorf("zone %s (not mapped): %w", name, err)
		}
		r.met.changes.WithLabelValues("zone_delete").Inc()
		r.log.Info("reverse zone not mapped in the state deleted from powerdns", "zone", name)
	}
	return nil
}

// readIndex is the index a pass that read rt reports PowerDNS serves the
// state at: from semantics level fsm.LevelRestoreEpoch the state's event
// index (its applied index plus the offset a restore from a longer log
// raised), which reverse DNS counts in from that level (fsm rdnsIndex);
// below it the applied index (unless the state holds a restore epoch: a
// level-10 backup restored at 11, as fsm's rdnsIndex).
func readIndex(rt store.ReadTx) uint64 {
	if fsm.RestoreRulesHold(rt.ClusterLevel(), rt.RestoreEpoch()) {
		return rt.AppliedIndex() + rt.EventIndexOffset()
	}
	return rt.AppliedIndex()
}

// count adds what a successful Sync changed to the metrics.
func (r *Reconciler) count(st rdns.Stats) {
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

// DropRemoved is the leader job without PowerDNS: unmapped zones are
// dropped (nothing was published, nothing to delete).
func DropRemoved(ctx context.Context, state store.Reader, apply Applier, log *slog.Logger) {
	r := &Reconciler{state: state, apply: apply}
	warned := false
	clock.Every(ctx, time.Second, func() {
		var gone []fsm.ZoneSyncResult
		_ = r.state.Read(func(rt store.ReadTx) error {
			zs, err := rt.ReverseZones()
			for _, z := range zs {
				if z.Removing {
					gone = append(gone, fsm.ZoneSyncResult{Zone: z.Zone, Deleted: true})
				} else if !warned {
					warned = true
					log.Warn("reverse zones are mapped but no PowerDNS is configured (--pdns-api-url): their PTR names are only recorded", "zone", z.Zone)
				}
			}
			return err
		})
		if len(gone) > 0 {
			if err := r.propose(ctx, fsm.CmdReverseZoneSynced, fsm.ReverseZoneSynced{Zones: gone}); err != nil && ctx.Err() == nil {
				log.Warn("drop unmapped reverse zones", "err", err)
			}
		}
	})
}
