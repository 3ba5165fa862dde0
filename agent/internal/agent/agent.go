// Package agent wires the hostplane agent together and runs it.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hostplane/hostplane/agent/internal/config"
	"github.com/hostplane/hostplane/agent/internal/console"
	"github.com/hostplane/hostplane/agent/internal/hosting"
	"github.com/hostplane/hostplane/agent/internal/hypervisor"
	"github.com/hostplane/hostplane/agent/internal/journal"
	"github.com/hostplane/hostplane/agent/internal/localapi"
	"github.com/hostplane/hostplane/agent/internal/ops"
	"github.com/hostplane/hostplane/agent/internal/sitetls"
	"github.com/hostplane/hostplane/agent/internal/stats"
	"github.com/hostplane/hostplane/internal/clock"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
)

// ResolveDomainType turns "auto" into kvm or qemu.
func ResolveDomainType(t string) string {
	if t == "auto" {
		return hypervisor.DetectDomainType("/proc/cpuinfo", "/dev/kvm")
	}
	return t
}

// Run starts the agent and blocks until ctx ends: it opens the journal, connects to
// libvirt, settles operations a crash left running, then serves the local API and
// samples stats.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := checkBridges(cfg.Bridges); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	j, err := journal.Open(filepath.Join(cfg.DataDir, "journal.db"))
	if err != nil {
		return err
	}
	defer j.Close()
	var (
		hv  *hypervisor.Libvirt
		hvi hypervisor.Hypervisor // nil without the kvm role
	)
	domType := ""
	if cfg.HasRole(api.RoleKVM) {
		hv, err = hypervisor.NewLibvirt(ctx, hypervisor.LibvirtConfig{Socket: cfg.LibvirtSocket, PoolName: cfg.PoolName,
			PoolPath: cfg.PoolPath, Log: log.With("subsystem", "libvirt")})
		if err != nil {
			return err
		}
		defer hv.Close()
		if err := hv.EnsurePool(ctx); err != nil {
			return err
		}
		if len(cfg.Bridges) > 0 {
			if err := hv.EnsureTrafficFilters(ctx); err != nil {
				return err
			}
		}
		hvi = hv
		domType = ResolveDomainType(cfg.DomainType)
	}
	log.Info("agent starting", "roles", cfg.Roles, "domain_type", domType, "pool", cfg.PoolName, "socket", cfg.Socket, "bridges", cfg.Bridges)
	// The browser console (guests' screens: the kvm role only) is served
	// once the session knows the node (its certificate and the coordinators'
	// console key); a terminate closes the domain's open consoles.
	ccfg := console.Config{Listen: cfg.ConsoleListen, URL: cfg.ConsoleURL, CertFile: cfg.ConsoleTLSCert,
		KeyFile: cfg.ConsoleTLSKey, NoVNCDir: cfg.NoVNCDir, MaxPerServer: cfg.ConsoleMaxPerServer, Log: log.With("subsystem", "console")}
	if hv != nil {
		ccfg.Displays = hv
	} else {
		ccfg.Listen = ""
	}
	cons := console.New(ccfg)
	m := ops.New(ctx, ops.Config{DataDir: cfg.DataDir, DomainType: domType, Machine: cfg.Machine, Emulator: cfg.Emulator,
		StopGrace: cfg.StopGrace, Network: cfg.Network, Bridges: cfg.Bridges, MinFreeBytes: cfg.MinFreeBytes, Limits: validate.DefaultLimits,
		Failpoint: cfg.Failpoint, OnTerminate: cons.CloseDomain}, hvi, j, log.With("subsystem", "ops"), nil)
	if cfg.HasRole(api.RoleHosting) {
		hc := hosting.DefaultConfig()
		hc.Root, hc.HTTPListen, hc.MariaDBSocket = cfg.HostingRoot, cfg.HostingHTTPListen, cfg.HostingMariaDBSocket
		hc.SFTPGroup, hc.FPMGlob = cfg.HostingSFTPGroup, cfg.HostingFPMGlob
		hc.SFTPHost, hc.SFTPPort = cfg.HostingSFTPHost, cfg.HostingSFTPPort
		node, err := hosting.New(hc)
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		if cfg.HostingTLSListen != "" {
			tn, err := sitetls.Setup(node.L, sitetls.Options{Listen: cfg.HostingTLSListen, Mode: sitetls.Mode(cfg.HostingTLSMode), WebUser: hc.WebUser})
			if err != nil {
				return fmt.Errorf("hosting role: tls: %w", err)
			}
			defer tn.Close()
			log.Info("hosting tls ready", "listen", cfg.HostingTLSListen, "mode", tn.Mode)
			m.SetSiteTLS(tn)
		}
		if err := node.Start(ctx); err != nil {
			return fmt.Errorf("hosting role: %w", err)
		}
		if tn := m.SiteTLS(); tn != nil && tn.Changed() && !node.Nginx.Started() {
			// The TLS includes changed (first start with TLS, another mode or
			// listener) under an nginx that was already running: one reload,
			// rolled back on failure. An nginx this Start started read them
			// (Setup wrote them before): nothing to reload.
			if err := node.Nginx.Reload(ctx); err != nil {
				rerr := tn.Rollback()
				_ = node.Nginx.Reload(ctx)
				return fmt.Errorf("hosting role: tls: nginx refused the TLS configuration (previous one restored: %v): %w", rerr, err)
			}
		}
		log.Info("hosting role ready", "root", hc.Root, "http", hc.HTTPListen, "php_versions", node.PHPVersions())
		// Whether plans' disk allowances are enforced (btrfs qgroups) or only
		// reported, and why not.
		// With the accounts' limits set back to their plans' (Start), in
		// counts; stale qgroups of deleted sites are swept in the
		// background, now and hourly.
		if q := node.DiskQuota(); q.Enforced {
			lim := node.Limits()
			args := []any{"fs", q.FS, "enforced", true, "accounts_limited", lim.Limited, "limits_restored", lim.Restored,
				"limits_failed", lim.Failed, "accounts_not_enforced", lim.Plain}
			if lim.Err != nil {
				args = append(args, "first_error", lim.Err.Error())
			}
			log.Info("hosting disk allowances enforced", args...)
			sctx, stop := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { defer close(done); sweepQgroups(sctx, node, log) }()
			defer func() { stop(); <-done }()
		} else {
			log.Info("hosting disk allowances reported, not enforced", "fs", q.FS, "enforced", false, "reason", q.Why)
		}
		m.SetHosting(node)
	}
	if err := m.Recover(ctx); err != nil {
		return err
	}
	if hv == nil {
		return serve(ctx, cfg, log, j, m, nil, nil, noDomains{})
	}
	col := stats.New(hv, cfg.PoolPath, cfg.StatsRing, log.With("subsystem", "stats"), nil)
	return serve(ctx, cfg, log, j, m, col, cons, hv)
}

