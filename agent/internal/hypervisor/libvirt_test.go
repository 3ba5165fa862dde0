package hypervisor_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/agent/internal/hypervisor"
	"github.com/hostplane/hostplane/agent/internal/testenv"
	"libvirt.org/go/libvirtxml"
)

// guestOverlay is the domain tests' set-up (skipped with -short: they boot a
// guest): the test guest, a hypervisor with a fresh pool, the guest's disk
// copied into the pool as base.qcow2 and a 1 GiB overlay of it,
// PREFIX-root.qcow2. ctx ends with the test, within 5 minutes: a test boots
// the guest up to twice (a reboot), and a TCG boot on a loaded machine took
// more than a minute (TestLibvirtRebootWatchConnectionLost ran out of 2
// minutes in a CI beside four other engineers' work, load 20-30).
func guestOverlay(t *testing.T) (ctx context.Context, g testenv.Guest, h *hypervisor.Libvirt, prefix, base string, disk hypervisor.Volume) {
	t.Helper()
	if testing.Short() {
		t.Skip("boots a guest")
	}
	g = testenv.RequireGuest(t)
	h, prefix = testenv.Hypervisor(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)

	base = filepath.Join(h.PoolPath(), "base.qcow2")
	b, _ := os.ReadFile(g.Disk)
	if err := os.WriteFile(base, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.RefreshPool(ctx); err != nil {
		t.Fatal(err)
	}
	disk, err := h.CreateOverlay(ctx, prefix+"-root.qcow2", base, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, g, h, prefix, base, disk
}

func TestLibvirtDomainBasics(t *testing.T) {
	ctx, g, h, prefix, base, disk := guestOverlay(t)
	if disk.Capacity != 1<<30 {
		t.Fatalf("capacity %d", disk.Capacity)
	}
	seedVol, err := h.CreateVolumeFromBytes(ctx, prefix+"-seed.iso", make([]byte, 4096))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.CreateOverlay(ctx, prefix+"-root.qcow2", base, 1<<30); !errors.Is(err, hypervisor.ErrExists) {
		t.Fatalf("second create: want ErrExists, got %v", err)
	}
	logPath := filepath.Join(t.TempDir(), "console.log")
	name := prefix + "-vm"
	spec := hypervisor.DomainSpec{Name: name, Type: "qemu", Machine: "pc", Emulator: "/usr/bin/qemu-system-x86_64",
		VCPUs: 1, MemoryMiB: 128, Kernel: g.Kernel, Initrd: g.Initrd, Cmdline: g.Cmdline, DiskPath: disk.Path,
		SeedPath: seedVol.Path, MAC: "52:54:00:aa:bb:01", Network: "user", ConsoleLog: logPath}
	uuid, err := h.DefineDomain(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(uuid) != 36 {
		t.Fatalf("uuid %q", uuid)
	}
	if st, _ := h.DomainState(ctx, name); st != hypervisor.StateShutoff {
		t.Fatalf("state %s", st)
	}
	if p, err := h.DomainDisk(ctx, name); err != nil || p != disk.Path {
		t.Fatalf("disk %q %v", p, err)
	}
	if err := h.StartDomain(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, err := testenv.WaitForLog(ctx, logPath, "GUEST-READY", 1); err != nil {
		t.Fatal(err)
	}
	if err := h.CreateSnapshot(ctx, name, "s1", "first"); err != nil {
		t.Fatal(err)
	}
	snaps, err := h.ListSnapshots(ctx, name)
	if err != nil || len(snaps) != 1 || snaps[0].Name != "s1" || snaps[0].State != "running" || snaps[0].VMStateBytes == 0 || !snaps[0].Current {
		t.Fatalf("snapshots %+v %v", snaps, err)
	}
	stats, err := h.AllDomainStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range stats {
		if s.Name == name {
			found = true
			if s.State != hypervisor.StateRunning || s.CPUTimeNs == 0 || s.MemoryBytes == 0 {
				t.Fatalf("stats %+v", s)
			}
		}
	}
	if !found {
		t.Fatal("no stats for domain")
	}
	if err := h.SetUserPassword(ctx, name, "root", "x"); err == nil {
		t.Fatal("password reset without guest agent succeeded")
	} else if !errors.Is(err, hypervisor.ErrUnsupported) && !errors.Is(err, hypervisor.ErrGuestAgent) {
		t.Fatalf("password reset: %v", err)
	}
	if err := h.ShutdownDomain(ctx, name); err != nil {
		t.Fatal(err)
	}
	for {
		st, _ := h.DomainState(ctx, name)
		if st == hypervisor.StateShutoff {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("no shutdown")
		}
		time.Sleep(100 * time.Millisecond)
	}
	log, _ := os.ReadFile(logPath)
	if !strings.Contains(string(log), "clean-shutdown") {
		t.Fatalf("no clean shutdown in %s", log)
	}
	if err := h.RevertSnapshot(ctx, name, "s1"); err != nil {
		t.Fatal(err)
	}
	if st, _ := h.DomainState(ctx, name); st != hypervisor.StateRunning {
		t.Fatalf("after revert to running snapshot: %s", st)
	}
	if err := h.DestroyDomain(ctx, name); err != nil {
		t.Fatal(err)
	}
	if err := h.DestroyDomain(ctx, name); err != nil {
		t.Fatalf("second destroy: %v", err)
	}
	if err := h.UndefineDomain(ctx, name); err != nil {
		t.Fatal(err)
	}
	if st, _ := h.DomainState(ctx, name); st != hypervisor.StateMissing {
		t.Fatalf("after undefine %s", st)
	}
	for _, v := range []string{disk.Name, seedVol.Name, disk.Name} {
		if err := h.DeleteVolume(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.Volume(ctx, disk.Name); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Fatalf("volume after delete: %v", err)
	}
}

// TestLibvirtMemoryWithoutBalloon: a domain defined without a memory balloon
// (as every domain was before DomainXML added one; it keeps that definition
// until it is redefined) reports no guest figures, and its memory figure falls
// back to one that is more than zero and at most the domain's memory, though
// the QEMU process's resident set is larger.
func TestLibvirtMemoryWithoutBalloon(t *testing.T) {
	ctx, g, h, prefix, _, disk := guestOverlay(t)
	logPath := filepath.Join(t.TempDir(), "console.log")
	name := prefix + "-old"
	const memMiB = 128
	x, err := hypervisor.DomainXML(hypervisor.DomainSpec{Name: name, Type: "qemu", Machine: "pc", Emulator: "/usr/bin/qemu-system-x86_64",
		VCPUs: 1, MemoryMiB: memMiB, Kernel: g.Kernel, Initrd: g.Initrd, Cmdline: g.Cmdline, DiskPath: disk.Path,
		MAC: "52:54:00:aa:bb:02", Network: "user", ConsoleLog: logPath})
	if err != nil {
		t.Fatal(err)
	}
	var d libvirtxml.Domain
	if err := d.Unmarshal(x); err != nil {
		t.Fatal(err)
	}
	d.Devices.MemBalloon = &libvirtxml.DomainMemBalloon{Model: "none"}
	if x, err = d.Marshal(); err != nil {
		t.Fatal(err)
	}
	xmlPath := filepath.Join(t.TempDir(), "old.xml")
	if err := os.WriteFile(xmlPath, []byte(x), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("virsh", "-q", "-c", "qemu:///system", "define", xmlPath).CombinedOutput(); err != nil {
		t.Fatalf("virsh define: %v: %s", err, out)
	}
	if err := h.StartDomain(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, err := testenv.WaitForLog(ctx, logPath, "GUEST-READY", 1); err != nil {
		t.Fatal(err)
	}
	// Past the balloon's statistics period: no guest figure comes late.
	time.Sleep((hypervisor.BalloonStatsPeriod + 1) * time.Second)
	stats, err := h.AllDomainStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var s *hypervisor.DomainStats
	for i := range stats {
		if stats[i].Name == name {
			s = &stats[i]
		}
	}
	if s == nil {
		t.Fatal("no stats for the domain")
	}
	rss := testenv.QEMURSS(t, name)
	t.Logf("memory %d MiB from %s; QEMU resident %d MiB; domain %d MiB", s.MemoryBytes>>20, s.MemorySource, rss>>20, memMiB)
	if s.MemoryBytes == 0 || s.MemoryBytes > memMiB<<20 || s.MemorySource != hypervisor.MemoryHost {
		t.Fatalf("memory without a balloon: %d bytes from %q, want more than 0, at most %d MiB, from %q", s.MemoryBytes, s.MemorySource, memMiB, hypervisor.MemoryHost)
	}
	if err := h.DestroyDomain(ctx, name); err != nil {
		t.Fatal(err)
	}
}
