package httpapi

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// forwarder proxies /v1 (and admin) requests from a follower to the leader, so a
// client reads its own writes whichever coordinator it calls.
type forwarder struct {
	a         *API
	proxy     *httputil.ReverseProxy
	transport *http.Transport
	mux       muxState   // the channel for writes (forwardmux.go)
	runs      leaderRuns // who leads, while requests are in flight (forward_leadermove.go)
	// counts are the channels' traffic at this node's end of them: as a
	// follower (to the leader) and as the leader (from the followers).
	counts struct{ follower, leader channelCounts }
}

// leaderURL is the base URL of the coordinator API at addr for cluster
// traffic: https (mutual TLS) when the cluster has TLS, else http.
func (f *forwarder) leaderURL(addr string) *url.URL {
	if f.a.cfg.ClusterTLS != nil {
		return &url.URL{Scheme: "https", Host: addr}
	}
	return &url.URL{Scheme: "http", Host: addr}
}

// ClusterClient is the HTTP client for calls to other coordinators' APIs, and
// ClusterURL the leader's base URL for it ("" without a known leader).
func (a *API) ClusterClient() *http.Client { return &http.Client{Transport: a.fwd.transport} }

// ClusterURL is the leader's API base URL for cluster calls, "" when unknown.
func (a *API) ClusterURL() string {
	addr := a.LeaderAPIAddr()
	if addr == "" {
		return ""
	}
	return a.fwd.leaderURL(addr).String()
}

// MemberURL is the API base URL of the coordinator whose API listens at
// addr, for cluster calls (https when the cluster uses TLS).
func (a *API) MemberURL(addr string) string { return a.fwd.leaderURL(addr).String() }

type ctxLeaderURL struct{}

func newForwarder(a *API) *forwarder {
	// One transport for every forwarded request and cluster call: kept-alive
	// connections (TLS ones too) are reused, not dialled per request.
	f := &forwarder{a: a, transport: &http.Transport{
		Proxy:                 nil,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
	}}
	if a.cfg.ClusterTLS != nil {
		f.transport.TLSClientConfig = a.cfg.ClusterTLS.Clone()
	}
	f.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			target := pr.In.Context().Value(ctxLeaderURL{}).(*url.URL)
			pr.SetURL(target)
			// The query as the client sent it: the proxy re-encoded one that
			// does not parse (a ';', a bad '%' escape), dropping what it could
			// not read, so the leader, which refuses such a query (checkQuery),
			// saw what was left and served a follower's client another request.
			pr.Out.URL.RawQuery = pr.In.URL.RawQuery
			pr.Out.Host = target.Host
			pr.Out.Header.Set(headerForwardedBy, a.cfg.NodeID)
			pr.Out.Header.Del(headerAudiencePath) // only this node may say it (forwardAudience)
			forwardAudience(pr)
			pr.Out.Header.Del(headerBodyUnread) // nor this (proxyTo)
			if v, ok := pr.In.Context().Value(bodyUnreadKey{}).(string); ok {
				pr.Out.Header.Set(headerBodyUnread, v)
			}
			if a.cfg.ClusterTLS != nil {
				// The client certificate vouches for this node.
				pr.Out.Header.Set(headerClientIP, a.clientIP(pr.In))
			} else if a.cfg.ClusterSecret != "" {
				pr.Out.Header.Set(headerClusterToken, a.cfg.ClusterSecret)
				pr.Out.Header.Set(headerClientIP, a.clientIP(pr.In))
			}
		},
		Transport: f.transport,
		// Without a pool the proxy allocates a 32 KiB copy buffer per
		// response: most of a follower's garbage when it forwards writes.
		BufferPool: copyBuffers{},
		// This node has set X-Request-Id and nosniff already (the same values);
		// any other name the leader's answer carries is the leader's alone
		// (leadersHeader).
		ModifyResponse: func(resp *http.Response) error {
			endCut(resp.Request.Context())
			endStreamsWithError(resp) // forward_sse.go
			resp.Header.Del(headerRequestID)
			resp.Header.Del("X-Content-Type-Options")
			if own, ok := resp.Request.Context().Value(ownHeaderKey{}).(http.Header); ok {
				for k := range own {
					if _, leader := resp.Header[k]; leader && !notFromLeader(k) {
						delete(own, k)
					}
				}
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			a.log.Warn("forward to leader failed", "err", err, "path", r.URL.Path)
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("Retry-After", "1")
			a.uncountedLimitHeaders(w, r)
			writeRefusal(w, r, w.Header().Get(headerRequestID), api.NewError(http.StatusServiceUnavailable, "leader_unreachable", "the leader could not be reached; retry shortly"))
		},
	}
	return f
}

// copyBuffers lends the proxy its 32 KiB response copy buffers.
type copyBuffers struct{}

var copyBufferPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (copyBuffers) Get() []byte { return *copyBufferPool.Get().(*[]byte) }

func (copyBuffers) Put(b []byte) {
	if cap(b) == 32<<10 {
		b = b[:cap(b)]
		copyBufferPool.Put(&b)
	}
}

