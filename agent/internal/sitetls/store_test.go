package sitetls

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/validate"
	"github.com/hostplane/hostplane/tests/framework"
)

var modes = []Mode{ModeVariable, ModeLua}

// inEachMode runs test against a new nginx in each lookup mode.
func inEachMode(t *testing.T, test func(t *testing.T, n *testNginx)) {
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) { test(t, startNginx(t, mode, "")) })
	}
}

// attachNew attaches a new self-signed certificate for name and returns it.
func (n *testNginx) attachNew(t testing.TB, name string) (cert, key []byte) {
	t.Helper()
	cert, key = selfSigned(t, name)
	if err := n.store.Attach(context.Background(), name, cert, key); err != nil {
		t.Fatalf("attach %s: %v\n%s", name, err, n.errorLog())
	}
	return cert, key
}

func leafDER(tb testing.TB, chain []byte) []byte {
	tb.Helper()
	b, _ := pem.Decode(chain)
	return b.Bytes
}

// TestAttachWithoutReload: a domain attached (and its certificate replaced,
// and detached) is served on the next handshake, by the same nginx workers:
// no reload, in both lookup modes.
func TestAttachWithoutReload(t *testing.T) {
	inEachMode(t, func(t *testing.T, n *testNginx) {
		ctx := context.Background()
		workers := n.workers(t)
		if got := n.served(t, "a.test"); !strings.HasPrefix(got, "error") {
			t.Fatalf("before attach, SNI a.test got %q; want a handshake failure", got)
		}
		for _, name := range []string{"a.test", "b.test", "xn--bcher-kva.example"} {
			start := time.Now()
			c, _ := n.attachNew(t, name)
			t.Logf("%s: attach + handshake check %v", name, time.Since(start))
			leaf, err := ServedLeaf(ctx, n.addr, name, time.Second)
			if err != nil || !bytes.Equal(leaf.Raw, leafDER(t, c)) {
				t.Fatalf("SNI %s after attach: %v", name, err)
			}
		}
		// A renewal replaces a.test's certificate in place.
		c2, _ := n.attachNew(t, "a.test")
		if leaf, err := ServedLeaf(ctx, n.addr, "a.test", time.Second); err != nil || !bytes.Equal(leaf.Raw, leafDER(t, c2)) {
			t.Fatalf("renewed a.test not served: %v", err)
		}
		if n.served(t, "b.test") != "b.test" {
			t.Fatal("b.test lost its certificate")
		}
		if err := n.store.Detach(ctx, "b.test"); err != nil {
			t.Fatal(err)
		}
		if got := n.served(t, "b.test"); !strings.HasPrefix(got, "error") {
			t.Fatalf("detached b.test still served %q", got)
		}
		if n.workers(t) != workers || n.reloads() != 0 {
			t.Fatalf("nginx reloaded: workers %s → %s, %d reloads", workers, n.workers(t), n.reloads())
		}
		st, err := os.Stat(n.store.Path("a.test"))
		if err != nil || st.Mode().Perm() != 0o640 || int(st.Sys().(*syscall.Stat_t).Gid) != n.store.GID {
			t.Fatalf("a.test.pem: %v %v; want 0640 root:www-data", st.Mode(), err)
		}
		ents, _ := os.ReadDir(n.store.CertsDir)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".tmp") {
				t.Fatalf("temporary file left: %s", e.Name())
			}
		}
	})
}

// TestSNIGuard: an SNI of "../x", upper case or junk never makes nginx load
// a file outside the certificate directory or another name's file: it gets
// the node's default certificate. A Host that is not the SNI's name gets 421,
// not another account's site behind this certificate.
func TestSNIGuard(t *testing.T) {
	inEachMode(t, func(t *testing.T, n *testNginx) {
		n.attachNew(t, "a.test")
		// Bait: files an unguarded lookup would load.
		evil := filepath.Join(n.dir, "evil")
		_ = os.MkdirAll(evil, 0o755)
		for _, f := range []string{filepath.Join(evil, "x.pem"), filepath.Join(n.store.CertsDir, "A.TEST.pem"), filepath.Join(n.store.CertsDir, "a.test..pem")} {
			ec, ek := selfSigned(t, "evil")
			if err := os.WriteFile(f, append(ec, ek...), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		for _, sni := range []string{"../evil/x", "A.TEST", "a..test", "a.test/../a.test", "$x", "_default", "a test", strings.Repeat("a", 300)} {
			got := n.served(t, sni)
			if got == "evil" || got == "a.test" {
				t.Errorf("SNI %q loaded %q's certificate", sni, got)
			}
		}
		// No SNI at all: the default certificate.
		conn, err := tls.Dial("tcp", n.addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // reading the served name
		if err != nil {
			t.Fatalf("no SNI: %v", err)
		}
		if cn := conn.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "hostplane-default" {
			t.Errorf("no SNI got %q", cn)
		}
		conn.Close()
		// SNI a.test with another Host: 421.
		cl := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{ServerName: "a.test", InsecureSkipVerify: true}}} //nolint:gosec
		for host, want := range map[string]int{"a.test": 200, "b.test": 421, "A.TEST": 200, "x": 421} {
			req, _ := http.NewRequest("GET", "https://"+n.addr+"/", nil)
			req.Host = host
			resp, err := cl.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("SNI a.test, Host %s: %d, want %d", host, resp.StatusCode, want)
			}
		}
	})
}

