package libvirttest

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestProvisionRollback: a provision that fails at its last step (start: the libvirt
// network does not exist) undoes every earlier step — no domain, volume or seed.
func TestProvisionRollback(t *testing.T) {
	e, ctx := newStartedEnv(t, time.Minute)
	e.importTemplate(ctx, "guest", e.guest.Disk, e.guest.Initrd, false)
	before := poolFiles(t, e.cfg.PoolPath)

	name := e.prefix + "-rb"
	req := e.provisionReq(e.prefix+"-rb-op", name, "guest")
	req.Network = "network:hp-missing"
	op, err := e.c.Provision(ctx, req)
	var ne *api.NodeError
	if !errors.As(err, &ne) || op == nil || op.State != api.NodeOpFailed || ne.Code != api.NodeErrNotFound || !strings.Contains(ne.Message, "start") {
		t.Fatalf("provision on a missing network: %+v %v", op, err)
	}
	if strings.Contains(ne.Message, "hp-missing'") {
		t.Logf("message: %s", ne.Message)
	}
	if domainExists(name) {
		t.Fatal("domain left behind")
	}
	if after := poolFiles(t, e.cfg.PoolPath); !slices.Equal(after, before) {
		t.Fatalf("volumes left behind: %v → %v", before, after)
	}
	if vms, _ := e.c.VMs(ctx); len(vms) != 0 {
		t.Fatalf("registry not rolled back: %+v", vms)
	}
	// The failure is the recorded answer for this id.
	again, err := e.c.Provision(ctx, req)
	if !errors.As(err, &ne) || !again.Replayed || again.State != api.NodeOpFailed {
		t.Fatalf("replay of the failed provision: %+v %v", again, err)
	}
	// The name is free again for a new operation.
	op = e.provision(ctx, e.prefix+"-rb-op2", name, "guest")
	if op.State != api.NodeOpSucceeded {
		t.Fatalf("provision after rollback: %+v", op)
	}
	if _, err := e.c.Terminate(ctx, name, e.prefix+"-rb-term"); err != nil {
		t.Fatal(err)
	}
}
