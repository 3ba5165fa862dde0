package hypervisor_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/agent/internal/hypervisor"
	"github.com/hostplane/hostplane/agent/internal/testenv"
)

// TestEnsureTrafficFilters: the real libvirtd accepts the agent's filters
// (twice: the definition is idempotent, as at every agent start) and shows
// them as defined, the IPv6-only one ending in no-other-l2-traffic. Without
// libvirt's standard filters or ebtables/iptables this fails saying what to
// install (scripts/install-nwfilter.sh).
func TestEnsureTrafficFilters(t *testing.T) {
	h, _ := testenv.Hypervisor(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < 2; i++ {
		if err := h.EnsureTrafficFilters(ctx); err != nil {
			t.Fatalf("define the agent's nwfilters (run %d): %v", i+1, err)
		}
	}
	for name, want := range map[string]string{
		hypervisor.DualStackFilter: "<filterref filter='clean-traffic'/>",
		hypervisor.IPv6OnlyFilter:  "<filterref filter='no-other-l2-traffic'/>",
	} {
		out, err := exec.Command("virsh", "-q", "-c", "qemu:///system", "nwfilter-dumpxml", name).CombinedOutput()
		if err != nil || !strings.Contains(string(out), want) || !strings.Contains(string(out), "<filterref filter='no-ipv6-spoofing'/>") {
			t.Fatalf("nwfilter %s in libvirt: %v\n%s", name, err, out)
		}
	}
}
