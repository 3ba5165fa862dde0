package agent

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/hostplane/hostplane/agent/internal/config"
	"github.com/hostplane/hostplane/agent/internal/session"
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
	if b.Len() == 0 || b.Len() > 63 {
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
		return &pb.Hello{Roles: []string{"kvm"}, Capacity: c, SoftwareVersion: version.Version, Hostname: host}
	}
}

// startSession runs the coordinator session in the background when coordinators
// are configured. A session failure is logged; the local API keeps serving.
func startSession(ctx context.Context, cfg config.Config, log *slog.Logger, wg *sync.WaitGroup) error {
	if len(cfg.Coordinators) == 0 {
		return nil
	}
	id := cfg.NodeID
	if id == "" {
		id = defaultNodeID()
	}
	s, err := session.New(session.Config{
		Coordinators: cfg.Coordinators, JoinToken: cfg.JoinToken, NodeID: id,
		Dir: filepath.Join(cfg.DataDir, "session"), Hello: hostHello(cfg), Log: log,
	})
	if err != nil {
		return err
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("coordinator session stopped", "err", err)
		}
	}()
	return nil
}
