package httpapi

import (
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// An X-Forwarded-For from a peer outside --trusted-proxies is not read (the
// peer is the client). That is right for a client that sends one itself, and
// wrong for a proxy the operator forgot to list: every client behind it then
// counts as the proxy (the per-address rate limit, the stream caps, key
// allow-lists). untrustedXFF says so: a WARN once per peer address (the
// first maxXFFPeersLogged distinct peers; past them one more line, then only
// the counter) and hostplane_untrusted_forwarded_for_total.

// maxXFFPeersLogged bounds the peers warned about (and remembered).
const maxXFFPeersLogged = 256

// maxXFFLogged is the most of the header's value a warning quotes.
const maxXFFLogged = 128

type untrustedXFF struct {
	a     *API
	total atomic.Int64
	mu    sync.Mutex
	peers map[netip.Addr]struct{} // warned about, at most maxXFFPeersLogged
	full  bool                    // the line saying no more peers are logged was written
}

// UntrustedForwardedFor wraps a listener's handler with the warning about
// X-Forwarded-For from untrusted peers, and gives its counter's collector.
func (a *API) UntrustedForwardedFor(next http.Handler) (http.Handler, prometheus.Collector) {
	u := newUntrustedXFF(a)
	return u.handler(next), u.collector()
}

func newUntrustedXFF(a *API) *untrustedXFF {
	return &untrustedXFF{a: a, peers: map[netip.Addr]struct{}{}}
}

func (u *untrustedXFF) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.note(r)
		next.ServeHTTP(w, r)
	})
}

func (u *untrustedXFF) collector() prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "hostplane_untrusted_forwarded_for_total",
		Help: "Requests with an X-Forwarded-For header from a peer not in --trusted-proxies: the header was ignored and the peer counted as the client (each such peer is logged once at WARN).",
	}, func() float64 { return float64(u.total.Load()) })
}

// note counts (and, for a new peer, logs) r when it carries an
// X-Forwarded-For that clientIP does not read because its peer is not a
// trusted proxy. A coordinator's forwarded request names its client itself
// (headerClientIP, with the cluster's credentials): not counted.
func (u *untrustedXFF) note(r *http.Request) {
	xff := r.Header.Values(headerXFF)
	if len(xff) == 0 || strings.TrimSpace(strings.Join(xff, "")) == "" {
		return
	}
	_, peer, ok := tcpPeer(r)
	if !ok {
		return // not a network peer (an in-process caller)
	}
	if trustedAddr(peer, u.a.cfg.TrustedProxies) {
		return
	}
	if r.Header.Get(headerClientIP) != "" && u.a.clusterTokenOK(r) {
		return
	}
	u.total.Add(1)
	u.mu.Lock()
	_, seen := u.peers[peer]
	first, last := false, false
	switch {
	case seen:
	case len(u.peers) < maxXFFPeersLogged:
		u.peers[peer] = struct{}{}
		first = true
	case !u.full:
		u.full, last = true, true
	}
	u.mu.Unlock()
	switch {
	case first:
		u.a.log.Warn("X-Forwarded-For from a peer not in --trusted-proxies is ignored: its requests count as the peer's "+
			"(rate limits, stream caps, key allow-lists); if the peer is your reverse proxy or load balancer, add it to --trusted-proxies "+
			"(logged once per peer; hostplane_untrusted_forwarded_for_total counts them all)",
			"peer", peer.String(), "x_forwarded_for", loggedValue(strings.Join(xff, ", ")))
	case last:
		u.a.log.Warn("X-Forwarded-For from more peers not in --trusted-proxies is ignored; no more such peers are logged "+
			"(hostplane_untrusted_forwarded_for_total counts their requests)", "peers_logged", maxXFFPeersLogged)
	}
}

// loggedValue is a header value as a warning quotes it: valid UTF-8 (each
// invalid run a U+FFFD), cut to at most maxXFFLogged bytes at a character's
// start and marked "…" (the log handler escapes the rest). Replaced before
// cut, so the cut holds for the replaced text too (review62: cut first, up
// to ~3× the bound came out).
func loggedValue(v string) string {
	v = strings.ToValidUTF8(v, "\uFFFD")
	if len(v) <= maxXFFLogged {
		return v
	}
	cut := maxXFFLogged
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return v[:cut] + "…"
}