// TestAttachRollback: when the handshake check does not see the new
// certificate, the previous file is put back (or none) and still served.
func TestAttachRollback(t *testing.T) {
	inEachMode(t, func(t *testing.T, n *testNginx) {
		ctx := context.Background()
		c1, _ := n.attachNew(t, "a.test")
		before, _ := os.ReadFile(n.store.Path("a.test"))
		// The check goes to a server that is not this nginx.
		other := tlsServer(t)
		bad := &Store{CertsDir: n.store.CertsDir, GID: n.store.GID, CheckAddr: other, CheckTimeout: time.Second}
		c2, k2 := selfSigned(t, "a.test")
		if err := bad.Attach(ctx, "a.test", c2, k2); !errors.Is(err, ErrCheck) {
			t.Fatalf("attach checked against the wrong server: %v", err)
		}
		after, _ := os.ReadFile(n.store.Path("a.test"))
		if !bytes.Equal(before, after) {
			t.Fatal("a.test.pem not rolled back")
		}
		if leaf, err := ServedLeaf(ctx, n.addr, "a.test", time.Second); err != nil || !bytes.Equal(leaf.Raw, leafDER(t, c1)) {
			t.Fatalf("a.test does not serve the previous certificate: %v", err)
		}
		c3, k3 := selfSigned(t, "new.test")
		if err := bad.Attach(ctx, "new.test", c3, k3); !errors.Is(err, ErrCheck) {
			t.Fatalf("attach new.test: %v", err)
		}
		if n.store.Has("new.test") {
			t.Fatal("new.test.pem left after a failed check")
		}
	})
}

func tlsServer(t *testing.T) string {
	t.Helper()
	c, k := selfSigned(t, "elsewhere")
	pair, err := tls.X509KeyPair(c, k)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	framework.AcceptEach(l, func(c net.Conn) { _ = c.(*tls.Conn).Handshake(); c.Close() })
	return l.Addr().String()
}

// TestAttachRefusesBadInput: a name that is not canonical, a certificate
// that does not cover it, an expired one or a key of another certificate are
// refused before anything is written.
func TestAttachRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	s := &Store{CertsDir: dir, GID: -1, CheckAddr: "127.0.0.1:1"}
	ctx := context.Background()
	c, k := selfSigned(t, "a.test")
	_, otherKey := selfSigned(t, "a.test")
	old, oldKey, _ := SelfSigned("a.test", time.Now().Add(-48*time.Hour), time.Hour)
	for name, args := range map[string][3][]byte{
		"../a.test": {c, k}, "A.TEST": {c, k}, "a.test.": {c, k}, "*.a.test": {c, k}, "bücher.example": {c, k},
		"b.test": {c, k}, "a.test": {c, otherKey}, "x.test": {[]byte("junk"), k},
	} {
		if err := s.Attach(ctx, name, args[0], args[1]); !errors.Is(err, validate.ErrInvalid) {
			t.Errorf("Attach(%q) = %v; want a validation error", name, err)
		}
	}
	if err := s.Attach(ctx, "a.test", old, oldKey); !errors.Is(err, validate.ErrInvalid) || !strings.Contains(err.Error(), "not now") {
		t.Errorf("expired certificate: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("files written: %v", ents)
	}
}

// TestWriteStampsEachVersionLater: every version of a file the store writes
// has a later mtime than the one it replaces, to the nanosecond, even when
// written within one clock tick or over a file stamped in the future (the
// lua cache tells versions apart by inode and mtime).
func TestWriteStampsEachVersionLater(t *testing.T) {
	dir := t.TempDir()
	s := &Store{CertsDir: filepath.Join(dir, "certs"), GID: -1}
	if err := s.Prepare(); err != nil {
		t.Fatal(err)
	}
	p := s.Path("a.test")
	var last time.Time
	for i := range 50 {
		if err := s.write(p, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if !st.ModTime().After(last) {
			t.Fatalf("version %d has mtime %v, not after %v", i, st.ModTime(), last)
		}
		last = st.ModTime()
	}
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(p, future, future); err != nil {
		t.Fatal(err)
	}
	s2 := &Store{CertsDir: s.CertsDir, GID: -1} // a restarted agent
	if err := s2.write(p, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(p); !st.ModTime().After(future) {
		t.Fatalf("a version written over a future-stamped file has mtime %v, not after %v", st.ModTime(), future)
	}
}
