package console

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/hostplane/hostplane/internal/consoletoken"
	"github.com/hostplane/hostplane/internal/testpki"
	"github.com/hostplane/hostplane/tests/framework"
)

// display is a stand-in VNC server on loopback: it sends the RFB banner, then
// echoes. The real display is covered by tests/e2e TestConsole.
type display struct {
	ln     net.Listener
	domain string
}

func newDisplay(t *testing.T, domain string) *display {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	framework.AcceptEach(ln, func(c net.Conn) {
		defer c.Close()
		_, _ = c.Write([]byte("RFB 003.008\n"))
		_, _ = io.Copy(c, c)
	})
	return &display{ln: ln, domain: domain}
}

func (d *display) VNCAddress(_ context.Context, domain string) (string, error) {
	if domain != d.domain {
		return "", errors.New("no such domain")
	}
	return d.ln.Addr().String(), nil
}

type harness struct {
	srv  *Server
	key  ed25519.PrivateKey
	hc   *http.Client
	base string
}

func newHarness(t *testing.T, novnc string) *harness {
	t.Helper()
	ca := testpki.NewCA(t, "test CA", time.Hour)
	der, leafKey := ca.Leaf(t, "hv-01", time.Hour, x509.ExtKeyUsageServerAuth)
	leaf, _ := x509.ParseCertificate(der)
	cert := &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: leafKey, Leaf: leaf}
	key, err := consoletoken.DeriveKey(bytes.Repeat([]byte{3}, 32))
	if err != nil {
		t.Fatal(err)
	}
	v := consoletoken.NewVerifier("hv-01", nil)
	if err := v.AddKey(key.Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
	srv := New(Config{Listen: "127.0.0.1:0", NoVNCDir: novnc, Displays: newDisplay(t, "hp-vm-1")})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := srv.Start(ctx, func() (*tls.Certificate, error) { return cert, nil }, v); err != nil {
		t.Fatal(err)
	}
	// The listener must present the node certificate it was given.
	sameCert := func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, der) {
			return errors.New("the console did not present the node certificate")
		}
		return nil
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, VerifyConnection: sameCert}}}
	if !strings.HasPrefix(srv.URL(), "https://127.0.0.1:") {
		t.Fatalf("URL %q", srv.URL())
	}
	return &harness{srv: srv, key: key, hc: hc, base: srv.URL()}
}

func (h *harness) token(t *testing.T, vm string, ttl time.Duration) string {
	t.Helper()
	tok, err := consoletoken.Sign(h.key, consoletoken.Claims{ID: consoletoken.NewID(), Node: "hv-01", Server: "srv_1", VM: vm, Expires: time.Now().Add(ttl).UnixMilli()})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (h *harness) dial(tok string) (*websocket.Conn, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, strings.Replace(h.base, "https", "wss", 1)+Path+"?token="+url.QueryEscape(tok),
		&websocket.DialOptions{HTTPClient: h.hc, Subprotocols: []string{"binary"}})
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	return c, status, err
}

func TestBridgeAndRefusals(t *testing.T) {
	h := newHarness(t, t.TempDir())
	tok := h.token(t, "hp-vm-1", time.Minute)
	c, status, err := h.dial(tok)
	if err != nil {
		t.Fatalf("console: %v (HTTP %d)", err, status)
	}
	nc := websocket.NetConn(context.Background(), c, websocket.MessageBinary)
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	banner := make([]byte, 12)
	if _, err := io.ReadFull(nc, banner); err != nil || string(banner) != "RFB 003.008\n" {
		t.Fatalf("banner %q, %v", banner, err)
	}
	if _, err := nc.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	echo := make([]byte, 4)
	if _, err := io.ReadFull(nc, echo); err != nil || string(echo) != "ping" {
		t.Fatalf("echo %q, %v", echo, err)
	}

	for name, tc := range map[string]struct {
		tok  string
		want int
	}{
		"reused":       {tok, http.StatusForbidden},
		"expired":      {h.token(t, "hp-vm-1", -time.Second), http.StatusForbidden},
		"garbage":      {"hpc1.x.y", http.StatusForbidden},
		"none":         {"", http.StatusForbidden},
		"other domain": {h.token(t, "hp-vm-2", time.Minute), http.StatusConflict},
	} {
		if c, status, err := h.dial(tc.tok); err == nil || status != tc.want {
			if c != nil {
				c.CloseNow()
			}
			t.Errorf("%s: HTTP %d (%v), want %d", name, status, err, tc.want)
		}
	}

	// Terminating the domain ends its console.
	h.srv.CloseDomain("hp-vm-1")
	if _, err := io.ReadFull(nc, echo); err == nil {
		t.Fatal("the console stayed open after CloseDomain")
	}
	// The server forgets it once its side of the bridge ended.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		h.srv.mu.Lock()
		n := len(h.srv.open)
		h.srv.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d domains still have open consoles 5 s after CloseDomain", n)
		}
	}
}

func TestStaticNoVNC(t *testing.T) {
	missing := newHarness(t, filepath.Join(t.TempDir(), "none"))
	resp, err := missing.hc.Get(missing.base + "/vnc.html")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "novnc") {
		t.Fatalf("without noVNC: %d %s", resp.StatusCode, body)
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "vnc.html"), []byte("<title>noVNC</title>"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, dir)
	for path, want := range map[string]int{"/vnc.html": 200, "/../../etc/passwd": 404, "/missing.js": 404} {
		req, _ := http.NewRequest("GET", h.base+path, nil)
		req.URL.Opaque = path // keep the dots as sent
		resp, err := h.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want && !(path == "/../../etc/passwd" && resp.StatusCode == http.StatusBadRequest) {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

// TestConsolesPerServerAreBounded: a server has at most MaxPerServer
// consoles open at once (a console URL costs a customer one API request, and
// each console holds a display connection on the node); the next is a 429
// before any WebSocket, and closing
// one frees its slot.
func TestConsolesPerServerAreBounded(t *testing.T) {
	h := newHarness(t, t.TempDir())
	h.srv.cfg.MaxPerServer = 2
	var open []*websocket.Conn
	for i := range 2 {
		c, status, err := h.dial(h.token(t, "hp-vm-1", time.Minute))
		if err != nil {
			t.Fatalf("console %d: %v (HTTP %d)", i+1, err, status)
		}
		open = append(open, c)
	}
	if c, status, err := h.dial(h.token(t, "hp-vm-1", time.Minute)); err == nil || status != http.StatusTooManyRequests {
		if c != nil {
			c.CloseNow()
		}
		t.Fatalf("a third console on a server allowed two: HTTP %d (%v), want 429", status, err)
	}
	open[0].CloseNow()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, status, err := h.dial(h.token(t, "hp-vm-1", time.Minute))
		if err == nil {
			c.CloseNow()
			break
		}
		if status != http.StatusTooManyRequests || time.Now().After(deadline) {
			t.Fatalf("a console after one closed: HTTP %d (%v)", status, err)
		}
	}
	open[1].CloseNow()
}
