// Package testenv connects the agent's libvirt driver to the real libvirtd for
// agent tests. Finding libvirtd and the test guest, names and cleanup are
// tests/framework/testenv's (shared with the whole-system tests); the names are
// re-exported here so agent tests need one import.
package testenv

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/hostplane/hostplane/agent/internal/hypervisor"
	fenv "github.com/hostplane/hostplane/tests/framework/testenv"
)

// Setup is the command that prepares a machine for these tests.
const Setup = fenv.Setup

// Guest is the test guest's files.
type Guest = fenv.Guest

// BalloonGuestVersion is the first test guest whose VMs report their memory
// through the memory balloon (tests/framework/testenv).
const BalloonGuestVersion = fenv.BalloonGuestVersion

// Re-exported from tests/framework/testenv.
var (
	LibvirtSocket = fenv.LibvirtSocket
	RepoRoot      = fenv.RepoRoot
	RequireGuest  = fenv.RequireGuest
	// RequireNetGuest is the networked test guest (tests/framework/testenv).
	RequireNetGuest = fenv.RequireNetGuest
	RequireLibvirt  = fenv.RequireLibvirt
	// RequireGuestVersion fails a test whose cached guest is too old.
	RequireGuestVersion = fenv.RequireGuestVersion
	Prefix              = fenv.Prefix
	Logger              = fenv.Logger
	Cleanup             = fenv.Cleanup
	WaitForLog          = fenv.WaitForLog
	LastReady           = fenv.LastReady
	Boots               = fenv.Boots
	SHA256File          = fenv.SHA256File
	ReadGuestFile       = fenv.ReadGuestFile
	QEMUPID             = fenv.QEMUPID
	QEMURSS             = fenv.QEMURSS
)

// Hypervisor connects to libvirtd with a fresh pool under a temp dir; everything is
// removed when the test ends.
func Hypervisor(tb testing.TB) (*hypervisor.Libvirt, string) {
	tb.Helper()
	RequireLibvirt(tb)
	prefix := Prefix()
	dir := tb.TempDir()
	pool := prefix + "-pool"
	Cleanup(tb, prefix, pool)
	h := connect(tb, hypervisor.LibvirtConfig{
		Socket: LibvirtSocket(), PoolName: pool, PoolPath: filepath.Join(dir, "pool"), Log: Logger(tb)})
	return h, prefix
}

// HypervisorFor connects to an existing pool (one the agent under test created).
func HypervisorFor(tb testing.TB, pool, path string) (*hypervisor.Libvirt, error) {
	tb.Helper()
	h := connect(tb, hypervisor.LibvirtConfig{
		Socket: LibvirtSocket(), PoolName: pool, PoolPath: path, Log: slog.New(slog.DiscardHandler)})
	return h, nil
}

// connect opens cfg's libvirt connection and pool, closed when the test ends.
func connect(tb testing.TB, cfg hypervisor.LibvirtConfig) *hypervisor.Libvirt {
	tb.Helper()
	h, err := hypervisor.NewLibvirt(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("connect libvirt: %v: run %s", err, Setup)
	}
	tb.Cleanup(func() { h.Close() })
	if err := h.EnsurePool(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return h
}
