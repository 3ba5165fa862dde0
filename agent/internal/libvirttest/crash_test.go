package libvirttest

import (
	"context"
	"errors"
	"github.com/hostplane/hostplane/agent/internal/testenv"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
)

// crashAt runs fn against an agent process that SIGKILLs itself when an operation
// reaches failpoint, waits for the death, then restarts the agent normally.
func (e *env) crashAt(t *testing.T, failpoint string, fn func(c *client.NodeClient) error) {
	t.Helper()
	if e.stop != nil {
		e.stop()
	}
	done := e.startProcess(failpoint)
	err := fn(e.c)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("agent did not die at failpoint %s (call returned %v)", failpoint, err)
	}
	if err == nil {
		t.Fatalf("call succeeded although the agent died at %s", failpoint)
	}
	if !strings.Contains(e.agentLog(), "failpoint: killing the agent") {
		t.Fatalf("agent died but not at the failpoint:\n%s", e.agentLog())
	}
	e.startProcess("")
}

// TestCrashRecovery kills the agent process mid-provision and mid-reinstall, restarts
// it and replays the same operation ids: nothing runs twice and each VM is either
// done or cleanly failed.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the agent and boots guests")
	}
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	e.startProcess("")
	e.importTemplate(ctx, "guest-a", e.guest.Disk, e.guest.Initrd, false)
	e.importTemplate(ctx, "guest-b", e.guest.DiskAlt, e.guest.Initrd, false)

	// 1. Killed after the disk and seed exist, before the domain is defined:
	//    the restart rolls back and the replay reports a clean failure.
	early := e.prefix + "-early"
	e.crashAt(t, "vm.provision:seed-created", func(c *client.NodeClient) error {
		_, err := c.Provision(ctx, e.provisionReq(e.prefix+"-p-early", early, "guest-a"))
		return err
	})
	op, err := e.c.Provision(ctx, e.provisionReq(e.prefix+"-p-early", early, "guest-a"))
	var ne *api.NodeError
	if !errors.As(err, &ne) || ne.Code != api.NodeErrInterrupted || op.State != api.NodeOpFailed || !op.Replayed ||
		!strings.Contains(ne.Message, "no VM exists") {
		t.Fatalf("replay after early crash: %+v %v", op, err)
	}
	e.requireGone(early, "a rolled-back provision")

	// 2. Killed after the domain is defined: the restart completes the provision.
	name := e.prefix + "-late"
	e.crashAt(t, "vm.provision:defined", func(c *client.NodeClient) error {
		_, err := c.Provision(ctx, e.provisionReq(e.prefix+"-p-late", name, "guest-a"))
		return err
	})
	op, err = e.c.Provision(ctx, e.provisionReq(e.prefix+"-p-late", name, "guest-a"))
	if err != nil || op.State != api.NodeOpSucceeded || !op.Replayed || op.Result.VM.State != "running" {
		t.Fatalf("replay after late crash: %+v %v", op, err)
	}
	vm := op.Result.VM
	_, idA := waitReady(t, ctx, vm.ConsoleLog, 1)
	if _, err := e.c.CreateSnapshot(ctx, name, api.NodeSnapshotCreateRequest{OpID: e.prefix + "-snap", Name: "before"}); err != nil {
		t.Fatal(err)
	}

	// 3. Killed mid-reinstall (new volumes made, domain not yet switched): the restart
	//    resumes it; the replay returns the one result; the guest boots once, fresh.
	oldDisk := vm.DiskVolume
	e.crashAt(t, "vm.reinstall:volumes-created", func(c *client.NodeClient) error {
		_, err := c.Reinstall(ctx, name, api.NodeReinstallRequest{OpID: e.prefix + "-reinst", Template: "guest-b", RootPassword: "another-pass-2"})
		return err
	})
	op, err = e.c.Reinstall(ctx, name, api.NodeReinstallRequest{OpID: e.prefix + "-reinst", Template: "guest-b", RootPassword: "another-pass-2"})
	if err != nil || op.State != api.NodeOpSucceeded || !op.Replayed || op.Result.VM.Template != "guest-b" ||
		len(op.Result.SnapshotsRemoved) != 1 || !strings.Contains(op.Result.Message, "resumed after an agent restart") {
		t.Fatalf("replay after reinstall crash: %+v %v", op, err)
	}
	bc, idB := waitReady(t, ctx, vm.ConsoleLog, 2)
	if bc != "1" || idB == idA {
		t.Fatalf("after resumed reinstall: bootcount=%s install-id=%s (old %s)", bc, idB, idA)
	}
	var roots []string
	for _, f := range poolFiles(t, e.cfg.PoolPath) {
		if strings.HasPrefix(f, name+"-root-") {
			roots = append(roots, f)
		}
	}
	if len(roots) != 1 || roots[0] == oldDisk || roots[0] != op.Result.VM.DiskVolume {
		t.Fatalf("root volumes after resumed reinstall: %v (old %s)", roots, oldDisk)
	}
	if got := testenv.ReadGuestFile(t, filepath.Join(e.cfg.PoolPath, roots[0]), "/bootcount"); got != "1" {
		t.Fatalf("bootcount on new disk %s: reinstall ran twice?", got)
	}

	// 4. Killed mid-terminate after the undefine: the restart finishes the deletion.
	e.crashAt(t, "vm.terminate:undefined", func(c *client.NodeClient) error {
		_, err := c.Terminate(ctx, name, e.prefix+"-term")
		return err
	})
	op, err = e.c.Terminate(ctx, name, e.prefix+"-term")
	if err != nil || op.State != api.NodeOpSucceeded || !op.Replayed {
		t.Fatalf("replay after terminate crash: %+v %v", op, err)
	}
	e.requireGone(name, "resumed terminate")
}
