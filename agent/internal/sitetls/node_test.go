package sitetls

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/agent/internal/hosting"
	"github.com/hostplane/hostplane/agent/internal/hosting/hostingtest"
	"github.com/hostplane/hostplane/tests/framework"
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
			hostingtest.StartNginx(t, root, httpAddr)

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
			resp, body := framework.GetHTTPS(t, tlsAddr, "shop.example.test", nil)
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
				resp, body := framework.Fetch(t, nil, req)
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

// TestSetupChangedNeedsOneReload: TLS enabled under an nginx already
// running (an agent restarted with --hosting-tls-listen) is taken by one
// reload, which Changed asks for; the same Setup again changes nothing; a
// Rollback puts the previous includes back.
func TestSetupChangedNeedsOneReload(t *testing.T) {
	hostingtest.Need(t, "nginx")
	root, _ := hostingtest.Root(t)
	l := hosting.Layout{Root: root}
	httpAddr, tlsAddr := freePort(t), freePort(t)
	ng := hostingtest.StartNginx(t, root, httpAddr)
	node, err := Setup(l, Options{Listen: tlsAddr, Mode: ModeVariable, WebUser: "www-data"})
	if err != nil {
		t.Fatal(err)
	}
	node.Close()
	if !node.Changed() {
		t.Fatal("first Setup changed nothing")
	}
	if err := ng.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := ServedLeaf(context.Background(), tlsAddr, "x.example.test", time.Second); err == nil {
		t.Fatal("TLS served before a reload: the test does not show the need")
	}
	if err := ng.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The reload is asynchronous (a signal): the new listener comes up shortly.
	for deadline := time.Now().Add(5 * time.Second); ; {
		leaf, err := ServedLeaf(context.Background(), tlsAddr, "", time.Second)
		if err == nil && leaf.Subject.CommonName == "hostplane-default" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the reload: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	again, err := Setup(l, Options{Listen: tlsAddr, Mode: ModeVariable, WebUser: "www-data"})
	if err != nil {
		t.Fatal(err)
	}
	again.Close()
	if again.Changed() {
		t.Fatal("the same Setup again changed the includes")
	}
	other, err := Setup(l, Options{Listen: freePort(t), Mode: ModeVariable, WebUser: "www-data"})
	if err != nil {
		t.Fatal(err)
	}
	other.Close()
	tlsConf := filepath.Join(l.TLSDir(), "hostplane-tls.conf")
	if !other.Changed() || !strings.Contains(readFile(tlsConf), "listen "+strings.Split(tlsAddr, ":")[0]) {
		t.Fatal("another listener did not change the TLS include")
	}
	if err := other.Rollback(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(readFile(tlsConf), "listen "+tlsAddr+" ssl") {
		t.Fatalf("rollback did not restore the include:\n%s", readFile(tlsConf))
	}
}