// qgroupSweepEvery is how often the agent clears the qgroups of deleted
// sites (hosting.Node.SweepStaleQgroups); it also sweeps at start.
const qgroupSweepEvery = time.Hour

// sweepQgroups sweeps the stale qgroups of node's deleted sites at once
// and every qgroupSweepEvery until ctx ends (hosting.Node.SweepQgroupsEvery),
// logging what went and what failed (nothing when there was nothing to
// clear).
func sweepQgroups(ctx context.Context, node *hosting.Node, log *slog.Logger) {
	node.SweepQgroupsEvery(ctx, clock.Real{}, qgroupSweepEvery, func(n int, err error) {
		switch {
		case err != nil:
			log.Warn("hosting: stale qgroups of deleted sites not cleared (tried again in an hour)", "cleared", n, "err", err)
		case n > 0:
			log.Info("hosting: stale qgroups of deleted sites cleared", "cleared", n)
		}
	})
}

// checkBridges fails the start, before anything is touched, when a
// configured bridge is missing, naming each. Once libvirt is connected,
// EnsureTrafficFilters fails it when libvirt cannot filter the guests on them
// (no clean-traffic nwfilter, no ebtables/iptables), saying what to install.
func checkBridges(bridges []string) error {
	var errs []error
	for _, b := range bridges {
		errs = append(errs, hypervisor.CheckBridge(b))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// serve runs the node's background work and serves the local API until ctx
// ends: the guest stats collector (col; nil without the kvm role, which has
// no libvirt and no guest stats), the journal pruner, the coordinator session
// (with the browser console cons, nil without the kvm role) and the systemd
// health notifications over domains.
func serve(ctx context.Context, cfg config.Config, log *slog.Logger, j *journal.DB, m *ops.Manager, col *stats.Collector, cons *console.Server, domains domainLister) error {
	var wg sync.WaitGroup
	defer wg.Wait() // the collector stops before libvirt and the journal close
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	if col != nil {
		wg.Add(1)
		go func() { defer wg.Done(); col.Run(sctx, cfg.StatsInterval) }()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		j.PruneEvery(sctx, cfg.JournalRetention, min(cfg.JournalRetention, time.Hour), time.Now, log.With("subsystem", "journal"))
	}()
	if err := startSession(sctx, cfg, log.With("subsystem", "session"), &wg, m, col, cons); err != nil {
		return err
	}
	srv := localapi.New(m, col, log.With("subsystem", "localapi"))
	wg.Add(1)
	go func() { defer wg.Done(); notifySystemd(sctx, log, domains, cfg.Socket) }()
	return srv.Serve(ctx, cfg.Socket)
}

// noDomains is the health check's domain lister on a node without libvirt.
type noDomains struct{}

func (noDomains) ListDomains(context.Context) ([]string, error) { return nil, nil }
