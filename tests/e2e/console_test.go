package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"
	"github.com/hostplane/hostplane/internal/consoletoken"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestConsole opens the browser console of a real guest through the public
// API: the noVNC page is served by the guest's host, the WebSocket speaks RFB
// 3.8 with the guest's QEMU display (handshake, then a framebuffer update), and
// a reused, expired, forged or foreign token is refused; terminating the
// server closes an open console. The token in the URLs the customer gets
// (hpc2: this agent speaks protocol 1.5) shows neither the node id nor the
// VM name, however decoded, and the agent still accepts hpc1 tokens (what a
// coordinator of the previous version mints in a rolling upgrade).
func TestConsole(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a coordinator, an agent and boots a TCG guest")
	}
	if _, err := os.Stat("/usr/share/novnc/vnc.html"); err != nil {
		t.Fatalf("the noVNC client is not installed (/usr/share/novnc/vnc.html: %v): run scripts/install-novnc.sh (Debian package novnc)", err)
	}
	w := newWorld(t, clusterOpts{n: 1})
	created := w.createServer(t, "console")
	id, vm := created.Server.ID, created.Server.VMName
	owner, other := w.api(nil), newAPIClient(t, w.c.AnyAlive(nil).URL(), w.other)
	path := "/v1/servers/" + id + "/console"
	httpc := consoleHTTPClient(t, w)

	// Another account's server is a 404 and yields no URL.
	if r := other.do(http.MethodPost, path, nil); r.Status != http.StatusNotFound || strings.Contains(string(r.Body), "token") {
		t.Fatalf("another account's console: %d %s", r.Status, r.Body)
	}

	var con api.ServerConsole
	owner.expect(http.StatusCreated, http.MethodPost, path, nil).Decode(t, &con)
	if con.Protocol != "vnc" || time.Until(con.ExpiresAt) > 61*time.Second || time.Until(con.ExpiresAt) < 30*time.Second {
		t.Fatalf("console: %+v", con)
	}
	// The noVNC page, from Debian's novnc package, on the host's console listener.
	resp, err := httpc.Get(con.URL)
	if err != nil {
		t.Fatalf("GET %s: %v", con.URL, err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "noVNC") {
		t.Fatalf("noVNC page: %d %.200s", resp.StatusCode, page)
	}
	// noVNC connects to its page's host at the path in its query: the WebSocket URL.
	u, _ := url.Parse(con.URL)
	wsu, _ := url.Parse(con.WebSocketURL)
	if q := u.Query().Get("path"); wsu == nil || wsu.Host != u.Host || q != strings.TrimPrefix(wsu.Path, "/")+"?"+wsu.RawQuery {
		t.Fatalf("noVNC path %q does not lead to %s", q, con.WebSocketURL)
	}

	// The token as the customer has it: every dot-separated part of it,
	// raw and base64url-decoded, in both URLs, names neither the node nor the
	// VM (an hpc1 token carries them in readable JSON).
	for _, raw := range []string{con.URL, con.WebSocketURL} {
		u, _ := url.Parse(raw)
		tok := u.Query().Get("token")
		if tok == "" {
			if p, err := url.Parse("/" + u.Query().Get("path")); err == nil {
				tok = p.Query().Get("token")
			}
		}
		if !strings.HasPrefix(tok, consoletoken.SealedPrefix+".") {
			t.Fatalf("the token in %s is %.8q…, want an %s token", raw, tok, consoletoken.SealedPrefix)
		}
		texts := []string{tok}
		for _, p := range strings.Split(tok, ".") {
			for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.StdEncoding} {
				if b, err := enc.DecodeString(p); err == nil {
					texts = append(texts, string(b))
				}
			}
		}
		for _, x := range texts {
			for _, secret := range []string{w.agent.ID, vm} {
				if strings.Contains(x, secret) {
					t.Errorf("the console URL %s shows %q", raw, secret)
				}
			}
		}
	}

	// The console: RFB through the WebSocket to the real guest's display.
	start := time.Now()
	rfb := dialConsole(t, httpc, con.WebSocketURL)
	name, fb := rfbHandshake(t, rfb)
	// QEMU names its display after the guest: this is the server's own domain.
	if name != "QEMU ("+vm+")" {
		t.Fatalf("the display is %q, want the server's domain %q", name, vm)
	}
	t.Logf("console: RFB 003.008 with %q, framebuffer update %dx%d (%d bytes) in %v", name, fb.w, fb.h, fb.bytes, time.Since(start).Round(time.Millisecond))
	rfb.Close()

	// The same URL a second time is refused before any WebSocket.
	if status := refusedStatus(t, httpc, con.WebSocketURL); status != http.StatusForbidden {
		t.Fatalf("second use of the console URL: %d, want 403", status)
	}
	// Tokens made outside the API: expired, for another node, signed with
	// another key. The cluster's key comes from the coordinators' KEK file.
	kek, err := os.ReadFile(filepath.Join(w.c.Dir, "kek"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := hex.DecodeString(strings.TrimSpace(string(kek)))
	if err != nil {
		t.Fatal(err)
	}
	key, err := consoletoken.DeriveKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := consoletoken.DeriveKey(make([]byte, 32))
	seal, err := consoletoken.DeriveSealKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	forgedSeal, _ := consoletoken.DeriveSealKey(make([]byte, 32))
	base := con.WebSocketURL[:strings.Index(con.WebSocketURL, "?")]
	claims := func(mod func(*consoletoken.Claims)) consoletoken.Claims {
		c := consoletoken.Claims{ID: consoletoken.NewID(), Node: w.agent.ID, Server: id, VM: vm, Expires: time.Now().Add(time.Minute).UnixMilli()}
		mod(&c)
		return c
	}
	for _, tc := range []struct {
		name string
		key  ed25519.PrivateKey
		seal []byte // nil: hpc1
		c    consoletoken.Claims
	}{
		{"expired", key, nil, claims(func(c *consoletoken.Claims) { c.Expires = time.Now().Add(-time.Second).UnixMilli() })},
		{"another node", key, nil, claims(func(c *consoletoken.Claims) { c.Node = "hv-elsewhere" })},
		{"another key", forged, nil, claims(func(*consoletoken.Claims) {})},
		{"hpc2 for another node", key, seal, claims(func(c *consoletoken.Claims) { c.Node = "hv-elsewhere" })},
		{"hpc2 signed with another key", forged, seal, claims(func(*consoletoken.Claims) {})},
		{"hpc2 sealed with another key", key, forgedSeal, claims(func(*consoletoken.Claims) {})},
	} {
		tok, err := consoletoken.Sign(tc.key, tc.c)
		if tc.seal != nil {
			tok, err = consoletoken.Seal(tc.key, tc.seal, tc.c)
		}
		if err != nil {
			t.Fatal(err)
		}
		if status := refusedStatus(t, httpc, base+"?token="+url.QueryEscape(tok)); status != http.StatusForbidden {
			t.Errorf("%s token: %d, want 403", tc.name, status)
		}
	}
	// The control: a token signed with the cluster's key for this node opens,
	// hpc1 (what a coordinator of the previous version mints) as hpc2.
	good, _ := consoletoken.Sign(key, claims(func(*consoletoken.Claims) {}))
	c2 := dialConsole(t, httpc, base+"?token="+url.QueryEscape(good))
	rfbHandshake(t, c2)
	c2.Close()
	good2, _ := consoletoken.Seal(key, seal, claims(func(*consoletoken.Claims) {}))
	c2 = dialConsole(t, httpc, base+"?token="+url.QueryEscape(good2))
	rfbHandshake(t, c2)
	c2.Close()

	// The same in a real browser: headless Chromium opens the console URL and
	// noVNC connects (it puts the desktop name in the page's title).
	var con3 api.ServerConsole
	owner.expect(http.StatusCreated, http.MethodPost, path, nil).Decode(t, &con3)
	title := browserConsole(t, con3.URL, vm)
	if !strings.HasPrefix(title, "QEMU ("+vm+")") {
		t.Fatalf("noVNC in Chromium: page title %q", title)
	}
	t.Logf("noVNC in headless Chromium connected: title %q", title)

	// The agent restarts: once it holds a session again a fresh token opens,
	// and the URL used before the restart is still refused.
	w.agent.Stop()
	w.agent.Start("")
	fresh, _ := consoletoken.Sign(key, claims(func(*consoletoken.Claims) {}))
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, resp, err := websocket.Dial(ctx, base+"?token="+url.QueryEscape(fresh), &websocket.DialOptions{HTTPClient: httpc, Subprotocols: []string{"binary"}})
		cancel()
		if err == nil {
			c.CloseNow()
			break
		}
		// Refused while the restarted agent has no console key yet (403), or
		// not listening yet.
		if time.Now().After(deadline) {
			t.Fatalf("a fresh token after the agent restarted: %v (%v)", err, resp)
		}
	}
	if time.Until(con.ExpiresAt) < time.Second {
		t.Fatalf("the first console URL expired before the restart check (%v): the test ran too slowly to tell reuse from expiry", con.ExpiresAt)
	}
	usedBefore := strings.Count(framework.ReadFile(t, w.agent.LogPath()), "already used")
	if status := refusedStatus(t, httpc, con.WebSocketURL); status != http.StatusForbidden {
		t.Fatalf("the console URL used before the agent restarted: %d, want 403", status)
	}
	if strings.Count(framework.ReadFile(t, w.agent.LogPath()), "already used") != usedBefore+1 {
		t.Fatal("the URL used before the restart was not refused as already used")
	}

	// Terminate closes an open console.
	var con2 api.ServerConsole
	owner.expect(http.StatusCreated, http.MethodPost, path, nil).Decode(t, &con2)
	open := dialConsole(t, httpc, con2.WebSocketURL)
	rfbHandshake(t, open)
	closed := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, open)
		closed <- err
	}()
	var acc api.ActionAccepted
	owner.expect(http.StatusAccepted, http.MethodDelete, "/v1/servers/"+id, nil).Decode(t, &acc)
	select {
	case err := <-closed:
		t.Logf("console closed on terminate (%v)", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the console stayed open 30 s after terminate")
	}
	owner.waitSuccess(acc.Action.ID, actionTimeout)
	// The agent closed it itself before destroying the domain (not only
	// because QEMU went away).
	if log := framework.ReadFile(t, w.agent.LogPath()); !strings.Contains(log, `"msg":"consoles closed: domain terminated","subsystem":"console","domain":"`+vm+`"`) {
		t.Fatal("the agent did not log closing the console on terminate (consoles closed: domain terminated)")
	}
	if r := owner.do(http.MethodPost, path, nil); r.Status != http.StatusConflict {
		t.Fatalf("console of a terminated server: %d %s", r.Status, r.Body)
	}
}

