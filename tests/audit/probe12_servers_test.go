package audit

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// probe12Req is one request of a burst sent at once: to coordinator i.
type probe12Req struct {
	name         string
	i            int
	method, path string
	body         any
}

// atOnce sends every request through send at the same moment and returns
// the answers in order.
func atOnce(reqs []probe12Req, send func(probe12Req) framework.Reply) []framework.Reply {
	out := make([]framework.Reply, len(reqs))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for k, q := range reqs {
		wg.Go(func() {
			<-start
			out[k] = send(q)
		})
	}
	close(start)
	wg.Wait()
	return out
}

// burst sends every request at the same moment, each with an
// Idempotency-Key of its own (tag + its name), and returns the answers in
// order.
func (r *netRig) burst(tag string, reqs []probe12Req) []framework.Reply {
	return atOnce(reqs, func(q probe12Req) framework.Reply {
		return r.call(q.i, r.keyA, q.method, q.path, q.body, map[string]string{"Idempotency-Key": tag + "-" + q.name})
	})
}

// TestProbe12ServerConflictsAcrossCoordinators: one customer's conflicting
// requests on one server sent at the same moment through the three
// coordinators (a script with a bug, two browser tabs), with the node's
// agent holding what it is sent so that the first accepted action is still
// under way when the others arrive.
//
// SPEC.md / README: one mutating action per server at a time, another a 409
// action_in_progress naming it. So of power on, power off, reboot, reinstall
// and destroy of one server at once (rounds until the destroy wins one, three
// at most) exactly one is a 202 and the other four are that 409 naming its
// action; the agent is sent that one action alone. While another server's
// destroy is under way, every other action (and the destroy again, under
// another Idempotency-Key) is the 409 naming the destroy; a rename and a
// reverse-DNS name set then are recorded (the server is still there). The
// destroys then end cleanly: each server is terminated, shows no address, its
// reverse-DNS names are gone from PowerDNS, its addresses are in quarantine
// (none still allocated), no action of it is left open, and a rename, a
// reverse-DNS name, a power action or a destroy after it are refused and
// charge nothing; the wallet is not debited after it.
func TestProbe12ServerConflictsAcrossCoordinators(t *testing.T) {
	r := newNetRig(t, "198.51.100.0/28", 3600)
	// A's calls (and the waits for actions, which poll) on a key whose
	// budget the test cannot spend.
	r.keyA = r.keyOfA(t, api.KeyCreateRequest{Name: "probe12", Scopes: api.AllScopes, RateLimitPerMin: 6000})
	r.c.Credit(r.ctx, r.accA.ID, 2*serverPrice)
	type srv struct {
		api.Server
		v4, v6 string
	}
	var servers [2]srv
	for k := range servers {
		servers[k].Server = r.order(k, r.keyA, fmt.Sprint("probe12-srv", k))
		servers[k].v4, servers[k].v6 = r.addrs(r.keyA, servers[k].ID)
	}
	path := func(s srv) string { return "/v1/servers/" + s.ID }
	ptr := func(s srv, ip string) string { return path(s) + "/ips/" + ip + "/ptr" }
	for k, s := range servers {
		if rep := r.call(1, r.keyA, "PUT", ptr(s, s.v4), map[string]string{"hostname": fmt.Sprintf("mail%d.probe12.example.test", k)}, nil); rep.Status != 200 {
			t.Fatalf("PTR before: %s", rep)
		}
		r.waitServed(s.v4, fmt.Sprintf("mail%d.probe12.example.test.", k))
	}
	wait := func(what string, a api.Action) {
		t.Helper()
		if done := framework.WaitAction(t, r.apis[0].Client(r.keyA), a.ID, 60*time.Second); done.Status != api.ActionSuccess {
			t.Fatalf("%s: %s ended %+v", what, a.Command, done)
		}
	}
	actions := func(s srv, i int, tag string) []probe12Req {
		return []probe12Req{
			{"start", i % 3, "POST", path(s) + "/power/start", nil},
			{"stop", (i + 1) % 3, "POST", path(s) + "/power/stop", nil},
			{"reboot", (i + 2) % 3, "POST", path(s) + "/power/reboot", nil},
			{"reinstall", i % 3, "POST", path(s) + "/reinstall", map[string]string{"osTemplate": "base", "os": "base"}},
			{"destroy-" + tag, (i + 1) % 3, "DELETE", path(s), nil},
		}
	}
	// busy checks that each answer is a 409 action_in_progress naming a.
	busy := func(what string, a api.Action, reqs []probe12Req, reps []framework.Reply) {
		t.Helper()
		for k, rep := range reps {
			if rep.Status != 409 || rep.Code() != "action_in_progress" || !strings.Contains(string(rep.Body), a.ID) {
				t.Errorf("%s: %s through coordinator %d while %s (%s) is under way: %s; want 409 action_in_progress naming it",
					what, reqs[k].name, reqs[k].i, a.Command, a.ID, rep)
			}
		}
	}

	// Server 0: five at once, up to three rounds, until the destroy wins
	// one: exactly one is accepted, the agent is sent it alone.
	s0destroyed := false
	for round := range 3 {
		r.sim.Hold(t)
		reqs := actions(servers[0], round, fmt.Sprint(round))
		reps := r.burst(fmt.Sprint("r", round), reqs)
		var won api.Action
		var lost []probe12Req
		var lostReps []framework.Reply
		for k, rep := range reps {
			if rep.Status == 202 && won.ID == "" {
				var acc api.ActionAccepted
				rep.Decode(t, &acc)
				won = acc.Action
				continue
			}
			lost, lostReps = append(lost, reqs[k]), append(lostReps, rep)
		}
		if won.ID == "" {
			t.Fatalf("round %d: none of five accepted: %v", round, reps)
		}
		busy(fmt.Sprint("round ", round), won, lost, lostReps)
		time.Sleep(time.Second) // the dispatcher sends it; the agent holds it
		if held := r.sim.Release(t); held != 1 {
			t.Errorf("round %d: the agent was sent %d actions while %s (%s) was under way; want that one alone", round, held, won.Command, won.ID)
		}
		wait(fmt.Sprint("round ", round), won)
		t.Logf("round %d: %s won", round, won.Command)
		if won.Command == api.ActionServerTerminate {
			s0destroyed = true
			break
		}
	}

	// Server 1: its destroy under way, then everything else at once.
	s1 := servers[1]
	before := r.charged()
	r.sim.Hold(t)
	rep := r.call(2, r.keyA, "DELETE", path(s1), nil, map[string]string{"Idempotency-Key": "destroy-alone"})
	if rep.Status != 202 {
		t.Fatalf("destroy: %s", rep)
	}
	var destroy api.ActionAccepted
	rep.Decode(t, &destroy)
	reqs := append(actions(s1, 1, "again"), probe12Req{"destroy", 0, "DELETE", path(s1), nil})
	reps := r.burst("during", append([]probe12Req{
		{"rename", 0, "PATCH", path(s1) + "/label", map[string]string{"label": "renamed"}},
		{"ptr", 1, "PUT", ptr(s1, s1.v6), map[string]string{"hostname": "v6.probe12.example.test"}},
	}, reqs...))
	if reps[0].Status != 200 {
		t.Errorf("a rename while the destroy is under way: %s; want 200", reps[0])
	}
	if reps[1].Status != 200 {
		t.Errorf("a PTR while the destroy is under way: %s; want 200", reps[1])
	}
	busy("during the destroy", destroy.Action, reqs, reps[2:])
	time.Sleep(time.Second)
	if held := r.sim.Release(t); held != 1 {
		t.Errorf("the agent was sent %d actions while the destroy was under way; want it alone", held)
	}
	wait("server 1", destroy.Action)
	if !s0destroyed {
		rep := r.call(0, r.keyA, "DELETE", path(servers[0]), nil, nil)
		var acc api.ActionAccepted
		rep.Decode(t, &acc)
		wait("server 0's destroy", acc.Action)
	}

	// Destroyed, cleanly.
	for k, s := range servers {
		var got api.Server
		r.get(t, 1, r.keyA, path(s), &got)
		if got.Status != api.ServerTerminated || got.IPv4 != "" || got.IPv6 != "" {
			t.Errorf("server %d after the destroy: status %s ipv4 %q ipv6 %q; want terminated, no address", k, got.Status, got.IPv4, got.IPv6)
		}
		r.waitServed(s.v4, "")
		r.waitServed(s.v6, "")
		for _, st := range []string{"pending", "running"} {
			var l struct {
				Data []api.Action `json:"data"`
			}
			r.get(t, 2, r.keyA, "/v1/actions?resource_id="+s.ID+"&status="+st, &l)
			if len(l.Data) != 0 {
				t.Errorf("actions of destroyed server %d still %s: %+v", k, st, l.Data)
			}
		}
	}
	for _, pool := range []string{"pub4", "pub6"} {
		if p, err := r.adm().IPPool(r.ctx, pool); err != nil || p.Usage.Used != 0 || p.Usage.Quarantined != 2 {
			t.Errorf("%s after the destroys: %+v %v; want both addresses in quarantine, none in use", pool, p.Usage, err)
		}
	}
	reqs = []probe12Req{
		{"rename", 0, "PATCH", path(s1) + "/label", map[string]string{"label": "again"}},
		{"ptr4", 1, "PUT", ptr(s1, s1.v4), map[string]string{"hostname": "late.probe12.example.test"}},
		{"start", 2, "POST", path(s1) + "/power/start", nil},
		{"reinstall", 0, "POST", path(s1) + "/reinstall", map[string]string{"osTemplate": "base", "os": "base"}},
		{"destroy", 1, "DELETE", path(s1), nil},
	}
	for k, rep := range r.burst("after", reqs) {
		if rep.Status != 409 && rep.Status != 404 {
			t.Errorf("%s after the destroy: %s; want 409 or 404", reqs[k].name, rep)
		}
	}
	time.Sleep(2 * time.Second) // a late debit, if any
	if now := r.charged(); now.balance < before.balance || now.invoices != before.invoices || now.servers != before.servers {
		t.Errorf("the account after the destroys: %+v → %+v; want no debit, no invoice", before, now)
	}
	r.waitServed(s1.v4, "")
}
