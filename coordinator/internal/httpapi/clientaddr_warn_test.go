package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// TestUntrustedForwardedForWarning: a request with X-Forwarded-For from a
// peer not in --trusted-proxies (whose header is ignored) is warned about
// once per peer, with the header's value escaped and cut short, and each
// such request counted in hostplane_untrusted_forwarded_for_total; a
// trusted peer's, a request without the header, and another coordinator's
// forwarded request (its client named with the cluster's credentials) are
// neither logged nor counted. Past maxXFFPeersLogged peers, one more line
// says no more are logged, and the memory held stays bounded.
func TestUntrustedForwardedForWarning(t *testing.T) {
	var logs bytes.Buffer
	a := &API{cfg: Config{TrustedProxies: mustProxies(t, "10.0.0.0/8"), ClusterSecret: "the-secret"},
		log: slog.New(slog.NewJSONHandler(&logs, nil))}
	served := 0
	u := newUntrustedXFF(a)
	h := u.handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served++
		w.WriteHeader(http.StatusNoContent)
	}))
	send := func(peer string, hdr map[string]string) {
		t.Helper()
		r := httptest.NewRequest("GET", "/v1/account", nil)
		r.RemoteAddr = peer
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusNoContent {
			t.Fatalf("request from %s: %d, not passed on", peer, w.Code)
		}
	}
	lines := func() []map[string]any {
		var out []map[string]any
		for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
			if l == "" {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("log line %q: %v", l, err)
			}
			out = append(out, m)
		}
		return out
	}

	// Trusted peer, no header, a coordinator's forwarded request: nothing.
	send("10.1.2.3:5000", map[string]string{"X-Forwarded-For": "198.51.100.7"})
	send("192.0.2.9:5000", nil)
	send("192.0.2.9:5000", map[string]string{"X-Forwarded-For": "198.51.100.7", headerClientIP: "198.51.100.7", headerClusterToken: "the-secret"})
	if n := counterValue(t, u); n != 0 || logs.Len() != 0 {
		t.Fatalf("trusted peer / no header / forwarded: counter %v, logs %q; want 0 and none", n, logs.String())
	}

	// An untrusted peer: one warning for its three requests, three counted.
	evil := "203.0.113.5\n{\"level\":\"ERROR\",\"msg\":\"forged\"}" + strings.Repeat("x", 500)
	for range 3 {
		send("192.0.2.9:5000", map[string]string{"X-Forwarded-For": evil})
	}
	if n := counterValue(t, u); n != 3 {
		t.Errorf("counter after 3 requests from an untrusted peer: %v; want 3", n)
	}
	ls := lines()
	if len(ls) != 1 {
		t.Fatalf("%d log lines for one untrusted peer; want 1:\n%s", len(ls), logs.String())
	}
	if ls[0]["level"] != "WARN" || ls[0]["peer"] != "192.0.2.9" || !strings.Contains(ls[0]["msg"].(string), "--trusted-proxies") {
		t.Errorf("warning: %v", ls[0])
	}
	if v, _ := ls[0]["x_forwarded_for"].(string); !strings.HasPrefix(v, "203.0.113.5\n{") || len(v) > maxXFFLogged+len("…") {
		t.Errorf("the header's value as logged: %q (%d bytes); want it escaped in the line and at most %d", v, len(v), maxXFFLogged)
	}

	// A peer naming a client in the forwarded-client header without the
	// cluster's credentials (a wrong token, none) is no coordinator: each
	// warned about and counted (review62 R3: nothing pinned the credential).
	logs.Reset()
	send("192.0.2.10:5000", map[string]string{"X-Forwarded-For": "198.51.100.7", headerClientIP: "198.51.100.7", headerClusterToken: "a-guess"})
	send("192.0.2.11:5000", map[string]string{"X-Forwarded-For": "198.51.100.7", headerClientIP: "198.51.100.7"})
	if n, ls := counterValue(t, u), lines(); n != 5 || len(ls) != 2 {
		t.Fatalf("two peers naming a client without the cluster's credentials: counter %v, %d log lines; want 5 and 2:\n%s", n, len(ls), logs.String())
	}

	// Many peers: at most maxXFFPeersLogged warnings, then one line.
	logs.Reset()
	for i := range maxXFFPeersLogged + 50 {
		send(fmt.Sprintf("[2001:db8::%x]:443", i+1), map[string]string{"X-Forwarded-For": "198.51.100.7"})
	}
	ls = lines()
	if len(ls) != maxXFFPeersLogged-2 {
		t.Errorf("%d log lines for %d new peers (%d remembered before); want %d", len(ls), maxXFFPeersLogged+50, 3, maxXFFPeersLogged-2)
	}
	if last := ls[len(ls)-1]; !strings.Contains(last["msg"].(string), "no more such peers are logged") {
		t.Errorf("last line: %v", last)
	}
	if n := len(u.peers); n > maxXFFPeersLogged {
		t.Errorf("%d peers remembered; want at most %d", n, maxXFFPeersLogged)
	}
	if n := counterValue(t, u); n != float64(5+maxXFFPeersLogged+50) {
		t.Errorf("counter: %v; want %d", n, 5+maxXFFPeersLogged+50)
	}
	if served != 3+3+2+maxXFFPeersLogged+50 {
		t.Errorf("%d requests passed on", served)
	}
}

// counterValue is what u's collector reports on /metrics.
func counterValue(t *testing.T, u *untrustedXFF) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(u.collector())
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || mfs[0].GetName() != "hostplane_untrusted_forwarded_for_total" {
		t.Fatalf("gather: %v %v", mfs, err)
	}
	return mfs[0].GetMetric()[0].GetCounter().GetValue()
}

// TestLoggedValueBound: the header's value as a warning quotes it is valid
// UTF-8 and at most maxXFFLogged bytes (plus the "…" mark) whatever it
// holds: invalid bytes each replaced by a 3-byte U+FFFD must not take it
// past the bound (cut before replacing, "\xffa" repeated came out twice
// the bound), and a cut never splits a character.
func TestLoggedValueBound(t *testing.T) {
	for _, v := range []string{
		strings.Repeat("\xffa", 100),
		"a" + strings.Repeat("é", 100),
		strings.Repeat("x", 500),
		"203.0.113.5",
	} {
		got := loggedValue(v)
		if !utf8.ValidString(got) || len(got) > maxXFFLogged+len("…") {
			t.Errorf("loggedValue(%q) = %q (%d bytes, valid %v); want valid UTF-8 of at most %d bytes", v, got, len(got), utf8.ValidString(got), maxXFFLogged+len("…"))
		}
		if len(v) <= maxXFFLogged && got != v {
			t.Errorf("loggedValue(%q) = %q; want it unchanged", v, got)
		}
	}
}
