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

// TestNetLastAddressRace: a pool with one free IPv4 address and six
// customer orders racing for it through the three coordinators. Exactly one
// is served and charged; every other is the same 409 no_capacity a
// customer gets from placement, naming no node, pool or address (SPEC: a
// customer's views name no node), whether placement refused it or the
// order's command found the address gone. The address's PTR is served by
// PowerDNS; terminating the server removes it and puts the address in
// quarantine (released once: a second terminate is refused, the pool counts
// it once), an order meanwhile is refused and charges nothing, and after
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
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			i := n % r.c.Len()
			label := fmt.Sprintf("race-%d", n)
			answers[n] = answer{r.call(i, r.keyA, "POST", "/v1/servers", serverBody(label), map[string]string{"Idempotency-Key": label}), i}
		}()
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
	rep := r.call(2, r.keyA, "DELETE", "/v1/servers/"+srv, nil, map[string]string{"Idempotency-Key": "term-1"})
	if rep.Status != 202 {
		t.Fatalf("terminate: %s", rep)
	}
	var acc api.ActionAccepted
	rep.Decode(t, &acc)
	framework.WaitActionSuccess(t, r.apis[0].Client(r.keyA), acc.Action.ID, 60*time.Second)
	terminated := time.Now()
	r.waitServed(ip4, "")
	if got := r.ips(0, r.keyA, srv); len(got) != 0 {
		t.Errorf("a terminated server lists addresses: %+v", got)
	}
	// Released once: terminating again is refused and the pool counts the
	// address once, in quarantine.
	if rep := r.call(0, r.keyA, "DELETE", "/v1/servers/"+srv, nil, map[string]string{"Idempotency-Key": "term-2"}); rep.Status != 409 {
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