// consoleHTTPClient trusts the node certificate the console listener serves
// by default: signed by the cluster CA, naming the node (it carries no host
// names, so the usual host name check is replaced by the node id).
func consoleHTTPClient(t *testing.T, w *world) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(w.agent.Data, "session", "ca.crt"))
	if err != nil {
		t.Fatalf("the agent's CA certificate: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("the agent's ca.crt holds no certificate")
	}
	node := w.agent.ID
	verify := func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("no certificate")
		}
		leaf := cs.PeerCertificates[0]
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return err
		}
		if leaf.Subject.CommonName != node {
			return fmt.Errorf("console certificate for %q, want node %q", leaf.Subject.CommonName, node)
		}
		return nil
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true, VerifyConnection: verify, // verified above, against the CA and the node id
	}}}
}

func dialConsole(t *testing.T, hc *http.Client, wsURL string) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPClient: hc, Subprotocols: []string{"binary"}})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("console websocket: %v (HTTP %d)", err, status)
	}
	if c.Subprotocol() != "binary" {
		t.Fatalf("console subprotocol %q, want binary (noVNC asks for it)", c.Subprotocol())
	}
	c.SetReadLimit(16 << 20)
	nc := websocket.NetConn(context.Background(), c, websocket.MessageBinary)
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	return nc
}

