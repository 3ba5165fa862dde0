package audit

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// newProbe14NetRig is newNetRig (net_rig_test.go) whose coordinators also
// deliver webhooks to loopback receivers, with A subscribed to every event.
func newProbe14NetRig(t *testing.T) (*netRig, *framework.WebhookReceiver) {
	r := netRigOf(t, "probe14", 4*time.Minute, true, "198.51.100.0/24", 0)
	hooks := framework.NewWebhookReceiver(t)
	if rep := r.write(0, r.keyA, "POST", "/v1/webhooks", api.WebhookCreateRequest{URL: hooks.URL + "/hook", Events: []string{"*"}}); rep.Status != 201 {
		t.Fatalf("webhook: %s", rep)
	}
	return r, hooks
}

// TestProbe14ReverseDNS probes PUT|DELETE /v1/servers/:id/ips/:ip/ptr as a
// careless or hostile customer would, from the seeds (444host: "Point the
// IP's PTR record at a hostname. Idempotent upsert", "Remove the PTR record
// for the IP", vps.ptr.changed "Payload: vpsId, ip, ptr (null when
// cleared)"; SPEC.md: server.ptr.changed, payload fields as in the seeds),
// against the real PowerDNS the product drives. Beyond TestNetPTROutsideIn:
//
//   - every change fires one server.ptr.changed with exactly serverId, ip
//     and ptr (null when cleared); a PUT of the name already set and a
//     DELETE of a PTR already gone change nothing and fire nothing;
//   - the PTR is served with the operator's TTL; a body that asks for
//     another TTL, or any field but hostname, is a 400 naming it; a body
//     over 1 MiB is a 413; 253 characters (with or without the trailing
//     dot) are a name, 254 are not;
//   - PUTs of different names at once through every coordinator leave one
//     name, the one the API shows and PowerDNS serves, with one event per
//     name set;
//   - a PTR set (2xx) just before the leader is killed is what the next
//     leader shows and PowerDNS serves;
//   - an operator's hostile reverse zone names are 400s that create no zone
//     in PowerDNS.
func TestProbe14ReverseDNS(t *testing.T) {
	r, hooks := newProbe14NetRig(t)
	r.c.Credit(r.ctx, r.accA.ID, serverPrice)
	srv := r.order(0, r.keyA, "probe14-ptr").ID
	a4, a6 := r.addrs(r.keyA, srv)
	ptr := func(ip string) string { return "/v1/servers/" + srv + "/ips/" + ip + "/ptr" }
	set := func(i int, ip, host string) framework.Reply {
		t.Helper()
		return r.call(i, r.keyA, "PUT", ptr(ip), map[string]string{"hostname": host}, nil)
	}
	// changes is the server.ptr.changed deliveries about ip, one per
	// event id, in the order they arrived.
	changes := func(ip string) []framework.WebhookDelivery {
		seen := map[string]bool{}
		var out []framework.WebhookDelivery
		for _, d := range hooks.Deliveries(string(api.EventServerPTRChanged)) {
			if d.Data["ip"] == ip && !seen[d.ID] {
				seen[d.ID] = true
				out = append(out, d)
			}
		}
		return out
	}
	waitChange := func(t *testing.T, ip string, want any) framework.WebhookDelivery {
		t.Helper()
		return hooks.Wait(t, string(api.EventServerPTRChanged), 30*time.Second, func(m map[string]any) bool {
			v, ok := m["ptr"]
			return ok && m["ip"] == ip && v == want
		})
	}

	t.Run("events: one per change, none for no change", func(t *testing.T) {
		if rep := set(0, a4, "one.example.test"); rep.Status != 200 {
			t.Fatal(rep)
		}
		ev := waitChange(t, a4, "one.example.test")
		keys := make([]string, 0, len(ev.Data))
		for k := range ev.Data {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if strings.Join(keys, ",") != "ip,ptr,serverId" || ev.Data["serverId"] != srv {
			t.Errorf("server.ptr.changed: %s, want serverId, ip and ptr", ev.Body)
		}
		r.waitServed(a4, "one.example.test.")
		// The same name again (another spelling of it too): an upsert
		// that changes nothing.
		for i, h := range []string{"one.example.test", "one.example.test."} {
			if rep := set(i+1, a4, h); rep.Status != 200 {
				t.Fatal(rep)
			}
		}
		if rep := r.call(2, r.keyA, "DELETE", ptr(a6), nil, nil); rep.Status >= 300 && rep.Status != 404 {
			t.Errorf("DELETE of a PTR never set: %s", rep)
		}
		if rep := r.call(0, r.keyA, "DELETE", ptr(a4), nil, nil); rep.Status != 200 {
			t.Fatal(rep)
		}
		waitChange(t, a4, nil)
		r.waitServed(a4, "")
		if rep := r.call(1, r.keyA, "DELETE", ptr(a4), nil, nil); rep.Status >= 300 && rep.Status != 404 {
			t.Errorf("a second DELETE: %s", rep)
		}
		time.Sleep(3 * time.Second) // a delivery of an event that should not exist would have arrived
		var got []string
		for _, d := range changes(a4) {
			got = append(got, fmt.Sprint(d.Data["ptr"]))
		}
		if want := []string{"one.example.test", "<nil>"}; !slices.Equal(got, want) {
			t.Errorf("server.ptr.changed about %s: %q, want %q (one per change)", a4, got, want)
		}
		if n := len(changes(a6)); n != 0 {
			t.Errorf("%d server.ptr.changed about %s, which never had a PTR", n, a6)
		}
	})

	t.Run("TTL, fields and sizes", func(t *testing.T) {
		if rep := set(0, a4, "ttl.example.test"); rep.Status != 200 {
			t.Fatal(rep)
		}
		r.waitServed(a4, "ttl.example.test.")
		name, _ := dns.ReverseAddr(a4)
		m := framework.AskDNS(t, r.pdns.DNSAddr, name, dns.TypePTR)
		if len(m.Answer) != 1 || m.Answer[0].Header().Ttl != 300 {
			t.Errorf("PowerDNS answers %v, want one PTR with the operator's TTL 300", m.Answer)
		}
		for _, c := range []struct {
			field string
			body  any
		}{
			{"ttl", map[string]any{"hostname": "ttl2.example.test", "ttl": 1}},
			{"ttl", map[string]any{"hostname": "ttl2.example.test", "ttl": -1}},
			{"ttl", map[string]any{"hostname": "ttl2.example.test", "ttl": 4294967296}},
			{"content", map[string]any{"hostname": "ttl2.example.test", "content": "evil.example.test."}},
			{"ip", map[string]any{"hostname": "ttl2.example.test", "ip": a6}},
			{"hostname", map[string]any{"hostname": 7}},
			{"hostname", map[string]any{"hostname": true}},
			{"hostname", map[string]any{"hostname": ""}},
			{"hostname", map[string]any{}},
			{"hostname", map[string]any{"Hostname": "ttl2.example.test"}},
		} {
			rep := r.call(1, r.keyA, "PUT", ptr(a4), c.body, nil)
			if rep.Status != 400 || !strings.Contains(string(rep.Body), c.field) {
				t.Errorf("PUT %v: %s, want 400 naming %s", c.body, rep, c.field)
			}
		}
		huge := `{"hostname":"` + strings.Repeat("a", 1<<20+10) + `.example.test"}`
		if rep := r.call(2, r.keyA, "PUT", ptr(a4), huge, map[string]string{"Content-Type": "application/json"}); rep.Status != http.StatusRequestEntityTooLarge {
			t.Errorf("a body over 1 MiB: %s, want 413", rep)
		}
		l253 := strings.Repeat(strings.Repeat("c", 63)+".", 3) + strings.Repeat("d", 57) + ".com"
		for _, h := range []string{l253 + ".", l253} {
			if rep := set(0, a4, h); rep.Status != 200 {
				t.Errorf("PTR of 253 characters (%d sent): %s", len(h), rep)
			}
		}
		if rep := set(0, a4, "e"+l253); rep.Status != 400 || !strings.Contains(string(rep.Body), "hostname") {
			t.Errorf("PTR of 254 characters: %s, want 400 naming hostname", rep)
		}
		r.waitServed(a4, l253+".")
	})

	t.Run("names set at once through every coordinator", func(t *testing.T) {
		var wg sync.WaitGroup
		reps := make([]framework.Reply, 9)
		for n := range reps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				reps[n], _ = r.apis[n%3].Try(r.keyA, "PUT", ptr(a6), map[string]string{"hostname": fmt.Sprintf("race-%d.example.test", n)}, nil)
			}()
		}
		wg.Wait()
		for n, rep := range reps {
			if rep.Status != 200 && rep.Status != 409 && rep.Status != 503 {
				t.Errorf("PUT race-%d: %s", n, rep)
			}
		}
		var final string
		framework.WaitFor(t, "the PTR synced", 20*time.Second, 100*time.Millisecond, func() bool {
			for _, v := range r.ips(0, r.keyA, srv) {
				if v.IP == a6 && v.PTR != nil && v.PTRSync == api.PTRSynced {
					final = *v.PTR
					return true
				}
			}
			return false
		})
		for i := range r.c.Len() {
			for _, v := range r.ips(i, r.keyA, srv) {
				if v.IP == a6 && (v.PTR == nil || *v.PTR != final) {
					t.Errorf("coordinator %d shows %v, coordinator 0 %s", i, v.PTR, final)
				}
			}
		}
		r.waitServed(a6, final+".")
		time.Sleep(2 * time.Second)
		if got, _ := r.served(a6); len(got) != 1 || got[0] != final+"." {
			t.Errorf("PowerDNS serves %v, the API %s", got, final)
		}
		// One event per name set, one of them naming what is set. (Which
		// event is the newest is not asserted: an event's id and time are
		// made before its command is committed, so among changes racing
		// each other the id order need not be the commit order; a
		// consumer re-reads the address.)
		ok := 0
		for n, rep := range reps {
			if rep.Status == 200 {
				ok++
			} else {
				t.Logf("PUT race-%d: %s", n, rep)
			}
		}
		var ch []framework.WebhookDelivery
		framework.WaitFor(t, "one event per name set", 30*time.Second, 200*time.Millisecond, func() bool {
			ch = changes(a6)
			return len(ch) >= ok
		})
		time.Sleep(2 * time.Second)
		ch = changes(a6)
		slices.SortFunc(ch, func(x, y framework.WebhookDelivery) int { return strings.Compare(x.ID, y.ID) })
		for _, d := range ch {
			t.Logf("event %s: ptr %v", d.ID, d.Data["ptr"])
		}
		if len(ch) != ok || !slices.ContainsFunc(ch, func(d framework.WebhookDelivery) bool { return d.Data["ptr"] == final }) {
			t.Errorf("%d events for %d names set, none or more naming %s, which the API shows", len(ch), ok, final)
		}
	})

	t.Run("a PTR set just before the leader dies", func(t *testing.T) {
		ld, f := r.leaderAndFollower()
		if rep := set(f, a4, "after-kill.example.test"); rep.Status != 200 {
			t.Fatal(rep)
		}
		r.c.Kill(ld)
		other := (ld + 2) % 3
		framework.WaitFor(t, "a new leader shows the PTR", 45*time.Second, 250*time.Millisecond, func() bool {
			rep, err := r.apis[other].Try(r.keyA, "GET", "/v1/servers/"+srv+"/ips", nil, nil)
			if err != nil || rep.Status != 200 {
				return false
			}
			var l api.ServerIPList
			rep.Decode(t, &l)
			for _, v := range l.Data {
				if v.IP == a4 {
					if v.PTR == nil || *v.PTR != "after-kill.example.test" {
						t.Fatalf("after the kill %s shows %v", a4, v.PTR)
					}
					return v.PTRSync == api.PTRSynced
				}
			}
			return false
		})
		r.waitServed(a4, "after-kill.example.test.")
	})

	t.Run("an operator's hostile reverse zones", func(t *testing.T) {
		zones := func() []string {
			t.Helper()
			req, _ := http.NewRequestWithContext(r.ctx, "GET", r.pdns.APIURL+"/api/v1/servers/localhost/zones", nil)
			req.Header.Set("X-API-Key", r.pdns.APIKey)
			_, body := framework.Fetch(t, nil, req)
			var l []struct{ Name string }
			if err := json.Unmarshal(body, &l); err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, z := range l {
				out = append(out, z.Name)
			}
			slices.Sort(out)
			return out
		}
		before := zones()
		adm := r.c.AnyAlive(nil).Admin()
		for _, z := range []string{
			"example.com", "evil.example.test", "in-addr.arpa", "arpa", ".", "",
			"100.51.198.in-addr.arpa. 300 IN NS evil.example.", "100.51.198.in-addr.arpa\nevil", "../100.51.198.in-addr.arpa",
			"7.100.51.198.in-addr.arpa", "1.2.3.in-addr.arpa", "300.51.198.in-addr.arpa", "x.51.198.in-addr.arpa",
			"0.0.8.b.d.0.1.0.0.2.ip6.arpa.extra", "zz.0.0.8.b.d.0.1.0.0.2.ip6.arpa", strings.Repeat("1.", 140) + "in-addr.arpa",
		} {
			for _, pool := range []string{"pub4", "pub6", "nope"} {
				if _, err := adm.AddReverseZone(r.ctx, api.ReverseZoneRequest{Zone: z, Pool: pool}); api.StatusOf(err) != http.StatusBadRequest && api.StatusOf(err) != http.StatusConflict && api.StatusOf(err) != http.StatusNotFound {
					t.Errorf("reverse zone %q for %s: %v, want a 4xx", z, pool, err)
				}
			}
		}
		time.Sleep(2 * time.Second)
		if after := zones(); !slices.Equal(before, after) {
			t.Errorf("PowerDNS zones %q → %q", before, after)
		}
	})
}
