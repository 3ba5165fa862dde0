package audit

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestProbe57SameOrderAtTwoCoordinatorsUnderFaults: a client that sends
// one order (a server, a hosting account, a domain) with one
// Idempotency-Key to both followers at once, while the leader is SIGSTOPped
// and resumed, then SIGKILLed and restarted, each send resent with the same
// key as a client does after a 503 or a 409 idempotency_key_in_flight, gets
// one order: both sends end in a 201 naming the same resource and invoice
// (a domain order: 201, or 202 registering where the first send's wait for
// the registry ran out, README, the same status at both coordinators: the
// log decides it, semantics level 14; its domain then becomes active), and afterwards the account holds one more server, hosting account and
// domain, three more invoices, one provisioning action per server and
// hosting account, and a balance lower by the three prices exactly, which
// is the sum of its wallet's history. The wallet run in tests/robustness
// resends an order at one coordinator at a time; this is the same key at
// two at once, for each kind of order.
func TestProbe57SameOrderAtTwoCoordinatorsUnderFaults(t *testing.T) {
	r := newRig(t)
	const each = serverPrice + hostingPrice + domainPrice
	r.c.Credit(r.ctx, r.accA.ID, 2*each)
	for round, fault := range []string{"pause", "kill"} {
		ld, _ := r.leaderAndFollower()
		followers := []int{(ld + 1) % r.c.Len(), (ld + 2) % r.c.Len()}
		before := r.charged(r.keyA)
		name := fmt.Sprintf("p57%s%d", fault, round)
		orders := []struct {
			kind, path string
			body       map[string]any
		}{
			{"server", "/v1/servers", serverBody(name)},
			{"hosting", "/v1/hosting", hostingBody(name)},
			{"domain", "/v1/domains", domainBody(name + ".test")},
		}
		answers := make([][]framework.Reply, len(orders))
		p := r.c.Nodes[ld]
		switch fault {
		case "pause":
			p.Pause()
		case "kill":
			p.Kill()
		}
		healed := make(chan error, 1)
		go func() {
			time.Sleep(3 * time.Second)
			if fault == "pause" {
				p.Resume()
				healed <- nil
				return
			}
			healed <- p.Restart(60 * time.Second)
		}()
		time.Sleep(200 * time.Millisecond) // the followers still take it for the leader
		var wg sync.WaitGroup
		var resent atomic.Int64 // sends answered a 503 or a 409 in flight, sent again
		for k, o := range orders {
			answers[k] = make([]framework.Reply, len(followers))
			key := "probe57-" + name + "-" + o.kind
			for n, f := range followers {
				wg.Go(func() { answers[k][n] = r.orderOnce(f, o.path, o.body, key, &resent) })
			}
		}
		wg.Wait()
		if err := <-healed; err != nil {
			t.Fatalf("%s: the old leader back: %v", fault, err)
		}
		t.Logf("%s: %d sends of the 6 answered a 503 or a 409 in flight and were sent again", fault, resent.Load())
		if resent.Load() == 0 {
			t.Errorf("%s: no send met the fault (no 503, no 409 in flight): the leader was not stopped as the test means", fault)
		}
		for k, o := range orders {
			var ids, invoices []string
			for n, rep := range answers[k] {
				if rep.Status != http.StatusCreated && (o.kind != "domain" || rep.Status != http.StatusAccepted) {
					t.Errorf("%s with the leader %s: the %s order through coordinator %d: %s; want 201", fault, map[string]string{"pause": "paused", "kill": "killed"}[fault], o.kind, followers[n], rep)
					continue
				}
				var got struct {
					ID      string      `json:"id"`
					Server  *api.Server `json:"server"`
					Hosting *struct {
						ID string `json:"id"`
					} `json:"hosting"`
					Invoice *api.Invoice `json:"invoice"`
				}
				if err := json.Unmarshal(rep.Body, &got); err != nil {
					t.Fatalf("%s order: %v", o.kind, err)
				}
				switch {
				case got.Server != nil:
					ids = append(ids, got.Server.ID)
				case got.Hosting != nil:
					ids = append(ids, got.Hosting.ID)
				default:
					ids = append(ids, got.ID)
				}
				if got.Invoice != nil {
					invoices = append(invoices, got.Invoice.ID)
				}
			}
			if len(ids) == 2 && (ids[0] != ids[1] || ids[0] == "") || len(invoices) == 2 && invoices[0] != invoices[1] {
				t.Errorf("%s: the %s order with one key at two coordinators answered %v, invoices %v; want one order", fault, o.kind, ids, invoices)
			}
			if o.kind == "domain" && len(ids) > 0 {
				t.Logf("%s: the domain order answered %d and %d", fault, answers[k][0].Status, answers[k][1].Status)
				// From semantics level 14 the answer of the key is the
				// log's (fsm.LevelDomainAnswer): one status at both.
				if len(ids) == 2 && answers[k][0].Status != answers[k][1].Status {
					t.Errorf("%s: the domain order with one key answered %d at coordinator %d and %d at coordinator %d; want the same answer (the key's first response)",
						fault, answers[k][0].Status, followers[0], answers[k][1].Status, followers[1])
				}
				r.domainActive(t, fault, ids[0])
			}
		}
		after := r.charged(r.keyA)
		want := charged{balance: before.balance - each, invoices: before.invoices + 3, servers: before.servers + 1, hosting: before.hosting + 1, domains: before.domains + 1}
		if after != want {
			t.Errorf("%s: the account after the three orders: %+v; before %+v, want %+v", fault, after, before, want)
		}
		for _, kind := range []string{"server", "hosting"} {
			var acts struct {
				Data []api.Action `json:"data"`
			}
			r.get(t, 0, r.keyA, "/v1/actions?limit=200&resource_type="+kind, &acts)
			per := map[string]int{}
			for _, a := range acts.Data {
				if a.Command == "server.provision" || a.Command == "hosting.create" {
					per[a.ResourceID]++
				}
			}
			for id, n := range per {
				if n != 1 {
					t.Errorf("%s: %s %s has %d provisioning actions; want 1", fault, kind, id, n)
				}
			}
		}
	}
	var txs struct {
		Data []api.WalletTransaction `json:"data"`
	}
	r.get(t, 0, r.keyA, "/v1/billing/wallet/transactions?limit=200", &txs)
	var sum int64
	for _, tx := range txs.Data {
		sum += tx.AmountUsdCents
	}
	if end := r.charged(r.keyA); sum != end.balance {
		t.Errorf("the wallet's %d transactions sum to %d; its balance is %d", len(txs.Data), sum, end.balance)
	}
}

