package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// netHostilePTRs are PTR targets a customer may not publish: each is a 400
// naming hostname and nothing reaches PowerDNS. Besides the shapes
// hostilePTRs covers: zone-file and JSON injection, IP literals and other
// all-numeric names (a PTR reading as an address: "connect from
// 10.0.0.1[198.51.100.2]" in a log; RFC 1123 2.1 / RFC 3696 2 say a host name
// is never all-numeric at the top), over-long names, wildcards and
// non-ASCII.
var netHostilePTRs = []string{
	"a.example.com. 3600 IN A 192.0.2.1", "a.example.com.\n@ IN NS evil.example.", `a.example.com","type":"A`,
	"mail.example.com\r\n", "mail.example.com\t", "*.example.com", "*", ".", "..", "mail.example.com..",
	"192.0.2.1", "10.0.0.1", "198.51.100.2.", "127.1", "mail.123", "1.2.3.4.5",
	"::1", "[2001:db8::1]", "2001-db8--1.example.com\x00",
	strings.Repeat("a", 64) + ".example.com", strings.Repeat(strings.Repeat("a", 63)+".", 4) + "com", // 256 characters
	"MAIL.EXAMPLE.COM..", "mäil.example.com", "mail.example.com\u200b", "mail\uff0eexample.com", "ma_il.example.com",
	"mail.example.com/24", "mail@example.com", "mail.example.com:25",
}

