package hypervisor_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hostplane/hostplane/agent/internal/hypervisor"
	"github.com/hostplane/hostplane/agent/internal/testenv"
)

// TestLibvirtNetGuestReportsMemory: the networked test guest's VMs report
// their memory through the domain's balloon (MemoryBalloon), as the other
// test guests' do since BalloonGuestVersion: its initrd loads virtio_balloon
// (before net-3 it did not, and its VMs showed the host's fallback figure).
func TestLibvirtNetGuestReportsMemory(t *testing.T) {
	ctx, _, h, prefix, _, disk := guestOverlay(t)
	ng := testenv.RequireNetGuest(t)
	logPath := filepath.Join(t.TempDir(), "console.log")
	name := prefix + "-net"
	spec := hypervisor.DomainSpec{Name: name, Type: "qemu", Machine: "pc", Emulator: "/usr/bin/qemu-system-x86_64",
		VCPUs: 1, MemoryMiB: 128, Kernel: ng.Kernel, Initrd: ng.Initrd, Cmdline: ng.Cmdline, DiskPath: disk.Path,
		MAC: "52:54:00:aa:bb:07", Network: "user", ConsoleLog: logPath}
	if _, err := h.DefineDomain(ctx, spec); err != nil {
		t.Fatal(err)
	}
	defer h.UndefineDomain(ctx, name)
	if err := h.StartDomain(ctx, name); err != nil {
		t.Fatal(err)
	}
	defer h.DestroyDomain(ctx, name)
	if _, err := testenv.WaitForLog(ctx, logPath, "GUEST-READY", 1); err != nil {
		t.Fatal(err)
	}
	// The driver reports every BalloonStatsPeriod seconds.
	deadline := time.Now().Add(6 * hypervisor.BalloonStatsPeriod * time.Second)
	for {
		all, err := h.AllDomainStats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var st hypervisor.DomainStats
		for _, s := range all {
			if s.Name == name {
				st = s
			}
		}
		if st.MemorySource == hypervisor.MemoryBalloon && st.MemoryBytes > 0 && st.MemoryBytes <= 128<<20 {
			t.Logf("memory %d MiB from the guest's balloon", st.MemoryBytes>>20)
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("the networked guest's memory after %d s: %d MiB from %q, want the guest's figure (%q)\nconsole:\n%s",
				6*hypervisor.BalloonStatsPeriod, st.MemoryBytes>>20, st.MemorySource, hypervisor.MemoryBalloon, b)
		}
		time.Sleep(time.Second)
	}
}