// domainActive follows GET /v1/domains/{id} (as A, through coordinator 0)
// until the domain is active, as a client told 202 does, for up to a
// minute: a registration that fails or stays registering is an error.
func (r *rig) domainActive(t *testing.T, fault, id string) {
	t.Helper()
	var d api.Domain
	for end := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		r.get(t, 0, r.keyA, "/v1/domains/"+id, &d)
		if d.Status == api.DomainActive {
			return
		}
		if d.Status != api.DomainRegistering || time.Now().After(end) {
			t.Errorf("%s: the ordered domain %s is %s (%s); want active", fault, id, d.Status, d.StatusReason)
			return
		}
	}
}

// orderOnce sends POST path with body and the Idempotency-Key key as A
// through coordinator i until it has a final answer: again after a
// leadership 503 (the rig's rule, with the key the cluster runs it once),
// after a 409 idempotency_key_in_flight (the same key sent at the other
// coordinator, still running) and after another 503 asking to retry, for up
// to a minute, each send again counted in sends. It runs beside other sends:
// it fails nothing itself.
func (r *rig) orderOnce(i int, path string, body map[string]any, key string, sends *atomic.Int64) framework.Reply {
	p := client.Resend{Codes: newLeaderCodes, Waiting: func(*api.Error, time.Duration) { sends.Add(1) }}
	var rep framework.Reply
	for end := time.Now().Add(time.Minute); ; {
		var err error
		rep, err = r.apis[i].TryResending(r.ctx, p, r.keyA, "POST", path, body, map[string]string{"Idempotency-Key": key})
		if err != nil {
			return framework.Reply{Status: 0, Body: []byte(err.Error())}
		}
		again := rep.Status == http.StatusConflict && rep.Code() == "idempotency_key_in_flight" ||
			rep.Status == http.StatusServiceUnavailable && rep.Header.Get("Retry-After") != ""
		if !again || time.Now().After(end) {
			return rep
		}
		sends.Add(1)
		wait := 500 * time.Millisecond
		if s, err := strconv.Atoi(rep.Header.Get("Retry-After")); err == nil && s > 0 {
			wait = time.Duration(s) * time.Second
		}
		time.Sleep(wait)
	}
}
