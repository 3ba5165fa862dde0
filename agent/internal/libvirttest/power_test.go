package libvirttest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/agent/internal/testenv"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestForcedStopAndPasswordReset: a guest that ignores ACPI is forced off after the
// grace and the result says so; password reset without a guest agent is refused
// clearly, and with a guest agent configured but not answering fails clearly too.
func TestForcedStopAndPasswordReset(t *testing.T) {
	e, ctx := bootEnv(t, "boots a guest three times and provisions a second", 6*time.Minute)
	c := e.c
	e.importTemplate(ctx, "noacpi", e.guest.Disk, e.guest.InitrdNoACPI, false)
	e.importTemplate(ctx, "with-ga", e.guest.Disk, e.guest.InitrdNoACPI, true)

	name := e.prefix + "-stubborn"
	vm := e.provision(ctx, e.prefix+"-prov", name, "noacpi").Result.VM
	waitReady(t, ctx, vm.ConsoleLog, 1)

	// Stats: the collector samples every 500 ms; the ring holds rates and counters.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := c.Stats(ctx, name)
		if err == nil && len(st.VMs[name]) >= 3 {
			ring := st.VMs[name]
			last := ring[len(ring)-1]
			if last.State != "running" || last.CPUTimeNs == 0 || last.MemoryBytes == 0 || last.DiskReadBytes == 0 || st.Host.MemoryTotal == 0 || st.Host.DiskTotal == 0 {
				t.Fatalf("stats: %+v host %+v", last, st.Host)
			}
			if !ring[0].Time.Before(last.Time) {
				t.Fatalf("ring not in time order: %+v", ring)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats never filled: %+v %v", st, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if all, err := c.Stats(ctx, ""); err != nil || len(all.VMs) != 1 {
		t.Fatalf("node stats shows other domains: %+v %v", all, err)
	}

	var ne *api.NodeError
	_, err := c.ResetPassword(ctx, name, api.NodePasswordResetRequest{OpID: e.prefix + "-pw", Password: "new-password-1"})
	if !errors.As(err, &ne) || ne.Code != api.NodeErrUnsupported || !strings.Contains(ne.Message, "guest agent") {
		t.Fatalf("password reset without guest agent: %v", err)
	}

	const grace = 3 * time.Second
	start := time.Now()
	op, err := c.Stop(ctx, name, api.NodeStopRequest{OpID: e.prefix + "-stop", GraceSeconds: int(grace / time.Second)})
	took := time.Since(start)
	if err != nil || op.Result.PowerMethod != api.NodePowerForced || !strings.Contains(op.Result.Message, "forced") {
		t.Fatalf("stop: %+v %v", op, err)
	}
	if took < grace {
		t.Fatalf("forced after %s, before the %s grace", took, grace)
	}
	if vm, _ := c.VM(ctx, name); vm.State != "shutoff" {
		t.Fatalf("state after forced stop: %s", vm.State)
	}
	// The next stats answer already says so, without waiting for a sample.
	if st, err := c.Stats(ctx, name); err != nil || st.VMs[name][len(st.VMs[name])-1].State != "shutoff" {
		t.Fatalf("stats right after the stop: %+v %v", st, err)
	}
	if strings.Contains(framework.ReadFile(t, vm.ConsoleLog), "clean-shutdown") {
		t.Fatal("guest without acpid shut down cleanly?")
	}

	// Reboot of a stopped VM starts it, and its result says so (the
	// reboot method "started", not a guest reboot or a reset); forced
	// reboot path of an ACPI-deaf guest.
	op, err = c.Reboot(ctx, name, api.NodeStopRequest{OpID: e.prefix + "-reboot0"})
	if err != nil || op.Result.PowerMethod != api.NodePowerStarted || op.Result.RebootMethod != api.NodeRebootStarted {
		t.Fatalf("reboot of stopped vm: %+v %v", op, err)
	}
	waitReady(t, ctx, vm.ConsoleLog, 2)
	pid := testenv.QEMUPID(t, name)
	op, err = c.Reboot(ctx, name, api.NodeStopRequest{OpID: e.prefix + "-reboot1", GraceSeconds: 2})
	if err != nil || op.Result.PowerMethod != api.NodePowerForced || op.Result.RebootMethod != api.NodeRebootReset {
		t.Fatalf("reboot of ACPI-deaf guest: %+v %v", op, err)
	}
	if bc, _ := waitReady(t, ctx, vm.ConsoleLog, 3); bc != "3" {
		t.Fatalf("after the forced reset: bootcount=%s", bc)
	}
	if got := testenv.QEMUPID(t, name); got != pid {
		t.Fatalf("forced reset replaced the QEMU process: pid %d → %d", pid, got)
	}
	if op, err := c.Start(ctx, name, e.prefix+"-start"); err != nil || op.Result.PowerMethod != api.NodePowerAlready {
		t.Fatalf("start of running vm: %+v %v", op, err)
	}

	// A template that declares a guest agent: the channel exists, nobody answers.
	ga := e.prefix + "-ga"
	gvm := e.provision(ctx, e.prefix+"-prov-ga", ga, "with-ga").Result.VM
	op, err = c.ResetPassword(ctx, ga, api.NodePasswordResetRequest{OpID: e.prefix + "-pw-ga", Password: "new-password-1"})
	if !errors.As(err, &ne) || ne.Code != api.NodeErrUnavailable || !strings.Contains(ne.Message, "guest agent") || op.State != api.NodeOpFailed {
		t.Fatalf("password reset with silent guest agent: %+v %v", op, err)
	}
	if rec, err := c.Operation(ctx, e.prefix+"-pw-ga"); err != nil || strings.Contains(string(mustJSON(rec)), "new-password-1") {
		t.Fatalf("journal record leaks the password or is missing: %v", err)
	}
	_ = gvm
	for _, n := range []string{name, ga} {
		if _, err := c.Terminate(ctx, n, e.prefix+"-term-"+n); err != nil {
			t.Fatal(err)
		}
	}
}
