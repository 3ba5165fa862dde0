package httpapi

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strconv"
	"strings"
	"testing"
)

// proxyHeader is the header the channel sent before it was framed without a
// copy (a clone of the client's, edited): what the proxy sends the leader.
// forwardedHeader must frame exactly this.
func proxyHeader(f *forwarder, r *http.Request, body []byte) http.Header {
	h := r.Header.Clone()
	for _, v := range h["Connection"] {
		for _, name := range strings.Split(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	trailers := false
	for _, v := range h["Te"] {
		for _, t := range strings.Split(v, ",") {
			trailers = trailers || strings.EqualFold(textproto.TrimString(t), "trailers")
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
	if trailers {
		h.Set("Te", "trailers")
	}
	if _, ok := h["User-Agent"]; ok && h.Get("User-Agent") == "" {
		delete(h, "User-Agent")
	}
	for _, k := range []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
		delete(h, k)
	}
	delete(h, headerAudiencePath)
	// The headers this node says itself, set as the proxy sets its own (each
	// replaces the client's of that name).
	f.ownHeaders(r, len(body), h.Set)
	return h
}

// framedHeader decodes the header forwardedHeader frames for r.
func framedHeader(t testing.TB, f *forwarder, r *http.Request, body []byte) http.Header {
	t.Helper()
	_, _, payload := frameOf(t, appendRequestFrameWith(nil, 1, r.Method, "leader:1", r.URL.RequestURI(), f.forwardedHeader(r, body), body))
	q, err := decodeRequest(payload)
	if err != nil {
		t.Fatalf("the framed request does not decode: %v", err)
	}
	return q.Header
}

// headerNames are the names the checks draw from: every one forwarding
// treats apart, some in other cases, and plain ones.
var headerNames = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer",
	"Transfer-Encoding", "Upgrade", "User-Agent", "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto",
	headerForwardedBy, headerAudiencePath, headerClientIP, headerClusterToken, "Content-Length", "Content-Type",
	"Authorization", "Idempotency-Key", headerRequestID, "X-Drop", "X-Keep", "content-length", "x-drop", "te", "A b",
}

var headerValues = []string{"", "1", "trailers", "Trailers, x", "gzip ,TRAILERS", "keep-alive, X-Drop", "x-drop,te",
	"User-Agent", "Content-Length, " + headerForwardedBy, "close", "a,,b", " , ", "Go-http-client/1.1", "x-forwarded-for"}

// forwarders are a follower configured each way a channel can be: the
// cluster secret, or mutual TLS.
func forwarders() []*forwarder {
	var out []*forwarder
	for _, cfg := range []Config{
		{NodeID: "f1", ClusterSecret: "the-secret"},
		{NodeID: "f2", ClusterTLS: &tls.Config{}},
	} {
		a := &API{cfg: cfg, log: slog.New(slog.DiscardHandler)}
		a.fwd = &forwarder{a: a}
		out = append(out, a.fwd)
	}
	return out
}

// TestForwardedHeaderIsTheProxys: the header a follower frames for the leader
// is, name by name and value by value, the one the proxy's rules give (the
// clone edited as before), for headers drawn at random from the names that
// forwarding treats apart (hop-by-hop, Connection's list, Te, an empty
// User-Agent, X-Forwarded-*, the cluster's own, Content-Length, odd cases),
// with and without an audience path and over both kinds of cluster auth.
func TestForwardedHeaderIsTheProxys(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, f := range forwarders() {
		for i := 0; i < 3000; i++ {
			r := httptest.NewRequest("POST", "http://f1:8080/v1/tickets?x=1", nil)
			r.RemoteAddr = "198.51.100.7:5555"
			for n := rng.IntN(9); n > 0; n-- {
				k := headerNames[rng.IntN(len(headerNames))]
				r.Header[k] = append(r.Header[k], headerValues[rng.IntN(len(headerValues))])
			}
			if rng.IntN(10) == 0 {
				r.Header["X-Empty"] = []string{}
			}
			if rng.IntN(4) == 0 {
				r = r.WithContext(context.WithValue(r.Context(), audienceKey{}, "/v1/servers"))
			}
			body := make([]byte, rng.IntN(100))
			want := proxyHeader(f, r, body)
			delete(want, "X-Empty") // a name without values is not framed (nor sent by the proxy)
			got := framedHeader(t, f, r, body)
			if !sameHeader(got, want) {
				t.Fatalf("request header %v: framed %v, the proxy's %v", r.Header, got, want)
			}
			// What this node says itself (ownHeaders, which both use).
			_, audience := r.Context().Value(audienceKey{}).(string)
			// (Over mutual TLS no token is said: a client's passes as any header.)
			token := f.a.cfg.ClusterTLS == nil
			if got.Get(headerForwardedBy) != f.a.cfg.NodeID || got.Get(headerClientIP) != "198.51.100.7" ||
				got.Get("Content-Length") != strconv.Itoa(len(body)) || (got.Get(headerAudiencePath) == "/v1/servers") != audience ||
				token && (got.Get(headerClusterToken) != "the-secret" || len(got[headerClusterToken]) != 1) {
				t.Fatalf("request header %v: framed %v, without this node's own headers", r.Header, got)
			}
		}
	}
}

// FuzzForwardedHeader: as TestForwardedHeaderIsTheProxys over headers the
// fuzzer makes: each pair of input lines is a name and a value.
func FuzzForwardedHeader(f *testing.F) {
	f.Add("Connection\nkeep-alive, X-Drop\nX-Drop\n1\nTe\ntrailers\nUser-Agent\n\nContent-Length\n9")
	f.Add("Connection\nte, user-agent\nTe\ntrailers\nUser-Agent\n")
	f.Add("x-forwarded-for\n1.2.3.4\nX-Forwarded-For\n1.2.3.4\nX-Hostplane-Forwarded-By\nme")
	fwds := forwarders()
	f.Fuzz(func(t *testing.T, in string) {
		lines := strings.Split(in, "\n")
		for _, fw := range fwds {
			r := httptest.NewRequest("POST", "http://f1:8080/v1/tickets", nil)
			for i := 0; i+1 < len(lines); i += 2 {
				r.Header[lines[i]] = append(r.Header[lines[i]], lines[i+1])
			}
			want := proxyHeader(fw, r, []byte(in))
			if got := framedHeader(t, fw, r, []byte(in)); !sameHeader(got, want) {
				t.Fatalf("request header %v: framed %v, the proxy's %v", r.Header, got, want)
			}
		}
	})
}

// TestDecodedHeaderValuesStandAlone: the values of a decoded header share one
// array; appending to one name's values (as a handler may) leaves every other
// name's as decoded.
func TestDecodedHeaderValuesStandAlone(t *testing.T) {
	h := http.Header{}
	for i := 0; i < 6; i++ {
		k := fmt.Sprintf("X-%d", i)
		h[k] = []string{k}
		if i%2 == 1 {
			h[k] = append(h[k], k+"b")
		}
	}
	_, _, payload := frameOf(t, appendResponseFrame(nil, 1, 200, h, nil))
	p, err := decodeResponse(payload)
	if err != nil {
		t.Fatal(err)
	}
	for k := range p.Header {
		p.Header[k] = append(p.Header[k], "added to "+k)
	}
	for k, vs := range h {
		want := append(append([]string(nil), vs...), "added to "+k)
		if got := p.Header[k]; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
}