// TestNetPTROutsideIn: reverse DNS from a customer's side, with the real
// PowerDNS the product drives. A and B each own a server with a pool IPv4
// address and IPv6 prefix (zones mapped). Valid names are served (a
// trailing dot stripped, 63-character labels, 253 characters, an IPv6
// address in any spelling names the same record); hostile names are 400s
// that leave the record and PowerDNS unchanged; B (every scope) on A's
// server or A's addresses, A on an address its server does not hold, and
// odd address spellings (IPv4-mapped, zone ids, leading zeros, a prefix)
// are 404s alike to an unknown id; keys without servers:write get a 403 that
// is the same for A's and B's servers; the reads show each account only its
// own addresses (bad paging a 400); and the mapped zones in PowerDNS hold exactly the PTRs set
// (no other record a name could have smuggled in).
func TestNetPTROutsideIn(t *testing.T) {
	r := newNetRig(t, "198.51.100.0/24", 0)
	r.c.Credit(r.ctx, r.accA.ID, serverPrice)
	r.c.Credit(r.ctx, r.accB.ID, serverPrice)
	srvA, srvB := r.order(0, r.keyA, "ptr-a").ID, r.order(1, r.keyB, "ptr-b").ID
	a4, a6 := r.addrs(r.keyA, srvA)
	b4, b6 := r.addrs(r.keyB, srvB)
	ptr := func(srv, ip string) string { return "/v1/servers/" + srv + "/ips/" + ip + "/ptr" }
	set := func(i int, key, srv, ip, host string) framework.Reply {
		t.Helper()
		return r.call(i, key, "PUT", ptr(srv, ip), map[string]string{"hostname": host}, nil)
	}

	// Valid names, served over DNS.
	long := strings.Repeat(strings.Repeat("a", 63)+".", 3) + strings.Repeat("b", 57) + ".com" // 253 characters
	for _, c := range []struct{ host, stored string }{
		{"mail.example.test.", "mail.example.test"}, {long, long}, {"xn--bcher-kva.example.test", "xn--bcher-kva.example.test"},
		{"mail.example.test", "mail.example.test"},
	} {
		rep := set(1, r.keyA, srvA, a4, c.host)
		var v api.ServerIP
		if rep.Status == 200 {
			rep.Decode(t, &v)
		}
		if rep.Status != 200 || v.PTR == nil || *v.PTR != c.stored || !v.ZoneHosted {
			t.Fatalf("PTR %q: %s, want 200 with %q", c.host, rep, c.stored)
		}
		r.waitServed(a4, c.stored+".")
	}
	// An IPv6 address in any spelling is the one record, shown and served
	// in canonical form.
	spell6 := []string{strings.ToUpper(a6), expand6(t, a6), a6}
	for n, ip := range spell6 {
		host := []string{"v6-up.example.test", "v6-long.example.test", "v6.example.test"}[n]
		rep := set(2, r.keyA, srvA, ip, host)
		var v api.ServerIP
		rep.Decode(t, &v)
		if rep.Status != 200 || v.IP != a6 || v.PTR == nil || *v.PTR != host {
			t.Fatalf("PUT via %s: %s, want %s named %s", ip, rep, a6, host)
		}
	}
	r.waitServed(a6, "v6.example.test.")
	n6 := 0
	for _, v := range r.ips(0, r.keyA, srvA) {
		if v.Version == 6 {
			n6++
		}
	}
	if n6 != 1 {
		t.Errorf("A's server lists %d IPv6 addresses after PTRs set through three spellings", n6)
	}
	if rep := set(0, r.keyB, srvB, b4, "mail.b.example.test"); rep.Status != 200 {
		t.Fatal(rep)
	}
	r.waitServed(b4, "mail.b.example.test.")

	// Hostile names: 400 naming hostname; nothing changes.
	for _, h := range append(slices.Clone(netHostilePTRs), hostilePTRs...) {
		rep := set(1, r.keyA, srvA, a4, h)
		if rep.Status != 400 || !strings.Contains(string(rep.Body), "hostname") {
			t.Errorf("PTR %q: %s, want 400 naming hostname", h, rep)
		}
	}
	for _, raw := range []string{`{"hostname":["mail.example.test"]}`, `{"hostname":"mail.example.test","type":"A"}`,
		`{"hostname":null}`, `{"hostname":"mail.example.test"`, `{"hostname":"mail.example.test"}{}`} {
		rep := r.call(1, r.keyA, "PUT", ptr(srvA, a4), raw, map[string]string{"Content-Type": "application/json"})
		if rep.Status != 400 {
			t.Errorf("PUT %s: %s, want 400", raw, rep)
		}
	}

	// Addresses and servers that are not the caller's: 404s like unknown
	// ones, before the body is read.
	unknownSrv := unknown(srvA)
	base := r.call(0, r.keyB, "PUT", ptr(unknownSrv, a4), map[string]string{"hostname": "evil.example.test"}, nil)
	if base.Status != 404 {
		t.Fatalf("an unknown server: %s", base)
	}
	for _, c := range []struct {
		what, key, srv, ip string
	}{
		{"B on A's server and address", r.keyB, srvA, a4},
		{"B on A's server and IPv6", r.keyB, srvA, a6},
		{"B on its server with A's address", r.keyB, srvB, a4},
		{"B on its server with A's IPv6", r.keyB, srvB, a6},
		{"A on its server with B's address", r.keyA, srvA, b4},
		{"A on its server with B's IPv6", r.keyA, srvA, b6},
		{"A on a free pool address", r.keyA, srvA, "198.51.100.200"},
		{"A on another address of its /64", r.keyA, srvA, strings.TrimSuffix(a6, "1") + "2"},
		{"A on the pool's gateway", r.keyA, srvA, "198.51.100.1"},
		{"IPv4-mapped", r.keyA, srvA, "::ffff:" + a4},
		{"zone id", r.keyA, srvA, "fe80::1%25eth0"},
		{"zone id on its own IPv6", r.keyA, srvA, a6 + "%25eth0"},
		{"leading zeros", r.keyA, srvA, strings.ReplaceAll(a4, ".", ".0")},
		{"a prefix", r.keyA, srvA, a4 + "%2F24"},
		{"a hex IPv4", r.keyA, srvA, "0xc6336402"},
	} {
		for _, m := range []string{"PUT", "DELETE"} {
			for _, i := range []int{0, 2} {
				var body any = map[string]string{"hostname": "evil.example.test"}
				if m == "DELETE" {
					body = nil // a DELETE takes no body (one is a 400 whoever asks)
				}
				rep := r.call(i, c.key, m, ptr(c.srv, c.ip), body, nil)
				if rep.Status != 404 || rep.Code() != base.Code() {
					t.Errorf("%s (%s %s on coordinator %d): %s, want 404 %s", c.what, m, c.ip, i, rep, base.Code())
				}
				if strings.Contains(string(rep.Body), r.accA.ID) || strings.Contains(string(rep.Body), r.accB.ID) {
					t.Errorf("%s: the answer names an account: %s", c.what, rep)
				}
			}
		}
	}
	// B on A's server looks exactly like an unknown server.
	mine := r.call(2, r.keyB, "PUT", ptr(srvA, a4), map[string]string{"hostname": "evil.example.test"}, nil)
	none := r.call(2, r.keyB, "PUT", ptr(unknownSrv, a4), map[string]string{"hostname": "evil.example.test"}, nil)
	if !sameError(string(mine.Body), string(none.Body), srvA) {
		t.Errorf("B on A's server: %s; on an unknown one: %s", mine, none)
	}
	for _, path := range []string{"/v1/servers/" + srvA + "/ips", "/v1/servers/" + srvA} {
		if rep := r.call(1, r.keyB, "GET", path, nil, nil); rep.Status != 404 || strings.Contains(string(rep.Body), a4) {
			t.Errorf("B reads %s: %s", path, rep)
		}
	}

	// Scopes: servers:read reads but cannot write; without servers:read
	// nothing is read. The 403 is the same on A's server as on B's.
	_, readOnly, err := r.c.NewAccount(r.ctx, "net-ro@example.com", api.ScopeServersRead)
	if err != nil {
		t.Fatal(err)
	}
	roA := r.keyOfA(t, api.KeyCreateRequest{Scopes: []string{api.ScopeServersRead}})
	noServers := r.keyOfA(t, api.KeyCreateRequest{Scopes: []string{api.ScopeAccountRead, api.ScopeBillingRead}})
	for _, c := range []struct {
		key, method, path string
		want              int
	}{
		{roA, "PUT", ptr(srvA, a4), 403}, {roA, "DELETE", ptr(srvA, a4), 403}, {roA, "GET", "/v1/servers/" + srvA + "/ips", 200},
		{readOnly, "PUT", ptr(srvA, a4), 403}, {readOnly, "PUT", ptr(srvB, b4), 403},
		{noServers, "GET", "/v1/servers/ips", 403}, {noServers, "GET", "/v1/servers/" + srvA + "/ips", 403},
	} {
		var body any = map[string]string{"hostname": "evil.example.test"}
		if c.method != "PUT" {
			body = nil // a GET or DELETE takes no body
		}
		rep := r.call(1, c.key, c.method, c.path, body, nil)
		if rep.Status != c.want {
			t.Errorf("%s %s with a narrow key: %s, want %d", c.method, c.path, rep, c.want)
		}
		if rep.Status == 403 && (strings.Contains(string(rep.Body), srvA) || strings.Contains(string(rep.Body), a4)) {
			t.Errorf("a 403 shows the resource: %s", rep)
		}
	}

	// The reads: each account sees its own addresses, with their names.
	for _, c := range []struct {
		key, srv, v4, v6, name4 string
	}{{r.keyA, srvA, a4, a6, "mail.example.test"}, {r.keyB, srvB, b4, b6, "mail.b.example.test"}} {
		for i := range r.c.Len() {
			var all struct {
				Data  []api.ServerIPGroup `json:"data"`
				Total int                 `json:"total"`
			}
			rep := r.call(i, c.key, "GET", "/v1/servers/ips", nil, nil)
			rep.Decode(t, &all)
			if rep.Status != 200 || all.Total != 1 || len(all.Data) != 1 || all.Data[0].ServerID != c.srv || len(all.Data[0].IPs) != 2 {
				t.Fatalf("GET /v1/servers/ips on coordinator %d: %s", i, rep)
			}
			for _, v := range all.Data[0].IPs {
				if v.IP != c.v4 && v.IP != c.v6 {
					t.Errorf("GET /v1/servers/ips shows %s, not the account's", v.IP)
				}
				if v.IP == c.v4 && (v.PTR == nil || *v.PTR != c.name4 || !v.Primary || v.Gateway == nil || *v.Gateway != "198.51.100.1" || v.Netmask == nil || *v.Netmask != "255.255.255.0") {
					t.Errorf("GET /v1/servers/ips on coordinator %d: %+v", i, v)
				}
			}
		}
	}
	// Bad paging of GET /v1/servers/ips is a 400 naming the parameter.
	for _, q := range []string{"limit=0", "limit=201", "limit=x", "limit=-1", "page=0", "page=x", "limit=99999999999999999999"} {
		rep := r.call(2, r.keyA, "GET", "/v1/servers/ips?"+q, nil, nil)
		if param, _, _ := strings.Cut(q, "="); rep.Status != 400 || !strings.Contains(string(rep.Body), param) {
			t.Errorf("GET /v1/servers/ips?%s: %s, want 400 naming %s", q, rep, param)
		}
	}
	for _, ip := range []string{a4, a6, b4} {
		framework.WaitFor(t, "ptrSync of "+ip+" synced", 20*time.Second, 100*time.Millisecond, func() bool {
			for _, g := range [][2]string{{r.keyA, srvA}, {r.keyB, srvB}} {
				for _, v := range r.ips(0, g[0], g[1]) {
					if v.IP == ip {
						return v.PTRSync == api.PTRSynced
					}
				}
			}
			return false
		})
	}

	// What PowerDNS holds: in the mapped zones exactly the three PTRs set
	// (plus SOA and NS), and no name outside them answers.
	r.waitServed(a4, "mail.example.test.")
	r.waitServed(a6, "v6.example.test.")
	r.waitServed(b4, "mail.b.example.test.")
	if got, _ := r.served(b6); len(got) != 0 {
		t.Errorf("PowerDNS serves %v for B's IPv6, which has no name", got)
	}
	records := append(r.zoneRecords(netZone4), r.zoneRecords(netZone6)...)
	slices.Sort(records)
	want := []string{
		"NS ns1.example.test.", "NS ns1.example.test.", "NS ns2.example.test.", "NS ns2.example.test.",
		"PTR mail.b.example.test.", "PTR mail.example.test.", "PTR v6.example.test.", "SOA", "SOA",
	}
	if !slices.Equal(records, want) {
		t.Errorf("the reverse zones in PowerDNS hold\n%q\nwant\n%q", records, want)
	}
	if m := framework.AskDNS(t, r.pdns.DNSAddr, "a.example.com.", dns.TypeA); len(m.Answer) != 0 {
		t.Errorf("PowerDNS answers A a.example.com.: %v", m.Answer)
	}

	// DELETE through another spelling removes the one record.
	if rep := r.call(0, r.keyA, "DELETE", ptr(srvA, expand6(t, a6)), nil, nil); rep.Status != 200 {
		t.Fatal(rep)
	}
	r.waitServed(a6, "")
}

