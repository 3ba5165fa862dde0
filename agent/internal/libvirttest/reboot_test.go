package libvirttest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestRebootBackToBack: a reboot asked for right after the previous one
// finished answers for itself. The guest is then still in its firmware,
// which resets the machine once or twice more, each reset bringing a late
// RESET and reboot event, and which does not hear the ACPI power button.
// Before, the second reboot took those events for its own and said the guest
// had restarted on its request, at once, when it had not shut down; now it
// waits for the guest's shutdown after its request, and, the button not
// heard, resets the guest after the grace and says so. A reboot that says
// the guest restarted on its request shows that guest's clean shutdown on
// the console.
func TestRebootBackToBack(t *testing.T) {
	e, ctx := bootEnv(t, "boots a guest twice", 4*time.Minute)
	e.importTemplate(ctx, "guest-a", e.guest.Disk, e.guest.Initrd, false)
	name := e.prefix + "-twice"
	vm := e.provision(ctx, e.prefix+"-prov", name, "guest-a").Result.VM
	waitReady(t, ctx, vm.ConsoleLog, 1)

	const grace = 10 // s: a guest deaf to the second request is reset after it
	var ops []*api.NodeOperation
	for i := 1; i <= 2; i++ {
		op, err := e.c.Reboot(ctx, name, api.NodeStopRequest{OpID: fmt.Sprintf("%s-reboot%d", e.prefix, i), GraceSeconds: grace})
		if err != nil {
			t.Fatalf("reboot %d: %v", i, err)
		}
		ops = append(ops, op)
	}
	requireGuestReboot(t, ops[0], vm.ConsoleLog)
	console := framework.ReadFile(t, vm.ConsoleLog)
	for i, op := range ops {
		// The guest prints "clean-shutdown <its bootcount>" before it
		// powers off, so before the reset that ends the shutdown.
		if op.Result.RebootMethod == api.NodeRebootGuest && !strings.Contains(console, fmt.Sprintf("clean-shutdown %d", i+1)) {
			t.Fatalf("reboot %d says the guest restarted on its ACPI request (%s), but boot %d never shut down:\nconsole:\n%s",
				i+1, op.Result.Message, i+1, console)
		}
		if m := op.Result.RebootMethod; m != api.NodeRebootGuest && m != api.NodeRebootReset {
			t.Fatalf("reboot %d: reboot_method %q: %+v", i+1, m, op.Result)
		}
	}
	// The first reboot's guest boots. A third boot, after the second
	// reboot's forced reset, is not waited for: in this rig a guest with the
	// seed CD-ROM, reset after one guest reboot, hangs before its init
	// prints (seen without the agent too; stop-44 notes).
	if bc, _ := waitReady(t, ctx, vm.ConsoleLog, 2); bc != "2" {
		t.Fatalf("boot 2: bootcount=%s", bc)
	}
	t.Logf("second reboot: %s (%s)", ops[1].Result.RebootMethod, ops[1].Result.Message)
	if _, err := e.c.Terminate(ctx, name, e.prefix+"-term"); err != nil {
		t.Fatal(err)
	}
}
