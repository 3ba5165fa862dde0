package oauthtest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/server"
	"golang.org/x/oauth2"
)

// TestClientMetadataDocument: a client whose client_id is the https URL of its
// metadata document needs no registration: the coordinator fetches the
// document (under the webhook SSRF rules, relaxed here for a loopback test
// server as --webhook-allow-private does) and shows its name on the consent
// page; a document that names another client_id, and URLs the SSRF rules
// refuse even in development (a cloud metadata address), are refused.
func TestClientMetadataDocument(t *testing.T) {
	var fetches atomic.Int32
	var doc map[string]any
	mux := http.NewServeMux()
	mux.HandleFunc("/client.json", func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(doc)
	})
	mux.HandleFunc("/liar.json", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"client_id": "https://elsewhere.example/c.json", "client_name": "Liar", "redirect_uris": []string{"http://127.0.0.1:9/callback"}})
	})
	srv := httptest.NewTLSServer(mux)
	defer srv.Close()
	clientID := srv.URL + "/client.json"
	doc = map[string]any{"client_id": clientID, "client_name": "Metadata Doc Client", "redirect_uris": []string{"http://127.0.0.1:9/callback"}}
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	e := start(t, func(_ int, cfg *server.Config) {
		cfg.Webhooks.AllowPrivate = true
		cfg.Webhooks.TLSConfig = &tls.Config{RootCAs: roots}
	})
	acc, key := e.account("cimd@example.com")
	cfg := e.oauthConfig(clientID, "account:read")
	verifier := oauth2.GenerateVerifier()
	authURL := cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier))
	status, body, _ := newBrowser(t).get(authURL)
	if status != 200 || !strings.Contains(body, "Metadata Doc Client") {
		t.Fatalf("consent page for a metadata-document client: %d %s", status, body)
	}
	q := e.authorize(authURL, key)
	tok, err := cfg.Exchange(e.ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := bearerT(t, e.base, tok.AccessToken).Account(e.ctx); err != nil || got.ID != acc.ID {
		t.Fatalf("token of a metadata-document client: %+v %v", got, err)
	}
	if fetches.Load() < 1 {
		t.Fatal("the document was never fetched")
	}
	apps, err := bearerT(t, e.base, key).ConnectedApps(e.ctx)
	if err != nil || len(apps.Data) != 1 || apps.Data[0].ClientID != clientID || apps.Data[0].ClientName != "Metadata Doc Client" {
		t.Fatalf("connected apps: %+v %v", apps, err)
	}

	for _, c := range []struct{ id, why string }{
		{srv.URL + "/liar.json", "client_id"},
		{"https://169.254.169.254/latest/client.json", "metadata address"},
		{srv.URL + "/missing.json", "404"},
	} {
		status, body, _ := newBrowser(t).get(e.oauthConfig(c.id).AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)))
		if status != 400 || !strings.Contains(body, c.why) {
			t.Errorf("client %s: %d, want 400 naming %q: %s", c.id, status, c.why, body)
		}
	}
	// The device flow needs the grant type in the document.
	if st, out := e.postForm("/oauth/device_authorization", url.Values{"client_id": {clientID}}); st != 400 || out["error"] != "unauthorized_client" {
		t.Fatalf("device flow for a client without the grant: %d %v", st, out)
	}
}