// expand6 is ip written out in full, eight groups of four hex digits.
func expand6(t *testing.T, ip string) string {
	t.Helper()
	a, err := netip.ParseAddr(ip)
	if err != nil {
		t.Fatal(err)
	}
	b := a.As16()
	var parts []string
	for i := 0; i < 16; i += 2 {
		parts = append(parts, fmt.Sprintf("%02X%02X", b[i], b[i+1]))
	}
	return strings.Join(parts, ":")
}

// zoneRecords lists the records of a zone in PowerDNS (through its own
// API, not the product's) as "TYPE content" ("SOA" alone).
func (r *netRig) zoneRecords(zone string) []string {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", r.pdns.APIURL+"/api/v1/servers/localhost/zones/"+zone+".", nil)
	req.Header.Set("X-API-Key", r.pdns.APIKey)
	resp, body := framework.Fetch(r.t, nil, req)
	var z struct {
		RRSets []struct {
			Name, Type string
			Records    []struct{ Content string }
		}
	}
	if resp.StatusCode != 200 || json.Unmarshal(body, &z) != nil {
		r.t.Fatalf("PowerDNS zone %s: %d %.300s", zone, resp.StatusCode, body)
	}
	var out []string
	for _, rr := range z.RRSets {
		for _, rec := range rr.Records {
			if rr.Type == "SOA" {
				out = append(out, "SOA")
			} else {
				out = append(out, rr.Type+" "+rec.Content)
			}
		}
	}
	return out
}
