package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestNetLastAddressRace: a pool with one free IPv4 address and six
// customer orders racing for it through the three coordinators. Exactly one
// is served and charged; every other is the same 409 no_capacity a
// customer gets from placement, naming no node, pool or address (SPEC: a
// customer's views name no node), whether placement refused it or the
// order's command found the address gone. The address's PTR is served by
// PowerDNS; terminating the server removes it and puts the address in
// quarantine (released once: of three concurrent terminates one is
// accepted, a later one is refused, the pool counts it once), an order meanwhile is refused and charges nothing, and after
// the quarantine the address is handed out again without the old name.
func TestNetLastAddressRace(t *testing.T) {
	const quarantine = 6
	r := newNetRig(t, "198.51.100.0/30", quarantine) // .0 network, .1 gateway, .3 broadcast: .2 is the one
	const racers = 6
	r.c.Credit(r.ctx, r.accA.ID, racers*serverPrice)

	type answer struct {
		rep framework.Reply
		i   int
	}
	answers := make([]answer, racers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for n := range racers {
		wg.Go(func() {
			<-start
			i := n % r.c.Len()
			label := fmt.Sprintf("race-%d", n)
			answers[n] = answer{r.call(i, r.keyA, "POST", "/v1/servers", serverBody(label), map[string]string{"Idempotency-Key": label}), i}
		})
	}
	close(start)
	wg.Wait()
	var won api.ServerOrder
	wins := 0
	for _, a := range answers {
		switch a.rep.Status {
		case 201:
			wins++
			a.rep.Decode(t, &won)
		case 409:
			if a.rep.Code() != "no_capacity" {
				t.Errorf("a lost race on coordinator %d: %s, want 409 no_capacity", a.i, a.rep)
			}
			for _, leak := range []string{netNode, "pub4", "pub6", "198.51.100", "2001:db8"} {
				if strings.Contains(string(a.rep.Body), leak) {
					t.Errorf("a lost race on coordinator %d names %q: %s", a.i, leak, a.rep)
				}
			}
		default:
			t.Errorf("order on coordinator %d: %s, want 201 or 409", a.i, a.rep)
		}
	}
	if wins != 1 {
		t.Fatalf("%d of %d orders for the last address were served", wins, racers)
	}
	framework.WaitActionSuccess(t, r.apis[0].Client(r.keyA), won.Action.ID, 60*time.Second)
	if got := r.charged(); got.balance != (racers-1)*serverPrice || got.servers != 1 || got.invoices != 1 {
		t.Fatalf("after the race: %+v, want one order charged", got)
	}
	srv := won.Server.ID
	ip4, ip6 := r.addrs(r.keyA, srv)
	if ip4 != "198.51.100.2" {
		t.Fatalf("the server holds %s, want the pool's one address", ip4)
	}

	// Its PTR is served; terminating the server removes it.
	if rep := r.call(1, r.keyA, "PUT", "/v1/servers/"+srv+"/ips/"+ip4+"/ptr", map[string]string{"hostname": "race.example.test"}, nil); rep.Status != 200 {
		t.Fatalf("%s", rep)
	}
	r.waitServed(ip4, "race.example.test.")
	// Three terminates at once (each its own Idempotency-Key): one is
	// accepted, the others are told another action runs.
	terms := make([]framework.Reply, 3)
	for n := range terms {
		wg.Go(func() {
			terms[n] = r.call(n, r.keyA, "DELETE", "/v1/servers/"+srv, nil, map[string]string{"Idempotency-Key": fmt.Sprint("term-", n)})
		})
	}
	wg.Wait()
	var acc api.ActionAccepted
	accepted := 0
	for _, rep := range terms {
		switch {
		case rep.Status == 202:
			accepted++
			rep.Decode(t, &acc)
		case rep.Status != 409:
			t.Errorf("a concurrent terminate: %s, want 202 or 409", rep)
		}
	}
	if accepted != 1 {
		t.Fatalf("%d of 3 concurrent terminates accepted: %v", accepted, terms)
	}
	framework.WaitActionSuccess(t, r.apis[0].Client(r.keyA), acc.Action.ID, 60*time.Second)
	terminated := time.Now()
	r.waitServed(ip4, "")
	if got := r.ips(0, r.keyA, srv); len(got) != 0 {
		t.Errorf("a terminated server lists addresses: %+v", got)
	}
	// Released once: terminating again is refused and the pool counts the
	// address once, in quarantine.
	if rep := r.call(0, r.keyA, "DELETE", "/v1/servers/"+srv, nil, map[string]string{"Idempotency-Key": "term-again"}); rep.Status != 409 {
		t.Errorf("a second terminate: %s, want 409", rep)
	}
	if p, err := r.adm().IPPool(r.ctx, "pub4"); err != nil || p.Usage.Used != 0 || p.Usage.Quarantined != 1 || p.Usage.Free != 0 {
		t.Errorf("pub4 after the terminate: %+v %v, want the one address in quarantine", p.Usage, err)
	}

	// In quarantine: an order is refused the same way and charges nothing.
	before := r.charged()
	if rep := r.call(0, r.keyA, "POST", "/v1/servers", serverBody("during-quarantine"), nil); rep.Status != 409 || rep.Code() != "no_capacity" || strings.Contains(string(rep.Body), "pub4") {
		t.Errorf("an order during the quarantine: %s, want 409 no_capacity", rep)
	}
	if after := r.charged(); after != before {
		t.Errorf("a refused order changed the account: %+v → %+v", before, after)
	}

	// After it the address is handed out again, without the old name.
	time.Sleep(time.Until(terminated.Add(quarantine*time.Second + 500*time.Millisecond)))
	again := r.order(1, r.keyA, "after-quarantine")
	ip4b, ip6b := r.addrs(r.keyA, again.ID)
	if ip4b != ip4 {
		t.Fatalf("after the quarantine the new server holds %s, want %s again", ip4b, ip4)
	}
	t.Logf("IPv6 %s then %s", ip6, ip6b)
	for _, v := range r.ips(2, r.keyA, again.ID) {
		if v.PTR != nil {
			t.Errorf("the reused address %s came with the PTR %q", v.IP, *v.PTR)
		}
	}
	if got, _ := r.served(ip4); len(got) != 0 {
		t.Errorf("PowerDNS serves %v for the reused address", got)
	}
	if p, err := r.adm().IPPool(r.ctx, "pub4"); err != nil || p.Usage.Used != 1 || p.Usage.Quarantined != 0 {
		t.Errorf("pub4 after the reuse: %+v %v", p.Usage, err)
	}
}

// charged is netRig's view of what A has been charged (balance, invoices,
// servers).
func (r *netRig) charged() charged {
	r.t.Helper()
	var c charged
	var w api.Wallet
	r.call(0, r.keyA, "GET", "/v1/billing/wallet", nil, nil).Decode(r.t, &w)
	c.balance = w.BalanceUsdCents
	for path, n := range map[string]*int{"/v1/billing/invoices": &c.invoices, "/v1/servers": &c.servers} {
		var p struct {
			Total int `json:"total"`
		}
		r.call(0, r.keyA, "GET", path, nil, nil).Decode(r.t, &p)
		*n = p.Total
	}
	return c
}

// TestNetOrdersAcrossLeaderKill: five customer orders for a pool of five
// addresses, started 150 ms apart through all three coordinators, with the
// leader killed after the second; each client retries its order with the
// same Idempotency-Key and body until it is answered (a 503, a 5xx or a
// refused connection while the cluster elects, or a 409
// idempotency_key_in_flight; or a 409 no_capacity while the node's agent
// has not reconnected to the new leader). Every order is served once: five servers,
// five charges, five distinct addresses of the pool (and five IPv6
// prefixes), the pool counting all five used, and every provisioning
// finishing under the new leader.
func TestNetOrdersAcrossLeaderKill(t *testing.T) {
	// Mostly waits (see "Parallel tests" in audit_test.go).
	t.Parallel()
	r := newNetRig(t, "198.51.100.0/29", 0) // .2-.6
	const orders = 5
	r.c.Credit(r.ctx, r.accA.ID, orders*serverPrice)
	old := r.c.WaitLeader(20 * time.Second)

	type result struct {
		so             api.ServerOrder
		tries, replays int
		retried        []string
		err            string
	}
	results := make([]result, orders)
	var wg sync.WaitGroup
	served := make(chan struct{}, orders)
	for n := range orders {
		wg.Go(func() {
			time.Sleep(time.Duration(n) * 150 * time.Millisecond)
			res := &results[n]
			label := fmt.Sprintf("lk-%d", n)
			deadline := time.Now().Add(60 * time.Second)
			for attempt := 0; ; attempt++ {
				if time.Now().After(deadline) {
					res.err = fmt.Sprintf("not served in 60 s (%v)", res.retried)
					return
				}
				i := (n + attempt) % r.c.Len()
				res.tries++
				rep, err := r.apis[i].Try(r.keyA, "POST", "/v1/servers", serverBody(label), map[string]string{"Idempotency-Key": label})
				switch {
				case err != nil:
					res.retried = append(res.retried, "transport")
				case rep.Status == 201:
					if err := json.Unmarshal(rep.Body, &res.so); err != nil {
						res.err = err.Error()
					}
					if rep.Header.Get("Idempotent-Replayed") == "true" {
						res.replays++
					}
					served <- struct{}{}
					return
				case rep.Status >= 500 || rep.Code() == "idempotency_key_in_flight":
					res.retried = append(res.retried, fmt.Sprint(rep.Status, " ", rep.Code()))
				case rep.Code() == "no_capacity":
					// Placement skips a node whose agent has not reconnected
					// to the new leader yet; the pool has room for all five.
					why := "node unknown"
					ctx, cancel := context.WithTimeout(r.ctx, 2*time.Second)
					if n, err := r.adm().AgentNode(ctx, netNode); err == nil {
						why = fmt.Sprintf("node connected %v", n.Connected)
					}
					cancel()
					res.retried = append(res.retried, "409 no_capacity, "+why)
				default:
					res.err = rep.String()
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
	for range 2 {
		select {
		case <-served:
		case <-time.After(60 * time.Second):
			wg.Wait()
			t.Fatalf("fewer than two orders served before the leader kill: %+v", results)
		}
	}
	r.c.Kill(old)
	t.Logf("leader %s killed after two orders were served", r.c.Nodes[old].ID)
	wg.Wait()
	if _, err := r.c.LeaderIndex(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	r.c.Restart(old)

	ids := map[string]bool{}
	for n, res := range results {
		if res.err != "" {
			t.Fatalf("order %d: %s", n, res.err)
		}
		t.Logf("order %d: server %s after %d tries (%d replayed; retried on %v)", n, res.so.Server.ID, res.tries, res.replays, res.retried)
		if res.so.Server.ID == "" || ids[res.so.Server.ID] {
			t.Fatalf("order %d answered server %q, already another order's or none", n, res.so.Server.ID)
		}
		ids[res.so.Server.ID] = true
		framework.WaitActionSuccess(t, r.apis[(old+1)%r.c.Len()].Client(r.keyA), res.so.Action.ID, 60*time.Second)
	}
	if got := r.charged(); got.balance != 0 || got.servers != orders || got.invoices != orders {
		t.Fatalf("after %d orders across a leader kill: %+v", orders, got)
	}
	seen4, seen6 := map[string]string{}, map[string]string{}
	for id := range ids {
		v4, v6 := r.addrs(r.keyA, id)
		p6, err := netip.MustParseAddr(v6).Prefix(64)
		if err != nil || !netip.MustParsePrefix("198.51.100.0/29").Contains(netip.MustParseAddr(v4)) || !netip.MustParsePrefix(netCIDR6).Contains(p6.Addr()) {
			t.Fatalf("server %s holds %s and %s", id, v4, v6)
		}
		if o, dup := seen4[v4]; dup {
			t.Fatalf("servers %s and %s both hold %s", o, id, v4)
		}
		if o, dup := seen6[p6.String()]; dup {
			t.Fatalf("servers %s and %s both hold %s", o, id, p6)
		}
		seen4[v4], seen6[p6.String()] = id, id
	}
	for _, name := range []string{"pub4", "pub6"} {
		if p, err := r.adm().IPPool(r.ctx, name); err != nil || p.Usage.Used != orders || len(p.Addresses) != orders {
			t.Errorf("%s after the orders: %+v (%d addresses listed) %v, want %d used", name, p.Usage, len(p.Addresses), err, orders)
		}
	}
}
