package libvirttest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hostplane/hostplane/agent/internal/testenv"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// A reboot asks libvirt for a guest reboot (virDomainReboot): libvirt
// presses the ACPI power button and sets its fake-reboot flag on the domain,
// so that the guest's shutdown is followed by a reset instead of the end of
// QEMU. Only a reset (the guest's, the agent's forced one), a power-off or an
// ACPI shutdown request through libvirt clears the flag. A guest that does
// not hear the button (in its firmware, here) keeps it: its next shutdown,
// the customer's own poweroff days later, restarts it instead of stopping it.
// The agent's forced reset after the grace clears it; these tests cut the
// reboot's wait short before the grace, the two ways it happens, and check
// that the guest's own next power-off still stops the domain.

// TestRebootConnectionLostLeavesNoRebootPending: the agent's libvirt
// connection ends while a reboot waits for a guest that did not hear the
// button (libvirtd restarted; here libvirtd drops the agent's client,
// virt-admin client-disconnect). Before, the reboot failed at once without a
// reset ("whether it restarted is not known"), leaving libvirt's flag set:
// the guest's next poweroff restarted it. Now the reboot watches on on a new
// connection and resets the guest after the grace, and its result says the
// connection was lost; the guest's poweroff stops the domain.
func TestRebootConnectionLostLeavesNoRebootPending(t *testing.T) {
	e, ctx, name, console := pendingRebootEnv(t)
	const grace = 20
	done := make(chan *api.NodeOperation, 1)
	go func() {
		op, _ := e.c.Reboot(ctx, name, api.NodeStopRequest{OpID: e.prefix + "-reboot", GraceSeconds: grace})
		done <- op
	}()
	waitRebootPending(t, ctx, name, console)
	pid := agentPID(t, e)
	n := disconnectClients(t, pid)
	t.Logf("virt-admin dropped %d libvirt client connection(s) of the agent (pid %d)", n, pid)
	var op *api.NodeOperation
	select {
	case op = <-done:
	case <-ctx.Done():
		t.Fatalf("the reboot did not answer: %v", ctx.Err())
	}
	requireResetNoPending(t, ctx, e, name, console, op, "reboot", "its watch's connection lost", "connection to libvirtd was lost")
}

// TestRebootAgentKilledLeavesNoRebootPending: the agent dies (SIGKILL) while
// a reboot waits for a guest that did not hear the button. Before, the
// restarted agent marked the reboot interrupted and left libvirt's flag set:
// the guest's next poweroff restarted it. Now the restart watches out the
// rest of the grace and resets the guest; the replayed reboot says so; the
// guest's poweroff stops the domain.
func TestRebootAgentKilledLeavesNoRebootPending(t *testing.T) {
	e, ctx, name, console := pendingRebootEnv(t)
	const grace = 20
	opID := e.prefix + "-reboot"
	go func() { _, _ = e.c.Reboot(ctx, name, api.NodeStopRequest{OpID: opID, GraceSeconds: grace}) }()
	waitRebootPending(t, ctx, name, console)
	if err := syscall.Kill(agentPID(t, e), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e.stop() // waits for the exit
	e.startProcess("")
	op, _ := e.c.Reboot(ctx, name, api.NodeStopRequest{OpID: opID, GraceSeconds: grace})
	requireResetNoPending(t, ctx, e, name, console, op, "replayed reboot", "the agent killed meanwhile", "agent restart")
}

// requireResetNoPending checks op, the answer of the reboot (what names it)
// of a guest deaf to the button while the test cut its wait short (cut says
// how): that the guest's own power-off then stops the domain
// (requireNoRebootPending), and that op was a forced reset whose message
// says says.
func requireResetNoPending(t *testing.T, ctx context.Context, e *env, name, console string, op *api.NodeOperation, what, cut, says string) {
	t.Helper()
	if op == nil {
		t.Fatalf("the %s did not answer", what)
	}
	t.Logf("%s: state %s, result %+v, error %+v", what, op.State, op.Result, op.Error)
	requireNoRebootPending(t, ctx, e, name, console, op)
	if op.State != api.NodeOpSucceeded || op.Result.RebootMethod != api.NodeRebootReset || !strings.Contains(op.Result.Message, says) {
		t.Fatalf("%s of a guest deaf to the button, %s: %s %+v %+v; want a forced reset whose message says %q",
			what, cut, op.State, op.Result, op.Error, says)
	}
}

// pendingRebootEnv runs the agent binary with a VM of the test guest just
// provisioned: its QEMU has started and the guest is in its firmware, deaf
// to the ACPI button, for the reboot the test asks for next. (It used to
// wait for the guest's first boot and then reset it to get there: the same
// state after one more TCG boot, ≈ 30-90 s under the suite's load.)
func pendingRebootEnv(t *testing.T) (*env, context.Context, string, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the agent and boots a guest twice")
	}
	if _, err := exec.LookPath("virt-admin"); err != nil {
		t.Fatal("virt-admin not found (libvirt-clients): scripts/install-libvirt.sh installs it")
	}
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	t.Cleanup(cancel)
	e.startProcess("")
	e.importTemplate(ctx, "guest-a", e.guest.Disk, e.guest.Initrd, false)
	name := e.prefix + "-deaf"
	vm := e.provision(ctx, e.prefix+"-prov", name, "guest-a").Result.VM
	// Past the firmware's own resets (within 0.7 s of a reset on this rig;
	// a reset clears libvirt's flag), long before the guest's acpid runs.
	time.Sleep(2 * time.Second)
	return e, ctx, name, vm.ConsoleLog
}

