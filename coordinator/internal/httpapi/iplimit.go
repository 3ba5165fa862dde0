package httpapi

import (
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hostplane/hostplane/coordinator/internal/auth"
	"github.com/hostplane/hostplane/coordinator/internal/ratelimit"
)

// DefaultIPRateLimit is the per-minute budget of one client address for the
// requests that carry no valid key (--ip-rate-limit): /v1's and /mcp's, GET
// /openapi.json, and every request to the OAuth endpoints (oauthWrap,
// pageWrap, addressCounted), 2.5 times a key's default, so that the few such
// requests a client makes (GET /v1/scopes, the document, a mistyped or
// revoked key, an OAuth sign-in) from many clients behind one NAT address are
// not cut off, while one address sending bad keys, guessed codes or none is
// held to 5 a second on each coordinator.
const DefaultIPRateLimit = 300

// ipBudgetPrefix names the address budgets' windows (in a limiter of their
// own, ipLimiter, apart from the keys').
const ipBudgetPrefix = "v1-ip:"

// ipWindows is the most client addresses' windows a coordinator holds (about
// 13 MiB: 131 B an address, ratelimit BenchmarkAddressWindowMemory). A
// client spraying requests from more addresses than that in a minute (an IPv6
// /64 each) grows it no further: a running window is never dropped (its
// address would come back to a fresh budget), so until the oldest ends, the
// addresses it has no room for share one budget of --ip-rate-limit
// (ratelimit.NewCapped): limited early, never late. A key's requests are
// not counted here and are unaffected.
const ipWindows = 100_000

// ipTableCollectors are the per-address table's series on /metrics: its
// entries (windows held, ended ones not yet dropped included) against its
// cap, and the requests counted in the window the addresses a full table has
// no room for share (limited early, if anything: a flood from more addresses
// than the cap in a minute, or a cap too small for the clients).
func (a *API) ipTableCollectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "hostplane_ip_rate_windows",
			Help: "Client addresses' windows held by this coordinator for the requests without a valid key (--ip-rate-limit), ended ones not yet dropped included.",
		}, func() float64 { return float64(a.ipLimiter.Len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "hostplane_ip_rate_windows_max",
			Help: "The most client addresses' windows this coordinator holds; past it new addresses share one window.",
		}, func() float64 { return float64(a.cfg.IPWindows) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "hostplane_ip_rate_overflow_requests_total",
			Help: "Requests without a valid key counted in the one window shared by the addresses a full table had no room for.",
		}, func() float64 { return float64(a.ipLimiter.Overflowed()) }),
	}
}

// ipBudgetKey is the limiter key of the budget of client address ip (as
// clientIP gives it, the address the key allow-lists check): an IPv4 address
// (an IPv4-mapped IPv6 one as IPv4), or an IPv6 address's /64, the block one
// host is given, so that a client cannot step round its budget by changing
// the low bits of its address. Anything else (no address: an in-process
// caller) is its own budget.
func ipBudgetKey(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ipBudgetPrefix + ip
	}
	addr = addr.Unmap().WithZone("")
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return ipBudgetPrefix + p.String()
	}
	return ipBudgetPrefix + addr.String()
}

// limitUnkeyed counts a request that carries no valid key (none, a malformed,
// unknown, revoked or expired one, one used from an address its allow-list
// does not hold, or a public route's) against its client address's budget on
// this coordinator, the one that answers it, and sets X-RateLimit-* to that
// budget's figures: a 429 rate_limited with Retry-After beyond it. A leader
// counts what followers forward to it under the address they pass on.
func (a *API) limitUnkeyed(w http.ResponseWriter, r *http.Request) error {
	d := a.ipLimiter.Allow(ipBudgetKey(a.clientIP(r)), a.cfg.IPRateLimit)
	return limitAnswer(w.Header(), d, a.wall(), unkeyedLimitMsg)
}

const unkeyedLimitMsg = "rate limit of %d requests per minute without a valid API key from this address exceeded; retry after %d s"

// spendAddress counts r against its client address's budget on this
// coordinator, as limitUnkeyed does, for an answer in another format than
// the API's (OAuth's errors, the consent pages): it sets X-RateLimit-* and,
// when the budget is spent, Retry-After, and returns the budget and the
// seconds to wait (0: the request may go on).
func (a *API) spendAddress(w http.ResponseWriter, r *http.Request) (limit, retry int) {
	d := a.ipLimiter.Allow(ipBudgetKey(a.clientIP(r)), a.cfg.IPRateLimit)
	setLimitHeaders(w.Header(), d)
	if d.Allowed {
		return d.Limit, 0
	}
	retry = retryAfter(d, a.wall())
	w.Header().Set("Retry-After", strconv.Itoa(retry))
	return d.Limit, retry
}

// addressCounted serves h (an answer that takes no credential and is written
// on the coordinator the request reaches: the OAuth metadata documents) after
// counting it against the client address's budget here: a 429 rate_limited
// beyond it.
func (a *API) addressCounted(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := a.limitUnkeyed(w, r); err != nil {
			ae, _ := toAPIError(err)
			writeError(w, requestID(r), ae)
			return
		}
		h(w, r)
	}
}

// peekUnkeyed sets X-RateLimit-* to the figures of r's client address budget
// on this coordinator, counting nothing (an answer written before the request
// is counted: uncountedLimitHeaders).
func (a *API) peekUnkeyed(w http.ResponseWriter, r *http.Request) {
	if a.ipLimiter == nil {
		return // an API not made by New: tests of the forwarding alone
	}
	setLimitHeaders(w.Header(), a.ipLimiter.Peek(ipBudgetKey(a.clientIP(r)), a.cfg.IPRateLimit))
}

// limitAnswer sets d's X-RateLimit-* headers on h and, when d refuses the
// request, Retry-After, returning the 429 (msg takes the limit and the
// seconds to wait).
func limitAnswer(h http.Header, d ratelimit.Decision, now time.Time, msg string) error {
	setLimitHeaders(h, d)
	if d.Allowed {
		return nil
	}
	retry := retryAfter(d, now)
	h.Set("Retry-After", strconv.Itoa(retry))
	return errf(http.StatusTooManyRequests, "rate_limited", msg, d.Limit, retry)
}

// retryAfter is the whole seconds from now until refused decision d's window
// frees a request, at least 1.
func retryAfter(d ratelimit.Decision, now time.Time) int {
	retry := int(d.Reset.Sub(now).Seconds() + 0.999)
	if retry < 1 {
		retry = 1
	}
	return retry
}

// limitPublic counts a request to a route served without a key (GET
// /v1/scopes, GET /openapi.json): against the key it presents when that key
// is valid from the client's address (the key's headers, as on any keyed
// request), else against the address's budget. The key is not otherwise
// used: no usage entry, and an invalid one is no 401 here.
func (a *API) limitPublic(rq *request) error {
	if auth.FromRequest(rq.Request) != "" {
		// No writer: a failed token check sets no WWW-Authenticate.
		c, err := a.authenticate(&request{Request: rq.Request, now: rq.now})
		if err == nil && auth.IPAllowed(c.cidrs, rq.clientIP) {
			return a.rateLimit(rq, c)
		}
	}
	return a.limitUnkeyed(rq.w, rq.Request)
}
