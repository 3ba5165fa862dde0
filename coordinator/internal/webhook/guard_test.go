package webhook

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/internal/clock"
)

// fakeResolver answers from a map and counts lookups; it never touches DNS.
type fakeResolver struct {
	m     map[string][]string
	calls atomic.Int64
	// flip, when set, answers from m2 after the first lookup (DNS rebinding).
	m2 map[string][]string
}

func (r *fakeResolver) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	n := r.calls.Add(1)
	src := r.m
	if r.m2 != nil && n > 1 {
		src = r.m2
	}
	var out []net.IPAddr
	for _, s := range src[host] {
		out = append(out, net.IPAddr{IP: net.ParseIP(s)})
	}
	if len(out) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return out, nil
}

func TestSSRFCorpusRefusedAtSubscribe(t *testing.T) {
	res := &fakeResolver{m: map[string][]string{
		"internal.example.com": {"10.1.2.3"},
		"mixed.example.com":    {"93.184.216.34", "192.168.0.10"},
		"metadata.example.com": {"169.254.169.254"},
		"v6private.example":    {"fd12::1"},
		"hooks.example.com":    {"93.184.216.34"},
		"localhost":            {"127.0.0.1"},
		"hooks6.example.com":   {"2606:2800:220:1:248:1893:25c8:1946"},
	}}
	strict := &Guard{Resolver: res}
	cases := []struct {
		url, why string
	}{
		{"http://127.0.0.1", "https"},
		{"http://example.com/hook", "https"},
		{"https://127.0.0.1/hook", "loopback"},
		{"https://10.0.0.1", "private address (RFC 1918)"},
		{"https://172.16.5.4", "RFC 1918"},
		{"https://192.168.1.1:8443/x", "RFC 1918"},
		{"https://100.64.0.1", "carrier-grade NAT"},
		{"https://169.254.169.254/latest/meta-data", "metadata"},
		{"https://169.254.10.10", "link-local"},
		{"https://[::1]/hook", "loopback"},
		{"https://[fd00::1]", "unique local"},
		{"https://[fd00:ec2::254]", "metadata"},
		{"https://[fe80::1]", "link-local"},
		{"https://[::ffff:10.0.0.1]", "RFC 1918"},
		{"https://[::ffff:127.0.0.1]", "loopback"},
		{"https://[64:ff9b::a00:1]", "RFC 1918"},
		{"https://[2002:a00:1::]", "RFC 1918"},
		{"https://[fec0::1]", "site-local"},
		{"https://[64:ff9b:1::a9fe:a9fe]", "local-use NAT64"},
		{"https://[2001:0:4136:e378:8000:63bf:80ff:fffe]", "Teredo"},
		{"https://0.0.0.0", "unspecified"},
		{"https://224.0.0.1", "multicast"},
		{"https://internal.example.com/hook", "10.1.2.3 is a private address"},
		{"https://mixed.example.com/hook", "192.168.0.10"},
		{"https://metadata.example.com", "metadata"},
		{"https://v6private.example", "unique local"},
		{"https://nxdomain.example.com", "does not resolve"},
		{"https://localhost/hook", "not allowed"},
		{"https://foo.localhost/hook", "not allowed"},
		{"https://intranet/hook", "fully qualified"},
		{"https://user:pw@hooks.example.com/", "credentials"},
		{"ftp://hooks.example.com/", "https"},
		{"/relative", "https"},
		{"https://hooks.example.com:0/", "port"},
		{"https://hooks.example.com/#frag", "fragment"},
		{"https://" + strings.Repeat("a", 2050) + ".com", "longer"},
	}
	for _, c := range cases {
		t.Run(c.url[:min(len(c.url), 40)], func(t *testing.T) {
			_, err := strict.CheckURL(context.Background(), c.url)
			if !errors.Is(err, ErrForbiddenURL) {
				t.Fatalf("%s: got %v, want a refusal", c.url, err)
			}
			if !strings.Contains(err.Error(), c.why) {
				t.Fatalf("%s: error %q does not say %q", c.url, err, c.why)
			}
		})
	}
	for _, ok := range []string{"https://hooks.example.com/x?y=1", "https://hooks6.example.com", "https://93.184.216.34:8443/h"} {
		if _, err := strict.CheckURL(context.Background(), ok); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	// The development flag opens loopback and private ranges, never metadata.
	dev := &Guard{AllowHTTP: true, AllowPrivate: true, Resolver: res}
	for _, ok := range []string{"http://127.0.0.1:8080/", "https://10.0.0.1", "https://[::1]/", "http://localhost:9/", "https://internal.example.com"} {
		if _, err := dev.CheckURL(context.Background(), ok); err != nil {
			t.Errorf("dev: %s refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"https://169.254.169.254/", "https://[fd00:ec2::254]/", "https://metadata.example.com", "https://100.100.100.200", "https://0.0.0.0"} {
		if _, err := dev.CheckURL(context.Background(), bad); !errors.Is(err, ErrForbiddenURL) {
			t.Errorf("dev: %s allowed", bad)
		}
	}
}

// TestSSRFRefusedAtConnect: the dialer checks again after its own lookup, so a
// name that resolved to a public address at subscribe time and to a private one
// at delivery time (DNS rebinding) is refused before any connection.
func TestSSRFRefusedAtConnect(t *testing.T) {
	res := &fakeResolver{
		m:  map[string][]string{"rebind.example.com": {"93.184.216.34"}},
		m2: map[string][]string{"rebind.example.com": {"10.0.0.7"}},
	}
	g := &Guard{Resolver: res}
	if _, err := g.CheckURL(context.Background(), "https://rebind.example.com/h"); err != nil {
		t.Fatal(err)
	}
	client := g.Client(2*time.Second, nil, 4)
	_, err := client.Post("https://rebind.example.com/h", "application/json", strings.NewReader("{}"))
	if !errors.Is(err, ErrForbiddenURL) || !strings.Contains(err.Error(), "10.0.0.7 is a private address") {
		t.Fatalf("got %v", err)
	}
	// IP literals never reach a resolver or a socket.
	for _, u := range []string{"https://10.0.0.1/", "https://169.254.169.254/", "https://[::1]/", "http://127.0.0.1/"} {
		if _, err := client.Post(u, "application/json", strings.NewReader("{}")); !errors.Is(err, ErrForbiddenURL) {
			t.Errorf("%s: %v", u, err)
		}
	}
	// The last line of defence: the socket's address is checked before connect(2).
	if err := g.control("tcp4", "10.0.0.1:443", nil); !errors.Is(err, ErrForbiddenURL) {
		t.Fatalf("control: %v", err)
	}
	if err := g.control("tcp4", "93.184.216.34:443", nil); err != nil {
		t.Fatalf("control on a public address: %v", err)
	}
}

// TestSSRFFailedAttemptsSayWhy: a delivery to a name that now resolves to a
// private address, and a receiver that redirects to one, both end as failed
// attempts whose error says why; the redirect is not followed.
func TestSSRFFailedAttemptsSayWhy(t *testing.T) {
	node := newTestNode(t, nil)
	sealer := newTestSealer(t)
	box := &secretBox{}
	rc := newReceiver(t, false, clock.Real{}, box.get)
	rc.status = func(_ int, r *http.Request) int { return http.StatusFound }
	rc.location = "https://10.0.0.1/steal"
	acc := node.newAccount()
	rebindID, _ := node.subscribe(sealer, acc, "https://rebind.example.com/hook")
	redirID, secret := node.subscribe(sealer, acc, rc.srv.URL+"/redir")
	box.set(secret)
	res := &fakeResolver{m: map[string][]string{"rebind.example.com": {"10.0.0.7"}}}
	// Loopback is allowed for the local receiver; 10.0.0.7 is made forbidden by a
	// guard that allows only loopback through a custom check below.
	g := &loopbackOnlyGuard{Guard: Guard{AllowHTTP: true, Resolver: res}}
	d := New(Options{FlushInterval: 10 * time.Millisecond, PollInterval: 2 * time.Millisecond}, node.f, node.Apply, sealer, g.client(), clock.Real{}, testLog(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	node.ticket(acc, "t")
	waitUntil(t, "both attempts recorded", 5*time.Second, func() bool {
		return len(node.attempts(rebindID)) == 1 && len(node.attempts(redirID)) == 1
	})
	a := node.attempts(rebindID)[0]
	if a.StatusCode != 0 || !strings.Contains(a.Error, "blocked before connecting") || !strings.Contains(a.Error, "10.0.0.7 is a private address") {
		t.Fatalf("rebind attempt: %+v", a)
	}
	b := node.attempts(redirID)[0]
	if b.StatusCode != 302 || !strings.Contains(b.Error, "redirects are not followed") || !strings.Contains(b.Error, "https://10.0.0.1/") {
		t.Fatalf("redirect attempt: %+v", b)
	}
	if g.dialedPrivate.Load() != 0 {
		t.Fatal("a connection to a private address was attempted")
	}
}

// loopbackOnlyGuard lets the test's loopback receiver through and refuses every
// other non-public address, counting any dial that would leave loopback.
type loopbackOnlyGuard struct {
	Guard
	dialedPrivate atomic.Int64
}

func (g *loopbackOnlyGuard) client() *http.Client {
	c := g.Client(5*time.Second, nil, 4)
	tr := c.Transport.(*http.Transport)
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(addr)
		if ip, err := netip.ParseAddr(host); err == nil && ip.IsLoopback() {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
		conn, err := g.DialContext(ctx, network, addr)
		if err == nil {
			g.dialedPrivate.Add(1)
			conn.Close()
			return nil, errors.New("test refused a non-loopback connection")
		}
		return nil, err
	}
	return c
}

func TestSealer(t *testing.T) {
	s := newTestSealer(t)
	sealed, err := s.Seal("wh_a", "whsec_secret")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, "whsec_secret") {
		t.Fatal("plaintext in sealed form")
	}
	if got, err := s.Open("wh_a", sealed); err != nil || got != "whsec_secret" {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := s.Open("wh_b", sealed); !errors.Is(err, ErrUnseal) {
		t.Fatal("a sealed secret opened for another subscription")
	}
	other, _ := NewSealer(make([]byte, KEKSize))
	if _, err := other.Open("wh_a", sealed); !errors.Is(err, ErrUnseal) {
		t.Fatal("opened with another KEK")
	}
	dir := t.TempDir()
	k1, err := LoadOrCreateKEK(dir+"/kek", true)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreateKEK(dir+"/kek", false)
	if err != nil || string(k1) != string(k2) {
		t.Fatalf("reload: %v", err)
	}
	if _, err := LoadOrCreateKEK(dir+"/absent", false); err == nil {
		t.Fatal("absent KEK accepted without create")
	}
	sec, hint := NewSecret()
	if !strings.HasPrefix(sec, "whsec_") || len(sec) != len("whsec_")+43 || !strings.HasSuffix(sec, hint) {
		t.Fatalf("secret %q hint %q", sec, hint)
	}
}

func TestBackoff(t *testing.T) {
	b := DefaultBackoff
	want := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 16 * time.Minute, 32 * time.Minute,
		64 * time.Minute, 128 * time.Minute, 256 * time.Minute, 6 * time.Hour, 6 * time.Hour}
	for i, w := range want {
		if got := b.Delay(i + 1); got != w {
			t.Errorf("delay %d = %s, want %s", i+1, got, w)
		}
	}
	start := time.Unix(0, 0)
	now, n := start, 1
	for {
		next, ok := b.Next(n, start, now, 0.5) // no jitter at 0.5
		if !ok {
			break
		}
		now, n = next, n+1
	}
	if n != 12 || now.Sub(start) != 1231*time.Minute {
		t.Fatalf("%d attempts over %s", n, now.Sub(start))
	}
	lo, _ := b.Next(1, start, start, 0)
	hi, _ := b.Next(1, start, start, 0.999999)
	if lo.Sub(start) != 54*time.Second || hi.Sub(start) < 65*time.Second {
		t.Fatalf("jitter range %s..%s", lo.Sub(start), hi.Sub(start))
	}
}
