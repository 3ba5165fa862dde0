package sitetls

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/agent/internal/hosting"
	"github.com/hostplane/hostplane/agent/internal/hosting/hostingtest"
)

// TestHostingLayoutTLS: the TLS part set up in the hosting node's layout
// (its hooks tls.d, http.d, main.d) behind the hosting nginx: a custom
// domain routed to an account (hosts/<domain>) and given a certificate
// serves the account's site over HTTPS; nginx answers ACME HTTP-01 from the
// agent's responder on every host; no reload for either.
func TestHostingLayoutTLS(t *testing.T) {
	hostingtest.Need(t, "nginx")
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			if mode == ModeLua {
				needLua(t)
			}
			root, prefix := hostingtest.Root(t)
			l := hosting.Layout{Root: root}
			httpAddr, tlsAddr := freePort(t), freePort(t)
			node, err := Setup(l, Options{Listen: tlsAddr, Mode: mode, WebUser: "www-data"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { node.Close() })
			ng := &hosting.Nginx{L: l, Bin: "nginx", Params: hosting.NginxParams{Root: root, User: "www-data", Listen: httpAddr,
				ConfDir: "/etc/nginx", Workers: "1"}}
			if err := ng.Ensure(context.Background()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = ng.Stop() })

			// A site: sites/<user>/public/index.html, and the custom domain routed to it.
			user := prefix + "a"
			pub := filepath.Join(l.Site(user), "public")
			if err := os.MkdirAll(pub, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(pub, "index.html"), []byte("site of "+user+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := l.SetHost("shop.example.test", user); err != nil {
				t.Fatal(err)
			}
			pid := func() string { b, _ := os.ReadFile(l.NginxPID()); return strings.TrimSpace(string(b)) }
			master := pid()
			c, k := selfSigned(t, "shop.example.test")
			if err := node.Store.Attach(context.Background(), "shop.example.test", c, k); err != nil {
				t.Fatalf("attach: %v", err)
			}
			cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{ServerName: "shop.example.test", InsecureSkipVerify: true}}} //nolint:gosec // self-signed
			req, _ := http.NewRequest("GET", "https://"+tlsAddr+"/", nil)
			req.Host = "shop.example.test"
			resp, err := cl.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "site of "+user+"\n" || resp.TLS.PeerCertificates[0].Subject.CommonName != "shop.example.test" {
				t.Fatalf("HTTPS: %d %q", resp.StatusCode, body)
			}

			tok := "huNc3Sm5fl0mQCrgrBEcxSbZGr-eX46P5Nd-YvvYTVw"
			ka := tok + ".9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"
			if err := node.Challenges.Put(tok, ka); err != nil {
				t.Fatal(err)
			}
			for _, host := range []string{"shop.example.test", "not-attached.example.test"} {
				req, _ := http.NewRequest("GET", "http://"+httpAddr+ChallengePrefix+tok, nil)
				req.Host = host
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(body) != ka {
					t.Fatalf("HTTP-01 on %s: %d %q", host, resp.StatusCode, body)
				}
			}
			if pid() != master || strings.Contains(readFile(filepath.Join(l.NginxDir(), "logs", "error.log")), "reconfiguring") {
				t.Fatal("nginx was reloaded or restarted")
			}
		})
	}
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}