// refusedStatus dials a console URL that must be refused and returns the HTTP status.
func refusedStatus(t *testing.T, hc *http.Client, wsURL string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPClient: hc, Subprotocols: []string{"binary"}})
	if err == nil {
		c.CloseNow()
		t.Fatalf("console %s opened", wsURL)
	}
	if resp == nil {
		t.Fatalf("console %s: %v (no HTTP answer)", wsURL, err)
	}
	return resp.StatusCode
}

type fbUpdate struct{ w, h, bytes int }

// rfbHandshake speaks RFB 3.8 (RFC 6143) as a client with no VNC password:
// version, security None, init, then asks for the whole screen in raw
// encoding and reads the first rectangle of the update. It returns the
// desktop name (QEMU's guest name) and that rectangle.
func rfbHandshake(t *testing.T, c net.Conn) (string, fbUpdate) {
	t.Helper()
	read := func(n int) []byte {
		t.Helper()
		b := make([]byte, n)
		if _, err := io.ReadFull(c, b); err != nil {
			t.Fatalf("rfb: read %d bytes: %v", n, err)
		}
		return b
	}
	write := func(b []byte) {
		t.Helper()
		if _, err := c.Write(b); err != nil {
			t.Fatalf("rfb: write: %v", err)
		}
	}
	if v := string(read(12)); v != "RFB 003.008\n" {
		t.Fatalf("rfb banner %q, want RFB 003.008", v)
	}
	write([]byte("RFB 003.008\n"))
	types := read(int(read(1)[0]))
	if !strings.ContainsRune(string(types), 1) {
		t.Fatalf("rfb security types %v: no None (1)", types)
	}
	write([]byte{1})
	if r := binary.BigEndian.Uint32(read(4)); r != 0 {
		t.Fatalf("rfb security result %d", r)
	}
	write([]byte{1}) // ClientInit: shared
	init := read(24)
	w, h := binary.BigEndian.Uint16(init[0:]), binary.BigEndian.Uint16(init[2:])
	bpp := int(init[4])
	name := string(read(int(binary.BigEndian.Uint32(init[20:]))))
	if w == 0 || h == 0 || bpp == 0 {
		t.Fatalf("rfb server init: %dx%d at %d bpp", w, h, bpp)
	}
	// SetEncodings [raw], then FramebufferUpdateRequest (not incremental) for the screen.
	write([]byte{2, 0, 0, 1, 0, 0, 0, 0})
	req := []byte{3, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(req[6:], w)
	binary.BigEndian.PutUint16(req[8:], h)
	write(req)
	for {
		msg := read(1)[0]
		switch msg {
		case 0: // FramebufferUpdate
			n := binary.BigEndian.Uint16(read(3)[1:])
			if n == 0 {
				t.Fatal("rfb framebuffer update with no rectangle")
			}
			r := read(12)
			rw, rh, enc := int(binary.BigEndian.Uint16(r[4:])), int(binary.BigEndian.Uint16(r[6:])), int32(binary.BigEndian.Uint32(r[8:]))
			if enc != 0 || rw == 0 || rh == 0 {
				t.Fatalf("rfb first rectangle %dx%d encoding %d, want raw pixels", rw, rh, enc)
			}
			px := read(rw * rh * bpp / 8)
			return name, fbUpdate{w: rw, h: rh, bytes: len(px)}
		case 2: // Bell
		case 3: // ServerCutText
			read(3)
			read(int(binary.BigEndian.Uint32(read(4))))
		default:
			t.Fatalf("rfb: unexpected server message %d before the framebuffer update", msg)
		}
	}
}

// browserConsole opens a console URL in headless Chromium and waits until
// noVNC has connected, which it shows by putting the desktop name into the
// page's title; it returns the title.
func browserConsole(t *testing.T, pageURL, vm string) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: run scripts/install-chromium.sh (Debian's chromium package; `make test` runs it)")
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("TMPDIR", home) // Chromium's org.chromium.Chromium.* directories stay in the test's directory
	// The console serves the node certificate, which names the node rather
	// than 127.0.0.1: the TLS check is the RFB part's job above.
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox,
		chromedp.UserDataDir(filepath.Join(home, "profile")), chromedp.Flag("disable-gpu", true),
		chromedp.Flag("ignore-certificate-errors", true))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	defer cancelBrowser()
	if err := chromedp.Do(bctx, chromedp.Navigate(pageURL)); err != nil {
		t.Fatalf("chromium: open the console page: %v", err)
	}
	var title string
	for {
		title, err = chromedp.Run(bctx, chromedp.Title())
		if err == nil && strings.Contains(title, vm) {
			return title
		}
		if ctx.Err() != nil {
			status, _ := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("#noVNC_status")))
			t.Fatalf("noVNC did not connect in 60 s: title %q, status %q (%v)", title, status, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
