package audit

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestDomainPatchAsAHostileCustomer: PATCH /v1/domains/{id} as a hostile or
// careless customer sends it. Hostile nameserver lists and malformed bodies
// are 400s that reach neither the registry nor the domain; a change the
// registry refuses, or cannot be reached for, is a 409 change_failed after
// which nothing changed (auto_renew sent with it included), and the
// registry holds what the API shows; two changes at once are one change and
// a 409 change_pending; a domain that is not registered (failed, or still
// registering) takes no registry change; transfer lock and WHOIS privacy
// reach the registry; a replayed Idempotency-Key changes nothing.
func TestDomainPatchAsAHostileCustomer(t *testing.T) {
	d := newDomRig(t)
	d.c.Credit(d.ctx, d.accA.ID, 20*domainPrice)
	x := d.active(0, "patch-me.test")
	f := d.follower()
	// patch sends each PATCH with an Idempotency-Key (its own unless hdr
	// gives one), so that a leadership 503 is sent again (d.call, as the
	// README says a client must) and answered as the first send was.
	patch := func(i int, id string, body any, hdr map[string]string) framework.Reply {
		if hdr == nil {
			hdr = map[string]string{"Idempotency-Key": "patch-" + rand.Text()}
		}
		return d.call(i, d.keyA, "PATCH", "/v1/domains/"+id, body, hdr)
	}
	// same fails the test when the API's or the registry's view of
	// patch-me.test moved from want.
	same := func(what string, want api.Domain) {
		t.Helper()
		now := d.domain(d.keyA, x.ID)
		if !sameSet(now.Nameservers, want.Nameservers) || now.AutoRenew != want.AutoRenew || now.TransferLock != want.TransferLock || now.WhoisPrivacy != want.WhoisPrivacy {
			t.Errorf("%s: the domain moved\n was %+v\n now %+v", what, want, now)
		}
		rd := d.reg.Domain("patch-me.test")
		if !sameSet(rd.NS, want.Nameservers) || rd.Privacy != want.WhoisPrivacy || slices.Contains(rd.Status, "clientTransferProhibited") != want.TransferLock {
			t.Errorf("%s: the registry holds %+v, the API %+v", what, rd, now)
		}
	}

	t.Run("hostile nameservers", func(t *testing.T) {
		updates := len(d.reg.Transactions("domain:update", "patch-me.test"))
		long := strings.Repeat("a", 63)
		var many []string
		for i := range 14 {
			many = append(many, fmt.Sprintf("ns%d.example.net", i))
		}
		for _, nss := range [][]string{
			{},
			{"ns1.example.net"},
			many,
			{"ns1.example.net", "ns1.example.net"},
			{"ns1.example.net", "NS1.EXAMPLE.NET"},
			{"ns1.example.net", "ns1.example.net."},
			{"ns1.example.net", strings.Repeat("a", 64) + ".example.net"},
			{"ns1.example.net", strings.Join([]string{long, long, long, long}, ".") + ".net"},
			{"ns1.example.net", ""},
			{"ns1.example.net", " "},
			{"ns1.example.net", "xn--zz.example.net"},
			{"ns1.example.net", "xn--.example.net"},
			{"ns1.example.net", "localhost"},
			{"ns1.example.net", "ns1.exa_mple.net"},
			{"ns1.example.net", "2001:db8::53"},
			{"ns1.example.net", "[2001:db8::53]"},
			{"ns1.example.net", "ns1.example.net:53"},
			{"ns1.example.net", "ns1.example.net/x"},
			{"ns1.example.net", "ns1.example.net\x00"},
			{"ns1.example.net", "-ns.example.net"},
			{"ns1.example.net", "ns-.example.net"},
			{"ns1.example.net", "ns.example.123"},
			{"ns1.example.net", "ns1.example.net\u200b"},
			{"ns1.example.net", "ns1.ex\u0430mple.net"}, // a Cyrillic а
		} {
			rep := patch(f, x.ID, map[string]any{"nameservers": nss}, nil)
			if rep.Status != http.StatusBadRequest || !strings.Contains(string(rep.Body), "nameservers") {
				t.Errorf("nameservers %q: %s, want 400 naming nameservers", nss, rep)
			}
		}
		for _, body := range []string{
			`{"nameservers":"ns1.example.net"}`,
			`{"nameservers":[1,2]}`,
			`{"nameservers":[["ns1.example.net"],["ns2.example.net"]]}`,
			`{"nameservers":{"a":"ns1.example.net"}}`,
		} {
			if rep := patch(f, x.ID, body, nil); rep.Status != http.StatusBadRequest {
				t.Errorf("%s: %s, want 400", body, rep)
			}
		}
		same("after hostile nameservers", x)
		if n := len(d.reg.Transactions("domain:update", "patch-me.test")); n != updates {
			t.Errorf("hostile nameservers reached the registry: %d updates, were %d", n, updates)
		}
	})

	t.Run("an internationalised nameserver reaches the registry as A-labels", func(t *testing.T) {
		rep := patch(f, x.ID, map[string]any{"nameservers": []string{"ns1.example.net", "ns1.çay.net"}}, nil)
		switch rep.Status {
		case http.StatusBadRequest:
			same("after a refused IDN nameserver", x)
		case http.StatusOK, http.StatusAccepted:
			d.settled(d.keyA)
			rd := d.reg.Domain("patch-me.test")
			if !sameSet(rd.NS, []string{"ns1.example.net", "ns1.xn--ay-3ia.net"}) {
				t.Errorf("the registry holds %q for ns1.çay.net", rd.NS)
			}
			now := d.domain(d.keyA, x.ID)
			if now.Change == nil || now.Change.Status != api.ChangeApplied {
				t.Errorf("after an IDN nameserver: %+v", now)
			}
			// Back to the first delegation for the checks below.
			if rep := patch(f, x.ID, map[string]any{"nameservers": x.Nameservers}, nil); rep.Status != http.StatusOK {
				t.Fatalf("%s", rep)
			}
		default:
			t.Errorf("an IDN nameserver: %s", rep)
		}
	})

	t.Run("malformed bodies", func(t *testing.T) {
		for _, body := range []string{
			`{}`,
			`{"nameserver":["ns3.example.net","ns4.example.net"]}`,
			`{"auto_renew":"false"}`,
			`{"transfer_lock":1}`,
			`{"whois_privacy":"yes"}`,
			`{"auto_renew":false}{"auto_renew":true}`,
			`[{"auto_renew":false}]`,
			`not json`,
		} {
			if rep := patch(f, x.ID, body, nil); rep.Status != http.StatusBadRequest {
				t.Errorf("%s: %s, want 400", body, rep)
			}
		}
		same("after malformed bodies", x)
	})

	t.Run("a refused change changes nothing, auto_renew included", func(t *testing.T) {
		d.reg.FailNextOn("domain:update", 1, 2306)
		rep := patch(f, x.ID, map[string]any{"auto_renew": false, "transfer_lock": true, "nameservers": []string{"ns3.example.net", "ns4.example.net"}}, nil)
		if rep.Status != http.StatusConflict || rep.Code() != "change_failed" {
			t.Errorf("a change the registry refuses: %s, want 409 change_failed", rep)
		}
		d.reg.Reset()
		same("after a refused change", x)
	})

	t.Run("the registry down: a 409 that changes nothing, then the change applies", func(t *testing.T) {
		d.reg.Down()
		rep := patch(f, x.ID, map[string]any{"auto_renew": false, "nameservers": []string{"ns3.example.net", "ns4.example.net"}}, nil)
		d.reg.Up()
		if rep.Status != http.StatusConflict || rep.Code() != "change_failed" {
			t.Errorf("a change with the registry down: %s, want 409 change_failed", rep)
		}
		same("after a change with the registry down", x)
		var ok framework.Reply
		framework.WaitFor(t, "the change applied with the registry back", 30*time.Second, 500*time.Millisecond, func() bool {
			ok = patch(f, x.ID, map[string]any{"nameservers": []string{"ns3.example.net", "ns4.example.net"}}, nil)
			return ok.Status == http.StatusOK
		})
		x.Nameservers = []string{"ns3.example.net", "ns4.example.net"}
		same("after the change applied", x)
	})

	t.Run("lock and privacy reach the registry", func(t *testing.T) {
		for _, set := range []map[string]any{
			{"transfer_lock": true},
			{"whois_privacy": true},
			{"transfer_lock": false, "whois_privacy": false, "nameservers": []string{"ns1.example.net", "ns2.example.net"}},
			{"transfer_lock": true, "whois_privacy": true},
		} {
			if rep := patch(f, x.ID, set, nil); rep.Status != http.StatusOK {
				t.Fatalf("PATCH %v: %s", set, rep)
			}
			if v, ok := set["transfer_lock"]; ok {
				x.TransferLock = v.(bool)
			}
			if v, ok := set["whois_privacy"]; ok {
				x.WhoisPrivacy = v.(bool)
			}
			if v, ok := set["nameservers"]; ok {
				x.Nameservers = v.([]string)
			}
			same(fmt.Sprintf("after %v", set), x)
		}
	})

	t.Run("two changes at once", func(t *testing.T) {
		d.reg.DelayNextOn("domain:update", 1, 2*time.Second)
		a := []string{"ns5.example.net", "ns6.example.net"}
		b := []string{"ns7.example.net", "ns8.example.net"}
		var ra, rb framework.Reply
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); ra = patch(0, x.ID, map[string]any{"nameservers": a}, nil) }()
		go func() {
			defer wg.Done()
			time.Sleep(300 * time.Millisecond)
			rb = patch(1, x.ID, map[string]any{"nameservers": b}, nil)
		}()
		wg.Wait()
		if ra.Status != http.StatusOK && ra.Status != http.StatusAccepted {
			t.Errorf("the first change: %s", ra)
		}
		if rb.Status != http.StatusConflict || rb.Code() != "change_pending" {
			t.Errorf("a second change while the first is pending: %s, want 409 change_pending", rb)
		}
		d.settled(d.keyA)
		x.Nameservers = a
		same("after two changes at once", x)
	})

	t.Run("a change refused half-way sets back what it applied", func(t *testing.T) {
		// The nameservers are applied (their answer held 2 s), the lock
		// that follows is refused: the registry and the API end as before.
		x = d.domain(d.keyA, x.ID)
		applied := d.reg.Applied("domain:update", "patch-me.test")
		d.reg.DelayNextOn("domain:update", 1, 2*time.Second)
		done := make(chan framework.Reply, 1)
		go func() {
			r, _ := d.apis[f].Try(d.keyA, "PATCH", "/v1/domains/"+x.ID, map[string]any{
				"nameservers": []string{"ns11.example.net", "ns12.example.net"}, "transfer_lock": !x.TransferLock, "whois_privacy": !x.WhoisPrivacy, "auto_renew": !x.AutoRenew}, nil)
			done <- r
		}()
		time.Sleep(700 * time.Millisecond)
		d.reg.FailNextOn("domain:update", 1, 2306)
		rep := <-done
		d.reg.Reset()
		if rep.Status != http.StatusConflict || rep.Code() != "change_failed" {
			t.Errorf("a change refused half-way: %s, want 409 change_failed", rep)
		}
		same("after a change refused half-way", x)
		// Half-way indeed: the nameservers were applied and set back.
		if n := d.reg.Applied("domain:update", "patch-me.test") - applied; n != 2 {
			t.Errorf("%d updates applied at the registry, want the nameservers and their setting back", n)
		}
		if now := d.domain(d.keyA, x.ID); now.Change == nil || now.Change.Status != api.ChangeFailed || now.Change.Reason == "" {
			t.Errorf("the change after a refusal half-way: %+v", now.Change)
		}
	})

	t.Run("a replayed key changes nothing", func(t *testing.T) {
		hdr := map[string]string{"Idempotency-Key": "patch-1"}
		body := map[string]any{"nameservers": []string{"ns1.example.net", "ns2.example.net"}}
		if rep := patch(f, x.ID, body, hdr); rep.Status != http.StatusOK {
			t.Fatalf("%s", rep)
		}
		x.Nameservers = []string{"ns1.example.net", "ns2.example.net"}
		updates := len(d.reg.Transactions("domain:update", "patch-me.test"))
		// The customer changes the delegation, then a stale retry of the
		// first request arrives.
		if rep := patch(f, x.ID, map[string]any{"nameservers": []string{"ns9.example.net", "ns2.example.net"}}, nil); rep.Status != http.StatusOK {
			t.Fatalf("%s", rep)
		}
		x.Nameservers = []string{"ns9.example.net", "ns2.example.net"}
		if rep := patch((f+1)%3, x.ID, body, hdr); rep.Header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("the same key and body again: %s, want the first answer replayed", rep)
		}
		if rep := patch(f, x.ID, map[string]any{"nameservers": []string{"ns3.example.net", "ns2.example.net"}}, hdr); rep.Status != http.StatusUnprocessableEntity {
			t.Errorf("the same key, another body: %s, want 422", rep)
		}
		if n := len(d.reg.Transactions("domain:update", "patch-me.test")); n != updates+1 {
			t.Errorf("%d registry updates after one change and two replays, want %d", n, updates+1)
		}
		same("after replays", x)
	})

	t.Run("a domain that is not registered takes no registry change", func(t *testing.T) {
		d.reg.FailNextOn("domain:create", 1, 2306)
		rep := d.call(f, d.keyA, "POST", "/v1/domains", domainBody("failed-one.test"), map[string]string{"Idempotency-Key": "failed-one"})
		if rep.Status != http.StatusConflict {
			t.Fatalf("%s", rep)
		}
		failed := d.named(d.keyA, "failed-one.test")
		if len(failed) != 1 || failed[0].Status != api.DomainFailed {
			t.Fatalf("failed-one.test: %+v", failed)
		}
		// Slower than the order's 10 s wait: the answer is a 202 with the
		// domain registering. A leader elected meanwhile (under load, with
		// the rig's Raft timeout) sends the registration again with
		// its transaction id, as it must: the registry is slow for every
		// create until the answer, not only the first (an undelayed second
		// create made it a 201 within seconds), and the order carries an
		// Idempotency-Key, so that the follower's 503 leader_unreachable
		// of the leader change is sent again as a client does (answered
		// with the order's 202).
		d.reg.DelayNextOn("domain:create", 5, 14*time.Second)
		rep = d.call(f, d.keyA, "POST", "/v1/domains", domainBody("slow-one.test"), map[string]string{"Idempotency-Key": "slow-one"})
		if rep.Status != http.StatusAccepted {
			t.Errorf("an order the registry answers in 14 s: %s, want 202", rep)
		}
		d.reg.Reset() // the delays not taken
		var slow api.Domain
		rep.Decode(t, &slow)
		for _, id := range []string{failed[0].ID, slow.ID} {
			for _, body := range []map[string]any{
				{"nameservers": []string{"ns3.example.net", "ns4.example.net"}},
				{"transfer_lock": true},
				{"whois_privacy": true},
			} {
				if rep := patch(f, id, body, nil); rep.Status != http.StatusConflict || rep.Code() == "change_pending" {
					t.Errorf("PATCH %v of %s: %s, want a 409 that is not change_pending", body, id, rep)
				}
			}
		}
		if rep := patch(f, failed[0].ID, map[string]any{"auto_renew": true}, nil); rep.Status != http.StatusConflict || rep.Code() == "change_pending" {
			t.Errorf("auto_renew on a failed (refunded) registration: %s, want a 409 that is not change_pending", rep)
		}
		d.settled(d.keyA)
		if n := len(d.reg.Transactions("domain:update", "")) - len(d.reg.Transactions("domain:update", "patch-me.test")); n != 0 {
			t.Errorf("%d registry updates of other domains", n)
		}
		now := d.domain(d.keyA, slow.ID)
		rd := d.reg.Domain("slow-one.test")
		if now.Status != api.DomainActive || rd == nil || !sameSet(now.Nameservers, rd.NS) || now.TransferLock || now.WhoisPrivacy {
			t.Errorf("slow-one.test once registered: %+v, the registry %+v", now, rd)
		}
	})
}

// sameSet reports whether a and b hold the same names, in any order.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