// LeaderAPIAddr returns the leader's advertised API address, or "". A
// follower asks on every request it forwards, so the answer is kept for the
// leader it names until a coordinator's record changes (ClusterVersion,
// loaded before the read, so a change committed meanwhile reloads it).
func (a *API) LeaderAPIAddr() string {
	id := a.raft.LeaderID()
	if id == "" {
		return ""
	}
	ver := a.state.ClusterVersion()
	if c := a.leaderAddr.Load(); c != nil && c.id == string(id) && c.version == ver {
		return c.addr
	}
	var n store.ClusterNode
	err := a.state.Read(func(r store.ReadTx) (err error) { n, err = r.ClusterNode(string(id)); return })
	if err == nil {
		a.leaderAddr.Store(&leaderAddr{id: string(id), version: ver, addr: n.APIAddr})
	}
	return n.APIAddr
}

// leaderAddr is LeaderAPIAddr's last answer.
type leaderAddr struct {
	id      string
	version uint64
	addr    string
}

func (f *forwarder) forward(w http.ResponseWriter, r *http.Request, rid string) {
	if r.Header.Get(headerForwardedBy) != "" && (f.a.clusterTokenOK(r) || !f.a.clusterAuth()) {
		// Forwarded to us but we are not the leader (any more): one hop only.
		// From a client the header means nothing (both ways of forwarding
		// replace it with this node's): before, a follower answered such a
		// client this 503 for ever, where the leader served it.
		w.Header().Set("Retry-After", "1")
		f.a.uncountedLimitHeaders(w, r)
		writeRefusal(w, r, rid, api.NewError(http.StatusServiceUnavailable, "no_leader", "leadership is changing; retry shortly"))
		return
	}
	addr := f.a.LeaderAPIAddr()
	if addr == "" {
		w.Header().Set("Retry-After", "1")
		f.a.uncountedLimitHeaders(w, r)
		writeRefusal(w, r, rid, api.NewError(http.StatusServiceUnavailable, "no_leader", "the cluster has no leader right now; retry shortly"))
		return
	}
	if v := r.Header[headerRequestID]; len(v) != 1 || v[0] != rid {
		r.Header.Set(headerRequestID, rid) // secureHeaders has set it already
	}
	// A leader that hangs or is cut off does not hold the request past a
	// new leader's election (forward_leadermove.go): a request on the
	// channel waits on its leader run's end, a proxied one's context ends
	// with it.
	if f.a.clusterAuth() && channelEligible(r) {
		if _, isStall := r.Body.(*stallBody); !isStall {
			if c := f.channel(addr); c != nil {
				run := f.joinRun(addr)
				defer f.leaveRun(run)
				f.forwardOnChannel(w, r, rid, c, addr, run.done)
				return
			}
		}
	}
	ctx, done := f.untilLeaderMoves(r.Context(), addr)
	defer done()
	f.proxyTo(w, r.WithContext(ctx), rid, f.leaderURL(addr))
}

// proxyTo sends r to the leader at u. A body is read here first, within this
// listener's body deadline (a stalled body is this node's 408, not a broken
// proxy); the response (which may be a stream) must then only keep moving: each
// write has the write timeout, not the whole response.
func (f *forwarder) proxyTo(w http.ResponseWriter, r *http.Request, rid string, u *url.URL) {
	if r.Body != nil && r.Body != http.NoBody {
		if _, isStall := r.Body.(*stallBody); !isStall {
			body, err := readBodyAny(w, r) // the leader checks the type
			if err != nil {
				unread, ok := bodyUnread(err)
				if !ok {
					ae, _ := toAPIError(err)
					f.a.uncountedLimitHeaders(w, r)
					writeRefusal(w, r, rid, ae)
					return
				}
				// The leader answers it (see bodyUnread).
				ctx, cancel := unreadContext(r.Context())
				defer cancel()
				r = r.WithContext(context.WithValue(ctx, bodyUnreadKey{}, unread))
				body = nil
			}
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		}
	}
	w.Header().Del("Cache-Control")
	if _, unread := r.Context().Value(bodyUnreadKey{}).(string); !unread {
		// The body is in (an unread one keeps its deadline: the server must
		// not wait for the rest of it after the answer).
		_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	}
	ctx := contextWith(r.Context(), u)
	if ownNames(w.Header()) {
		ctx = context.WithValue(ctx, ownHeaderKey{}, w.Header())
	}
	f.proxy.ServeHTTP(newStallWriter(w, f.a.cfg.Timeouts.Write), r.WithContext(ctx))
}

// The leader's answer is the answer: a header name it carries is its alone,
// and this node's values of that name, set before it forwarded the request
// (an OAuth endpoint's Pragma, a consent page's framing and referrer rules),
// are dropped rather than sent beside the leader's copy of them. Only
// X-Request-Id and nosniff stay this node's (notFromLeader: the leader's are
// dropped). Names the leader's answer leaves out keep this node's values.

// ownHeaderKey holds the header of the answer a proxied request's leader
// answer goes into, when this node had set names on it (ownNames).
type ownHeaderKey struct{}

// ownNames: h, the header of an answer about to be forwarded, holds a name
// beyond notFromLeader's, which the leader's answer could carry too (rare:
// a /v1 answer holds none by then).
func ownNames(h http.Header) bool {
	for k := range h {
		if !notFromLeader(k) {
			return true
		}
	}
	return false
}
