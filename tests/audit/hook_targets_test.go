package audit

import (
	"context"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// loopbackNames are host names other than localhost that this machine
// resolves to a loopback address (its own name, /etc/hosts aliases).
func loopbackNames(t *testing.T) []string {
	var out []string
	cands := []string{"ip6-localhost", "ip6-loopback", "localhost.localdomain"}
	if h, err := os.Hostname(); err == nil {
		cands = append(cands, h)
	}
	if raw, err := os.ReadFile("/etc/hosts"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if f := strings.Fields(line); len(f) > 1 && !strings.HasPrefix(f[0], "#") {
				cands = append(cands, f[1:]...)
			}
		}
	}
	for _, name := range cands {
		if strings.EqualFold(strings.TrimSuffix(name, "."), "localhost") || slices.Contains(out, name) {
			continue
		}
		ips, err := net.DefaultResolver.LookupIPAddr(context.Background(), name)
		if err != nil || len(ips) == 0 {
			continue
		}
		loop := true
		for _, ip := range ips {
			loop = loop && ip.IP.IsLoopback()
		}
		if loop {
			out = append(out, name)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no host name other than localhost resolves to loopback here (looked at the host name and /etc/hosts); " +
			"the test needs one (e.g. an /etc/hosts line \"127.0.0.1 <hostname>\")")
	}
	return out
}

// TestHookTargetsRefused: with the coordinators' defaults, a webhook may not
// point at this machine or its networks under any spelling the earlier
// audit did not try: a host name that resolves to loopback (the machine's
// own name), the unspecified, broadcast, multicast and reserved ranges,
// loopback and metadata addresses inside IPv6 transition prefixes (NAT64,
// local-use NAT64, 6to4, Teredo, IPv4-compatible), the deprecated IPv6
// site-local range, and malformed URLs (ports out of range, spaces,
// header-splitting newlines, an empty host). Each is a 400 naming url, on
// create and on PATCH of an existing webhook, and nothing is created or
// changed. Then, on a cluster that allowed loopback for development
// (--webhook-allow-private) and restarted without it, an existing loopback
// webhook gets nothing: its attempt is logged as blocked.
func TestHookTargetsRefused(t *testing.T) {
	c, key := keyCluster(t, "targets2@example.com", 3*time.Minute)
	strict := framework.NewAPI(t, c.URL(2), nil)
	var urls []string
	for _, name := range loopbackNames(t) {
		urls = append(urls, "https://"+name+"/hook", "https://"+strings.ToUpper(name)+"./hook")
	}
	urls = append(urls,
		"https://0/", "https://0.0.0.0:443/", "https://[::]/", "https://[::ffff:0.0.0.0]/",
		"https://255.255.255.255/", "https://224.0.0.1/", "https://239.255.255.250/", "https://[ff02::1]/", "https://[ff05::2]/",
		"https://240.0.0.1/", "https://192.0.0.170/", "https://198.18.0.1/", "https://[fec0::1]/",
		"https://[64:ff9b::7f00:1]/", "https://[64:ff9b::a9fe:a9fe]/", "https://[64:ff9b::a00:1]/",
		"https://[2002:7f00:1::]/", "https://[2002:a9fe:a9fe::]/", "https://[::127.0.0.1]/", "https://[::a9fe:a9fe]/",
		"https://[64:ff9b:1::a9fe:a9fe]/", "https://[64:ff9b:1::7f00:1]/", "https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", "https://[2001:0:a9fe:a9fe::1]/",
		"HTTPS://169.254.169.254/", "https://169.254.169.254:443/", "https://[fe80::1%25eth0]/", "https://127.0.0.1%2f@example.com/",
		"https://example.com:99999/", "https://example.com:0/", "https://exa mple.com/", "https://example.com/\r\nX-Injected: 1",
		"https:///hook", "https://:443/", " https://example.com/", "https://example.com/ ", "https://example.com#frag\x00",
		"https://example.com\\@127.0.0.1/", "https://127.0.0.1\\@example.com/",
	)
	// A webhook to patch: none can be created here but one with a public
	// name, which may not resolve in a sandbox; a refused create is fine.
	var wh api.Webhook
	made := strict.Call(key, "POST", "/v1/webhooks", map[string]any{"url": "https://hooks.example.com/in", "events": []string{"*"}}, nil)
	if made.Status == 201 {
		made.Decode(t, &wh)
	} else {
		t.Logf("a public host name that may not resolve here: %s", made)
	}
	for _, u := range urls {
		rep := strict.Call(key, "POST", "/v1/webhooks", map[string]any{"url": u, "events": []string{"*"}}, nil)
		if rep.Status != 400 || !strings.Contains(string(rep.Body), `url`) {
			t.Errorf("create, url %q: %s; want 400 naming url", u, rep)
		}
		if wh.ID != "" {
			if rep := strict.Call(key, "PATCH", "/v1/webhooks/"+wh.ID, map[string]any{"url": u}, nil); rep.Status != 400 {
				t.Errorf("PATCH, url %q: %s; want 400", u, rep)
			}
		}
	}
	var list struct {
		Data  []api.Webhook `json:"data"`
		Total int           `json:"total"`
	}
	strict.Call(key, "GET", "/v1/webhooks", nil, nil).Decode(t, &list)
	if want := map[bool]int{true: 1, false: 0}[wh.ID != ""]; list.Total != want || (want == 1 && list.Data[0].URL != wh.URL) {
		t.Errorf("after the refusals: %+v", list)
	}

	// Allowed for development, then not.
	r := hookRig(t)
	s := newSink(t, nil)
	lw := r.hook(r.keyA, s.URL, "ticket.created")
	tk := r.ticket(0, r.keyA, "before")
	s.waitAbout(t, "ticketId", tk.ID, 1, 20*time.Second)
	for i, p := range r.c.Nodes {
		p.Args = slices.DeleteFunc(p.Args, func(a string) bool { return a == "--webhook-allow-private" })
		r.c.Restart(i)
	}
	if err := r.c.WaitSettled(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	blocked := r.ticket(r.follower(), r.keyA, "after")
	a := r.waitAttempts(r.keyA, lw.ID, 1, 30*time.Second, func(a api.WebhookAttempt) bool {
		return a.EventID != "" && a.AttemptedAt.After(tk.CreatedAt) && a.StatusCode == 0
	})
	if !containsAll(a[0].Error, "127.0.0.1") || a[0].Outcome == "succeeded" {
		t.Errorf("attempt at a loopback receiver once private addresses are no longer allowed: %+v; want blocked, naming the address", a[0])
	}
	time.Sleep(2 * time.Second)
	if n := len(s.about("ticketId", blocked.ID)); n != 0 {
		t.Errorf("the loopback receiver got %d requests after --webhook-allow-private was dropped", n)
	}
}
