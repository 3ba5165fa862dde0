package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/hostplane/hostplane/agent/internal/actions"
	"github.com/hostplane/hostplane/agent/internal/config"
	"github.com/hostplane/hostplane/agent/internal/console"
	"github.com/hostplane/hostplane/agent/internal/ops"
	"github.com/hostplane/hostplane/agent/internal/session"
	"github.com/hostplane/hostplane/agent/internal/stats"
	"github.com/hostplane/hostplane/internal/consoletoken"
	"github.com/hostplane/hostplane/pkg/validate"
	"github.com/hostplane/hostplane/pkg/version"
	pb "github.com/hostplane/hostplane/proto"
	"github.com/shirou/gopsutil/v4/disk"
	"github.com/shirou/gopsutil/v4/mem"
)

// defaultNodeID is the host name, lower-cased, with characters a node id may
// not hold dropped.
func defaultNodeID() string {
	h, _ := os.Hostname()
	var b strings.Builder
	for _, c := range strings.ToLower(h) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || (b.Len() > 0 && (c == '-' || c == '.' || c == '_')) {
			b.WriteRune(c)
		}
	}
	if validate.NodeID(b.String()) != nil { // empty or too long
		return "node"
	}
	return b.String()
}

// hostHello reports what this host offers: its CPUs, memory and the pool's disk.
func hostHello(cfg config.Config) func() *pb.Hello {
	return func() *pb.Hello {
		c := &pb.Capacity{Vcpus: uint32(runtime.NumCPU())}
		if vm, err := mem.VirtualMemory(); err == nil {
			c.MemoryBytes = vm.Total
		}
		if du, err := disk.Usage(cfg.PoolPath); err == nil {
			c.DiskBytes = du.Total
		}
		host, _ := os.Hostname()
		return &pb.Hello{Roles: slices.Clone(cfg.Roles), Capacity: c, SoftwareVersion: version.Version, Hostname: host,
			Bridges: cfg.Bridges}
	}
}

// startSession runs the coordinator session in the background when coordinators
// are configured. A session failure is logged; the local API keeps serving.
// The session serves the coordinator's actions and stats requests through an
// actions.Executor over m and col, and reports the inventory.
func startSession(ctx context.Context, cfg config.Config, log *slog.Logger, wg *sync.WaitGroup, m *ops.Manager, col *stats.Collector, cons *console.Server) error {
	if len(cfg.Coordinators) == 0 {
		return nil
	}
	id := cfg.NodeID
	if id == "" {
		id = defaultNodeID()
	}
	// The executor tells the session when an action changed the inventory;
	// the session exists only after the executor, hence the indirection.
	var s *session.Agent
	var src actions.StatsSource
	if col != nil {
		src = col
	}
	ex := actions.New(actions.Config{Manager: m, Stats: src, Log: log.With("subsystem", "actions"),
		OnChange: func() { s.InventoryChanged() }})
	// Console tokens are checked against the key the coordinators tell in
	// their HelloAck, and hpc2 tokens' claims opened with the sealing key
	// they tell (protocol 1.5); the console's URL goes into every Hello.
	tokens := consoletoken.NewVerifier(id, nil)
	hello := hostHello(cfg)
	s, err := session.New(session.Config{
		Coordinators: cfg.Coordinators, JoinToken: cfg.JoinToken, NodeID: id,
		Dir: filepath.Join(cfg.DataDir, "session"), Log: log,
		Hello: func() *pb.Hello {
			h := hello()
			h.ConsoleUrl = cons.URL()
			if hn := m.Hosting(); hn != nil {
				// Where customers connect (shown in their accounts'
				// connection details), without waiting on MariaDB; the
				// usage reports carry it too, MariaDB asked afresh.
				h.HostingConnection = actions.HostingConnection(hn.HelloConnection(context.Background()))
			}
			return h
		},
		OnConsoleKey: func(k []byte) {
			if err := tokens.AddKey(k); err != nil {
				log.Warn("console key from the coordinator refused", "err", err)
			}
		},
		OnConsoleSealKey: func(k []byte) {
			if err := tokens.AddSealKey(k); err != nil {
				log.Warn("console sealing key from the coordinator refused", "err", err)
			}
		},
		Handle: ex.Handle, Inventory: ex.Inventory,
	})
	if err != nil {
		return err
	}
	nodeCert := func() (*tls.Certificate, error) {
		c := s.Creds()
		if c == nil {
			return nil, errors.New("the node is not enrolled yet")
		}
		t := c.TLS()
		return &t, nil
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		// The console listener serves the node's certificate, which a node
		// has once enrolled: it listens from then on (at once for a node
		// enrolled before), so nothing listens on its port before, rather
		// than a listener ending every handshake in a TLS alert. It is
		// bound before the session's first Hello, which tells its URL.
		// A renewed certificate needs no new listener: nodeCert is read
		// for each handshake.
		if s.Creds() == nil {
			if err := s.Enrol(ctx); err != nil {
				if !errors.Is(err, context.Canceled) {
					log.Error("coordinator session stopped", "err", err)
				}
				return
			}
		}
		if err := startConsole(ctx, cfg, cons, nodeCert, tokens); err != nil {
			// The agent's main work goes on; the coordinators answer console
			// requests for this node with console_unavailable.
			log.Error("browser console disabled", "err", err)
		}
		if err := s.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("coordinator session stopped", "err", err)
		}
	}()
	return nil
}

// startConsole serves the browser console with the ids of used tokens kept in
// the data directory (a token used before a restart stays refused).
func startConsole(ctx context.Context, cfg config.Config, cons *console.Server, nodeCert func() (*tls.Certificate, error), tokens *consoletoken.Verifier) error {
	if cons == nil || cfg.ConsoleListen == "" {
		return nil
	}
	used, err := console.OpenUsedLog(filepath.Join(cfg.DataDir, "console-used"), tokens, nil)
	if err != nil {
		return err
	}
	context.AfterFunc(ctx, func() { _ = used.Close() })
	err = cons.Start(ctx, nodeCert, tokens)
	if errors.Is(err, syscall.EADDRINUSE) {
		// Another agent (a second make run) or program has the port: say
		// how to choose another, as the coordinator does for its listeners.
		err = fmt.Errorf("%w (another agent or program listens there: stop it, or give this agent another --console-listen or %sCONSOLE_LISTEN, port 0 for any free one, or an empty one to turn the console off)", err, config.EnvPrefix)
	}
	return err
}
