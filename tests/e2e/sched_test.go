package e2e

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
)

// testScheduling: a cordoned node takes no new server (the placement error says
// why), drain lists the servers still on the node, uncordon lets placement use
// it again; a template the node does not hold is refused.
func (w *world) testScheduling(t *testing.T) {
	// Each admin call has a minute of its own: one context for the whole
	// test ran out under load, when the server's creation (a guest's boot,
	// its own 2 minutes) had taken most of it before the drain was asked.
	call := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		t.Cleanup(cancel)
		return ctx
	}
	adm := w.c.AnyAlive(nil).Admin()
	node := w.agent.ID
	d, err := adm.CordonNode(call(), node)
	if err != nil || !d.Cordoned || d.Draining {
		t.Fatalf("cordon: %+v %v", d, err)
	}
	_, err = adm.CreateServer(call(), api.AdminServerCreateRequest{AccountID: w.account, Plan: "nano", Template: tplA})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusConflict || ae.Code != "no_capacity" || !strings.Contains(ae.Message, "cordoned") {
		t.Fatalf("create on the only, cordoned node: want 409 no_capacity naming the cordon, got %v", err)
	}
	if n, err := adm.AgentNode(call(), node); err != nil || !n.Cordoned {
		t.Fatalf("node show after cordon: %+v %v", n, err)
	}
	if d, err = adm.UncordonNode(call(), node); err != nil || d.Cordoned {
		t.Fatalf("uncordon: %+v %v", d, err)
	}
	_, err = adm.CreateServer(call(), api.AdminServerCreateRequest{AccountID: w.account, Plan: "nano", Template: "no-such-template"})
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusConflict || !strings.Contains(ae.Message, "no-such-template") {
		t.Fatalf("create with a template no node holds: want 409 naming it, got %v", err)
	}
	created := w.createServer(t, "sched")
	d, err = adm.DrainNode(call(), node)
	if err != nil || !d.Draining || !d.Cordoned {
		t.Fatalf("drain: %+v %v", d, err)
	}
	found := false
	for _, s := range d.Servers {
		found = found || s.ID == created.Server.ID
	}
	if !found || d.Used.VCPUs < 1 {
		t.Fatalf("drain lists %d servers (used %+v), want %s among them", len(d.Servers), d.Used, created.Server.ID)
	}
	if _, err = adm.UncordonNode(call(), node); err != nil {
		t.Fatal(err)
	}
	// Terminated servers leave the node's list.
	c := w.api(nil)
	acc := c.accept(func(ctx context.Context, cl *client.Client) (api.ActionAccepted, error) {
		return cl.TerminateServer(ctx, created.Server.ID, "")
	})
	c.waitSuccess(acc.Action.ID, time.Minute)
	if d, err = adm.AgentNodeDetail(call(), node); err != nil {
		t.Fatal(err)
	}
	for _, s := range d.Servers {
		if s.ID == created.Server.ID {
			t.Fatalf("terminated server %s still listed on node %s", s.ID, node)
		}
	}
}
