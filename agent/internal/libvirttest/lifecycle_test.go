package libvirttest

import (
	"errors"
	"github.com/hostplane/hostplane/agent/internal/testenv"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestLifecycle drives one guest through provision → reboot → snapshot → reboot →
// revert → reinstall → graceful stop → terminate, checking the guest's own evidence
// (boot counter, install-id, clean-shutdown) at every step.
func TestLifecycle(t *testing.T) {
	e, ctx := bootEnv(t, "boots a guest four times", 10*time.Minute)
	c := e.c

	tplA := e.importTemplate(ctx, "guest-a", e.guest.Disk, e.guest.Initrd, false)
	e.importTemplate(ctx, "guest-b", e.guest.DiskAlt, e.guest.Initrd, false)
	if tplA.SizeBytes != 32<<20 || tplA.Kernel == "" {
		t.Fatalf("template a: %+v", tplA)
	}
	// Importing with a wrong checksum fails and leaves nothing.
	_, err := c.ImportTemplate(ctx, api.NodeTemplateImportRequest{OpID: e.prefix + "-badsum", Name: "bad", OSFamily: "linux",
		ImagePath: e.guest.Disk, SHA256: strings.Repeat("0", 64)})
	var ne *api.NodeError
	if !errors.As(err, &ne) || ne.Code != api.NodeErrChecksumFailed {
		t.Fatalf("bad checksum import: %v", err)
	}
	if ts, _ := c.Templates(ctx); len(ts) != 2 {
		t.Fatalf("templates after bad import: %+v", ts)
	}

	name := e.prefix + "-life"
	provID := e.prefix + "-prov"
	op := e.provision(ctx, provID, name, "guest-a")
	vm := op.Result.VM
	if op.State != api.NodeOpSucceeded || vm.State != "running" || vm.DomainType != "qemu" {
		t.Fatalf("provision: %+v %+v", op, vm)
	}
	// Replays: same id → recorded result, nothing done; same id other input → rejected.
	again, err := c.Provision(ctx, e.provisionReq(provID, name, "guest-a"))
	if err != nil || !again.Replayed || again.Result.VM.UUID != vm.UUID {
		t.Fatalf("replay: %+v %v", again, err)
	}
	other := e.provisionReq(provID, name, "guest-a")
	other.Plan.MemoryMiB = 256
	if _, err := c.Provision(ctx, other); !errors.As(err, &ne) || ne.Code != api.NodeErrConflict {
		t.Fatalf("replay with other input: %v", err)
	}
	if _, err := c.Provision(ctx, e.provisionReq(e.prefix+"-prov2", name, "guest-a")); !errors.As(err, &ne) || ne.Code != api.NodeErrAlreadyExists {
		t.Fatalf("second provision of the same name: %v", err)
	}

	bc, idA := waitReady(t, ctx, vm.ConsoleLog, 1)
	if bc != "1" || idA == "" {
		t.Fatalf("boot 1: bootcount=%s install-id=%s", bc, idA)
	}

	pid := testenv.QEMUPID(t, name)
	op, err = c.Reboot(ctx, name, api.NodeStopRequest{OpID: e.prefix + "-reboot1"})
	if err != nil {
		t.Fatalf("reboot: %v", err)
	}
	requireGuestReboot(t, op, vm.ConsoleLog)
	if bc, _ := waitReady(t, ctx, vm.ConsoleLog, 2); bc != "2" {
		t.Fatalf("boot 2: bootcount=%s", bc)
	}
	if !strings.Contains(framework.ReadFile(t, vm.ConsoleLog), "clean-shutdown") {
		t.Fatal("the guest did not shut down on the ACPI reboot request")
	}
	if got := testenv.QEMUPID(t, name); got != pid {
		t.Fatalf("reboot replaced the QEMU process: pid %d → %d", pid, got)
	}

	op, err = c.CreateSnapshot(ctx, name, api.NodeSnapshotCreateRequest{OpID: e.prefix + "-snap", Name: "s1", Description: "after boot 2"})
	if err != nil || op.Result.Snapshot.Name != "s1" || op.Result.Snapshot.State != "running" {
		t.Fatalf("snapshot: %+v %v", op, err)
	}
	snaps, err := c.Snapshots(ctx, name)
	if err != nil || len(snaps) != 1 || snaps[0].VMStateBytes == 0 || snaps[0].Description != "after boot 2" || snaps[0].CreatedAt.IsZero() {
		t.Fatalf("snapshots: %+v %v", snaps, err)
	}

	op, err = c.Reboot(ctx, name, api.NodeStopRequest{OpID: e.prefix + "-reboot2"})
	if err != nil {
		t.Fatal(err)
	}
	requireGuestReboot(t, op, vm.ConsoleLog)
	if bc, _ := waitReady(t, ctx, vm.ConsoleLog, 3); bc != "3" {
		t.Fatalf("boot 3: bootcount=%s", bc)
	}
	diskPath := filepath.Join(e.cfg.PoolPath, vm.DiskVolume)
	if got := testenv.ReadGuestFile(t, diskPath, "/bootcount"); got != "3" {
		t.Fatalf("disk bootcount before revert: %s", got)
	}

	op, err = c.RevertSnapshot(ctx, name, "s1", e.prefix+"-revert")
	if err != nil || op.Result.VM.State != "running" {
		t.Fatalf("revert: %+v %v", op, err)
	}
	if got := testenv.ReadGuestFile(t, diskPath, "/bootcount"); got != "2" {
		t.Fatalf("disk bootcount after revert: %s, want 2", got)
	}

	readyBefore := strings.Count(framework.ReadFile(t, vm.ConsoleLog), "GUEST-READY")
	op, err = c.Reinstall(ctx, name, api.NodeReinstallRequest{OpID: e.prefix + "-reinstall", Template: "guest-b", RootPassword: "another-pass-2"})
	if err != nil {
		t.Fatalf("reinstall: %v", err)
	}
	if !slices.Equal(op.Result.SnapshotsRemoved, []string{"s1"}) || op.Result.VM.UUID != vm.UUID || op.Result.VM.MAC != vm.MAC || op.Result.VM.Template != "guest-b" {
		t.Fatalf("reinstall result: %+v %+v", op.Result, op.Result.VM)
	}
	bc, idB := waitReady(t, ctx, vm.ConsoleLog, readyBefore+1)
	if bc != "1" || idB == idA || idB == "" {
		t.Fatalf("after reinstall: bootcount=%s install-id=%s (old %s)", bc, idB, idA)
	}
	if snaps, _ := c.Snapshots(ctx, name); len(snaps) != 0 {
		t.Fatalf("snapshots after reinstall: %+v", snaps)
	}
	if _, err := os.Stat(diskPath); !os.IsNotExist(err) {
		t.Fatalf("old disk still present: %v", err)
	}

	op, err = c.Stop(ctx, name, api.NodeStopRequest{OpID: e.prefix + "-stop"})
	if err != nil || op.Result.PowerMethod != api.NodePowerGraceful {
		t.Fatalf("stop: %+v %v", op, err)
	}
	if !strings.Contains(framework.ReadFile(t, vm.ConsoleLog), "clean-shutdown 1") {
		t.Fatalf("no clean-shutdown in console log")
	}
	op, err = c.Stop(ctx, name, api.NodeStopRequest{OpID: e.prefix + "-stop-again"})
	if err != nil || op.Result.PowerMethod != api.NodePowerAlready {
		t.Fatalf("stop of a stopped vm: %+v %v", op, err)
	}

	// Offline snapshot; reverting a running VM to it brings it back stopped.
	op, err = c.CreateSnapshot(ctx, name, api.NodeSnapshotCreateRequest{OpID: e.prefix + "-snap-off", Name: "off"})
	if err != nil || op.Result.Snapshot.State != "shutoff" {
		t.Fatalf("offline snapshot: %+v %v", op, err)
	}
	if _, err := c.CreateSnapshot(ctx, name, api.NodeSnapshotCreateRequest{OpID: e.prefix + "-snap-dup", Name: "off"}); !errors.As(err, &ne) || ne.Code != api.NodeErrAlreadyExists {
		t.Fatalf("duplicate snapshot name: %v", err)
	}
	if _, err := c.Start(ctx, name, e.prefix+"-start-b"); err != nil {
		t.Fatal(err)
	}
	op, err = c.RevertSnapshot(ctx, name, "off", e.prefix+"-revert-off")
	if err != nil || op.Result.VM.State != "shutoff" {
		t.Fatalf("revert to offline snapshot: %+v %v", op, err)
	}
	if _, err := c.DeleteSnapshot(ctx, name, "off", e.prefix+"-snap-del"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RevertSnapshot(ctx, name, "off", e.prefix+"-revert-gone"); !errors.As(err, &ne) || ne.Code != api.NodeErrNotFound {
		t.Fatalf("revert to deleted snapshot: %v", err)
	}

	op, err = c.Terminate(ctx, name, e.prefix+"-term")
	if err != nil || op.State != api.NodeOpSucceeded {
		t.Fatalf("terminate: %+v %v", op, err)
	}
	op, err = c.Terminate(ctx, name, e.prefix+"-term")
	if err != nil || !op.Replayed || op.State != api.NodeOpSucceeded {
		t.Fatalf("second terminate: %+v %v", op, err)
	}
	e.requireGone(name, "terminate")
	if vms, _ := c.VMs(ctx); len(vms) != 0 {
		t.Fatalf("vms after terminate: %+v", vms)
	}
	if _, err := c.VM(ctx, name); !errors.As(err, &ne) || ne.Code != api.NodeErrNotFound {
		t.Fatalf("show after terminate: %v", err)
	}
}

// requireGuestReboot fails the test unless the reboot op of a guest that
// honours ACPI says the guest rebooted on the request (power_method
// graceful, reboot_method guest-acpi), with the console, which shows whether
// the guest restarted before any forced reset, in the message.
func requireGuestReboot(t *testing.T, op *api.NodeOperation, consoleLog string) {
	t.Helper()
	if op.Result.PowerMethod != api.NodePowerGraceful || op.Result.RebootMethod != api.NodeRebootGuest {
		t.Fatalf("reboot %s: power_method %q reboot_method %q (%s), want a guest reboot: %+v\nconsole:\n%s",
			op.ID, op.Result.PowerMethod, op.Result.RebootMethod, op.Result.Message, op, framework.ReadFile(t, consoleLog))
	}
}