// statusPending reports whether libvirt's fake-reboot flag is set on the
// domain: libvirtd keeps it in the domain's status file (<fakereboot/>,
// qemuDomainObjPrivateXMLFormat), not in any API.
func statusPending(t *testing.T, name string) bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/run/libvirt/qemu", name+".xml"))
	if err != nil {
		t.Fatalf("libvirt's status of %s: %v", name, err)
	}
	return strings.Contains(string(b), "<fakereboot/>")
}

// waitRebootPending waits until libvirt has taken the reboot request (its
// fake-reboot flag is set), and checks the guest did not hear it.
func waitRebootPending(t *testing.T, ctx context.Context, name, console string) {
	t.Helper()
	for !statusPending(t, name) {
		select {
		case <-ctx.Done():
			t.Fatalf("libvirt never took the reboot request: %v", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if c := framework.ReadFile(t, console); strings.Contains(c, "clean-shutdown") {
		t.Fatalf("the guest heard the reboot request pressed in its firmware; the test needs one it did not hear:\n%s", c)
	}
}

// agentPID is the process id of e's agent binary (startProcess), found by
// its socket on its command line.
func agentPID(t *testing.T, e *env) int {
	t.Helper()
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range dirs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) == 0 || filepath.Base(args[0]) != "hostplane-agent" {
			continue
		}
		for i, a := range args {
			if a == "-socket" && i+1 < len(args) && args[i+1] == e.cfg.Socket {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
				return pid
			}
		}
	}
	t.Fatalf("no agent process with -socket %s", e.cfg.Socket)
	return 0
}

// disconnectClients makes libvirtd drop every client connection of process
// pid (virt-admin client-disconnect) and returns how many it dropped.
func disconnectClients(t *testing.T, pid int) int {
	t.Helper()
	out, err := exec.Command("virt-admin", "-q", "srv-clients-list", "libvirtd").CombinedOutput()
	if err != nil {
		t.Fatalf("virt-admin srv-clients-list: %v: %s", err, out)
	}
	n := 0
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		info, err := exec.Command("virt-admin", "-q", "client-info", "libvirtd", f[0]).CombinedOutput()
		if err != nil {
			continue // gone meanwhile
		}
		if !strings.Contains(string(info), fmt.Sprintf("unix_process_id: %d\n", pid)) {
			continue
		}
		if out, err := exec.Command("virt-admin", "client-disconnect", "libvirtd", f[0]).CombinedOutput(); err != nil {
			t.Fatalf("virt-admin client-disconnect %s: %v: %s", f[0], err, out)
		}
		n++
	}
	if n == 0 {
		t.Fatalf("libvirtd lists no client connection of process %d:\n%s", pid, out)
	}
	return n
}

// requireNoRebootPending fails the test unless the guest's own power-off,
// once it has booted again after the reboot op, stops the domain: the
// guest's acpid powers it off on an ACPI button pressed through QEMU's
// monitor, not through libvirt (whose shutdown request would clear the flag),
// as a customer's poweroff inside the guest would.
func requireNoRebootPending(t *testing.T, ctx context.Context, e *env, name, console string, op *api.NodeOperation) {
	t.Helper()
	pending := statusPending(t, name)
	mark := len(framework.ReadFile(t, console))
	waitReady(t, ctx, console, len(testenv.Boots(framework.ReadFile(t, console)))+1)
	if out, err := exec.Command("virsh", "-q", "-c", "qemu:///system", "qemu-monitor-command", name, "--hmp", "system_powerdown").CombinedOutput(); err != nil {
		t.Fatalf("system_powerdown: %v: %s", err, out)
	}
	var downAt time.Time
	for {
		st, _ := exec.Command("virsh", "-q", "-c", "qemu:///system", "domstate", name).Output()
		after := framework.ReadFile(t, console)[mark:]
		i := strings.Index(after, "clean-shutdown")
		if downAt.IsZero() && i >= 0 {
			downAt = time.Now()
		}
		if strings.TrimSpace(string(st)) == "shut off" {
			if i < 0 {
				t.Fatalf("the domain stopped without the guest's clean shutdown:\n%s", after)
			}
			return
		}
		if i >= 0 && (len(testenv.Boots(after[i:])) > 0 || time.Since(downAt) > 30*time.Second) {
			t.Fatalf("after the reboot (%s: %+v %+v; libvirt's fake-reboot flag %v when it answered), the guest's own poweroff restarted it "+
				"instead of stopping the domain (domain %s); console since the reboot answered:\n%s",
				op.State, op.Result, op.Error, pending, strings.TrimSpace(string(st)), after)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the guest did not power off on the ACPI button: %v; console since the reboot answered:\n%s", ctx.Err(), after)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
