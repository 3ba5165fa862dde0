package domains

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestLeaderKilledBeforeCallAndLostAnswers: (1) the leader is SIGKILLed
// after a nameserver change was recorded and before the registry was called
// (domainreg:before-call); the next leader makes the call, once. (2) The
// registry applies a registration and a nameserver change but their answers
// are lost (eppd's drop-after-apply): the coordinator repeats with the same
// clTRID, the customer sees the registration active and the change applied,
// and the registry applied each once, charged once.
func TestLeaderKilledBeforeCallAndLostAnswers(t *testing.T) {
	r := newRig(t)
	r.credit(2 * yearly)
	d := r.registered("early.test")

	li := r.c.WaitLeader(20 * time.Second)
	leader := r.c.Nodes[li]
	if err := os.WriteFile(failpointFile(leader), []byte("domainreg:before-call"), 0o600); err != nil {
		t.Fatal(err)
	}
	st0 := r.reg.Stats()
	go r.apis[(li+1)%r.c.Len()].Try(r.key, "PATCH", "/v1/domains/"+d.ID, `{"nameservers":["ns1.before.net","ns2.before.net"]}`, nil)
	select {
	case <-leader.Exited():
	case <-time.After(30 * time.Second):
		t.Fatal("the leader did not reach the failpoint before the registry call")
	}
	r.c.Kill(li)
	if st := r.reg.Stats(); st.Applied != st0.Applied {
		t.Fatalf("the registry applied %d commands before the call: %+v", st.Applied-st0.Applied, st)
	}
	waitFor(t, "the change made by the next leader", func() bool {
		got := r.domain(d.ID)
		return got.Change != nil && got.Change.Status == api.ChangeApplied && got.Nameservers[0] == "ns1.before.net"
	})
	if ns := strings.Join(r.registry("early.test").NS, ","); ns != "ns1.before.net,ns2.before.net" {
		t.Fatalf("registry nameservers %s", ns)
	}
	if n, st := r.reg.Applied("domain:update", "early.test"), r.reg.Stats(); n != 1 || st.Applied-st0.Applied != 1 {
		t.Fatalf("the registry applied %d updates of early.test, %d commands; want 1 and 1: %+v", n, st.Applied-st0.Applied, r.reg.Transactions("domain:update", "early.test"))
	}

	// Lost answers, with two coordinators left: a registration.
	st0 = r.reg.Stats()
	r.reg.DropNextOn("domain:create", 1, true)
	rep := r.register("lost.test", 1, nil)
	if rep.Status != 201 {
		t.Fatalf("register with its answer lost: %s", rep)
	}
	var lost api.Domain
	rep.Decode(t, &lost)
	if lost.Status != api.DomainActive || !r.registry("lost.test").ExDate.Equal(*lost.ExpiresAt) {
		t.Fatalf("registered %+v, registry %+v", lost, r.registry("lost.test"))
	}
	st := r.reg.Stats()
	if st.Applied-st0.Applied != 2 || st.Replayed-st0.Replayed < 1 {
		t.Fatalf("registry: %d applied (want 2: the contact and the domain), %d replayed (want ≥ 1, the repeat): %+v", st.Applied-st0.Applied, st.Replayed-st0.Replayed, st)
	}
	if txs := r.reg.Transactions("domain:create", "lost.test"); len(txs) != 1 || txs[0].Code >= 2000 {
		t.Fatalf("registry transactions creating lost.test: %+v", txs)
	}
	if b := r.balance(); b != 0 {
		t.Fatalf("balance %d: two one-year registrations from %d", b, 2*yearly)
	}

	// A nameserver change whose answer is lost.
	st0 = r.reg.Stats()
	r.reg.DropNextOn("domain:update", 1, true)
	rep = r.call(-1, "PATCH", "/v1/domains/"+lost.ID, `{"nameservers":["ns1.lost.net","ns2.lost.net"]}`, nil)
	if rep.Status != 200 || !strings.Contains(string(rep.Body), `"status":"applied"`) {
		t.Fatalf("change with its answer lost: %s", rep)
	}
	if ns := strings.Join(r.registry("lost.test").NS, ","); ns != "ns1.lost.net,ns2.lost.net" {
		t.Fatalf("registry nameservers %s", ns)
	}
	if st := r.reg.Stats(); st.Applied-st0.Applied != 1 || r.reg.Applied("domain:update", "lost.test") != 1 {
		t.Fatalf("registry applied %d commands (want 1): %+v", st.Applied-st0.Applied, r.reg.Transactions("domain:update", "lost.test"))
	}
	if st := r.reg.Stats(); st.DropAfter != 0 {
		t.Fatalf("the dropped answer was not reached: %+v", st)
	}
}
