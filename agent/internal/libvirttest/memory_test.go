package libvirttest

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/agent/internal/testenv"
	"github.com/hostplane/hostplane/tests/framework"
)

// testMemoryIsTheGuests (TestRealGuestAgent's guest, booted and its
// qemu-ga answering): a running guest's memory figure in the agent's stats
// is what the guest itself uses, not QEMU's resident set: more than zero, at
// most the plan's memory, within a few MiB of the guest's own /proc/meminfo
// (MemTotal − MemAvailable, read through qemu-ga), and it rises by about what
// the guest allocates (40 MiB written to a tmpfs).
func testMemoryIsTheGuests(t *testing.T, ctx context.Context, e *env, name, console string, plan uint64) {
	testenv.RequireGuestVersion(t, e.guest, testenv.BalloonGuestVersion)

	// The balloon driver reports every few seconds: wait for a figure within
	// 8 MiB of the guest's own, read just before and after the sample.
	const slack = 8 << 20
	settle := func(what string, ok func(figure, guest uint64) bool) (uint64, uint64) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		var figure, guest uint64
		for {
			before := guestUsed(t, name)
			figure = lastMemory(t, ctx, e, name)
			after := guestUsed(t, name)
			guest = (before + after) / 2
			if figure == 0 || figure > plan {
				t.Fatalf("%s: memory %d bytes (%d MiB), want more than 0 and at most the plan's %d MiB", what, figure, figure>>20, plan>>20)
			}
			if diff(figure, guest) <= slack+diff(before, after) && ok(figure, guest) {
				return figure, guest
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: memory %d MiB, the guest uses %d MiB (MemTotal − MemAvailable) after 60 s; QEMU's resident set is %d MiB\nconsole:\n%s",
					what, figure>>20, guest>>20, testenv.QEMURSS(t, name)>>20, framework.ReadFile(t, console))
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	idle, guestIdle := settle("idle guest", func(uint64, uint64) bool { return true })
	t.Logf("idle: stats %d MiB, guest %d MiB, QEMU resident %d MiB, plan %d MiB", idle>>20, guestIdle>>20, testenv.QEMURSS(t, name)>>20, plan>>20)

	// 40 MiB in a tmpfs of its own (the root tmpfs is half the guest's memory,
	// mostly taken by the initramfs): memory the guest cannot drop.
	const fill = 40 << 20
	if out := guestExec(t, name, "mkdir -p /fill && mount -t tmpfs -o size=64m fill /fill && dd if=/dev/zero of=/fill/x bs=1M count=40 && echo FILLED"); !strings.Contains(out, "FILLED") {
		t.Fatalf("filling a tmpfs in the guest: %s", out)
	}
	busy, guestBusy := settle("after 40 MiB allocated", func(figure, _ uint64) bool { return figure >= idle+fill-slack })
	t.Logf("after 40 MiB in a tmpfs: stats %d MiB, guest %d MiB, QEMU resident %d MiB", busy>>20, guestBusy>>20, testenv.QEMURSS(t, name)>>20)
}

// lastMemory is the newest memory figure in the agent's stats of vm.
func lastMemory(t *testing.T, ctx context.Context, e *env, vm string) uint64 {
	t.Helper()
	st, err := e.c.Stats(ctx, vm)
	if err != nil {
		t.Fatalf("stats: %v", err)
	}
	ring := st.VMs[vm]
	if len(ring) == 0 {
		return 0
	}
	last := ring[len(ring)-1]
	if last.State != "running" {
		t.Fatalf("stats: %s is %s, want running", vm, last.State)
	}
	return last.MemoryBytes
}

// guestUsed is MemTotal − MemAvailable from the guest's /proc/meminfo.
func guestUsed(t *testing.T, dom string) uint64 {
	t.Helper()
	out := guestExec(t, dom, "cat /proc/meminfo")
	kib := map[string]uint64{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 2 {
			v, _ := strconv.ParseUint(f[1], 10, 64)
			kib[strings.TrimSuffix(f[0], ":")] = v
		}
	}
	total, avail := kib["MemTotal"], kib["MemAvailable"]
	if total == 0 || avail == 0 || avail > total {
		t.Fatalf("the guest's /proc/meminfo: %q", out)
	}
	return (total - avail) << 10
}

func diff(a, b uint64) uint64 {
	if a > b {
		return a - b
	}
	return b - a
}
