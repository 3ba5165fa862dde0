// Package httpapi serves hostplane's public /v1 API and the operator admin API: the
// route table with each route's scope, authentication, rate limits, idempotency,
// forwarding to the Raft leader, error mapping and the handlers.
package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/auth"
	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/hlc"
	"github.com/hostplane/hostplane/coordinator/internal/oauth"
	"github.com/hostplane/hostplane/coordinator/internal/raftnode"
	"github.com/hostplane/hostplane/coordinator/internal/ratelimit"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/brand"
	"github.com/hostplane/hostplane/pkg/validate"
)

// Config holds the API's settings.
type Config struct {
	NodeID string
	// Brand is the public dialect (nil: sunucu): paths, scopes, event
	// names and payload fields, the OpenAPI document, the key prefix's default.
	Brand            *brand.Brand
	KeyPrefix        string // "snc_" (empty: the brand's)
	DefaultRateLimit int    // requests per minute per key
	// IPRateLimit is the requests per minute of one client address (an
	// IPv6 /64) without a valid key, on each coordinator that answers them
	// (iplimit.go; 0: DefaultIPRateLimit).
	IPRateLimit int
	// IPWindows is the most client addresses' windows held for IPRateLimit
	// (iplimit.go; 0: ipWindows, 100,000). Tests set a small one.
	IPWindows int
	// TrustedProxies are the reverse proxies in front of the API
	// (--trusted-proxies, ParseTrustedProxies): a request from one has its
	// client address taken from X-Forwarded-For (clientaddr.go). Empty: the
	// TCP peer is the client.
	TrustedProxies []netip.Prefix
	IdempotencyTTL time.Duration // 24h
	ClusterSecret  string        // shared by coordinators; authenticates forwarded requests over plain HTTP
	// ClusterTLS (the Raft transport's mutual TLS, cluster CA) carries the
	// forwarding between coordinators when set: a peer presenting a
	// certificate of the cluster CA is a coordinator, no secret needed.
	ClusterTLS   *tls.Config
	ApplyTimeout time.Duration
	Timeouts     Timeouts // the listeners' limits (zero: DefaultTimeouts)
	// Issuer is the public base URL of the API (--public-url): the OAuth
	// issuer and the base of the resource identifiers tokens are bound to.
	Issuer string
	// IssuerDefaulted: Issuer is the default http://<api address>, no
	// --public-url was given (ClusterStatus warns of it with several
	// members).
	IssuerDefaulted bool
	Tuning
	// ReservedDomains are the provider's own names (--reserved-domains, in
	// ReservedDomain's form): with each subdomain, and every enrolled
	// node's hostname, refused as a customer's hosting or custom domain
	// (domainNotReserved). Per coordinator, not replicated.
	ReservedDomains []string
}

// Tuning is the part of Config that the coordinator's configuration
// (server.Config, which embeds it) carries as it is.
type Tuning struct {
	// OAuthPollInterval is the device-code polling interval (0: 5 s).
	OAuthPollInterval time.Duration
	// DNSResolver is the recursive resolver custom-domain verification starts
	// from (host:port; 127.0.0.1:53 when empty); DNSNSPort the port the
	// domain's authoritative servers are asked on (53 when empty; tests).
	DNSResolver string
	DNSNSPort   string
	// StatsStreamsPerAccount bounds the stats streams (?stream=1) one
	// account may hold open at once (0: DefaultStatsStreamsPerAccount);
	// StatsStreamsPerIP those one client address holds, whatever the
	// account (0: DefaultStatsStreamsPerIP); StatsCallsPerNode the stats
	// calls, one-shot and streams, open to one node's agent (0:
	// DefaultStatsCallsPerNode). See statsCaps.
	StatsStreamsPerAccount int
	StatsStreamsPerIP      int
	StatsCallsPerNode      int
}

// API is the HTTP surface of one coordinator.
type API struct {
	cfg   Config
	raft  raftnode.Cluster // consensus: apply, leadership, membership
	state *fsm.FSM         // the replicated state this node has applied
	log   *slog.Logger
	// now is the clock of ids and command times: wall held to the latest
	// time of the entries applied here (hlc), so a leader whose clock is
	// behind the previous one's makes nothing that sorts or dates before
	// what that one made. wall, the clock New was given, times the rate
	// limits' windows, which must run with the wall clock.
	now     func() time.Time
	wall    func() time.Time
	limiter *ratelimit.Limiter // the key windows this node counts as leader
	// ipLimiter counts the client addresses' budgets of requests without a
	// valid key (iplimit.go), in a table of cfg.IPWindows windows.
	ipLimiter *ratelimit.Limiter
	// leases are the tokens this node, as a follower, leased from the
	// leader's windows for the stale reads it serves (ratelease.go).
	leases      *ratelimit.Leases
	votersCache atomic.Pointer[votersCount]
	metrics     *Metrics
	Usage       *UsageRecorder
	// usageFlush is the leader's key usage flush: its sequence and the
	// flush that failed, kept for the next (FlushUsage).
	usageFlush usageFlush
	fwd        *forwarder
	// kekState is the key-encryption key check /readyz reports (nil: none).
	kekState func() string
	// backupState streams the state's copy for /admin/cluster/backup (nil:
	// (*fsm.FSM).BackupLabelled): this API's own, so a test's failing copy
	// reaches no other API of the process.
	backupState func(s *fsm.FSM, w io.Writer, label func(appliedIndex uint64)) error
	// readBack reads the state for answerLogged (nil: a.state.Read): this
	// API's own, so a test's failing read-back reaches no other API.
	readBack func(fn func(r store.ReadTx) error) error

	// readyTerm is the Raft term in which this node, as leader, has applied every
	// entry committed before it (a barrier). Until then its FSM may lag the
	// previous leader's acknowledged writes, so it must not serve.
	readyTerm atomic.Uint64

	// keyCache maps a key hash to its authorising record, tagged with the FSM's
	// keys version; any key create/revoke/restore invalidates every entry.
	keyCache sync.Map // string → *cachedKey
	// leaderAddr is LeaderAPIAddr's cached answer.
	leaderAddr atomic.Pointer[leaderAddr]
	// reserved is the reserved-name set domainNotReserved built last
	// (reservedNow).
	reserved atomic.Pointer[reservedCache]

	// statsCaps counts the stats calls open on agent sessions.
	statsCaps *statsCaps

	webhooks atomic.Pointer[WebhookDeps]
	servers  atomic.Pointer[ServerDeps]
	// domainReg is the registered-domain routes' registry (SetDomainDeps).
	domainReg atomic.Pointer[DomainDeps]
	// orderCfg is the placement policy orders use (ServerAdmin sets it).
	orderCfg atomic.Pointer[ServerAdminConfig]
	oauthRT  oauthRuntime

	inflightMu sync.Mutex
	inflight   map[string]struct{}

	routes  []Route
	mounts  []mount // extra handlers on the public listener (Mount)
	brand   *brand.Brand
	openapi []byte // the brand's OpenAPI document
	// adminMuxes are the muxes of every admin layer (newAdminMux), which the
	// admin fallback asks for the methods a path is served with.
	adminMu    sync.Mutex
	adminMuxes []*http.ServeMux
	// brandMismatch, when set, says why this coordinator's brand is not the
	// cluster's: /readyz and every /v1 call answer 503 with it.
	brandMismatch atomic.Pointer[string]
	// memberLevels: SetMemberLevels.
	memberLevels atomic.Pointer[map[string]uint16]
}

// SetBrandMismatch makes the API refuse to serve with msg (a coordinator
// started with another --brand than its cluster's); "" serves again.
// SetMemberLevels records, on the leader, the newest semantics level each
// member's binary applies, as the leader last asked them (ClusterStatus
// shows them).
func (a *API) SetMemberLevels(levels map[string]uint16) { a.memberLevels.Store(&levels) }

func (a *API) SetBrandMismatch(msg string) {
	if msg == "" {
		a.brandMismatch.Store(nil)
		return
	}
	a.brandMismatch.Store(&msg)
}

// Route is one public operation: the table drives registration, the scope check,
// the OpenAPI coverage test and the scope-matrix test.
type Route struct {
	Method string
	Path   string // net/http pattern path, e.g. /v1/tickets/{id}
	Scope  string
	// AltScope lets a key with it instead of Scope call the route too; the
	// handler then shows what that scope reads (GET /v1/actions/{id}: a key
	// with hosting:read follows a hosting account's action, SPEC "the scope
	// that reads its resource").
	AltScope string
	// Public marks a route served without a key (GET /v1/scopes): no
	// authentication, rate limit or usage log, and no Scope.
	Public     bool
	Idempotent bool // honours Idempotency-Key
	// SpendsMoney marks an order: its MCP tool answers a first call with a
	// quote and a short-lived confirmation token, and only a second call
	// with that token runs the operation.
	SpendsMoney bool
	// Quote is the operation ("METHOD /v1/path") that prices the same input
	// without spending, for SpendsMoney routes that have one.
	Quote   string
	handler handlerFunc
	// replay, when set, makes an Idempotent route's replayed answer (the
	// stored body) into what the first answer said where the stored body
	// does not hold it (POST /v1/hosting: the account's connection
	// details, hostingOrderReplay).
	replay func(rq *request, stored any) any
	// replayAnswer, when set, answers a replay instead (status and body),
	// given the record under the key's scope: a route whose command stores
	// its answer before the operation has ended (a domain order's 202, a
	// domain change's 200 with the change pending) answers what the first
	// request answers once it has (domainreg.go's domainOpReplay).
	replayAnswer func(rq *request, scope string, rec store.IdemRecord) (int, any, error)
	// query is the sorted query parameter names the operation declares in
	// /openapi.json; any other is refused (queryparams.go).
	query []string
}

type handlerFunc func(rq *request) (int, any, error)

// request is one authenticated call.
type request struct {
	*http.Request
	w        http.ResponseWriter
	id       string
	caller   *caller
	idem     *fsm.IdemRequest
	now      time.Time
	body     []byte
	clientIP string
	// scope is the route's scope the caller's key was let in with (the
	// route's Scope, or its AltScope), in the brand's name: what a stream
	// checks again (StreamRefusal).
	scope string
}

type caller struct {
	keyID     string
	accountID string
	scopes    []string
	limit     int
	cidrs     []string
	token     bool // an OAuth access token (keyID is its grant), not an API key
}

// New builds the API. metrics may be nil.
func New(cfg Config, node *raftnode.Node, log *slog.Logger, now func() time.Time, metrics *Metrics) *API {
	if now == nil {
		now = time.Now
	}
	cfg.Brand = brand.Of(cfg.Brand)
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = cfg.Brand.KeyPrefix
	}
	if cfg.DefaultRateLimit <= 0 {
		cfg.DefaultRateLimit = 120
	}
	if cfg.IPRateLimit <= 0 {
		cfg.IPRateLimit = DefaultIPRateLimit
	}
	if cfg.IPWindows <= 0 {
		cfg.IPWindows = ipWindows
	}
	if cfg.StatsStreamsPerAccount <= 0 {
		cfg.StatsStreamsPerAccount = DefaultStatsStreamsPerAccount
	}
	if cfg.StatsStreamsPerIP <= 0 {
		cfg.StatsStreamsPerIP = DefaultStatsStreamsPerIP
	}
	if cfg.StatsCallsPerNode <= 0 {
		cfg.StatsCallsPerNode = DefaultStatsCallsPerNode
	}
	if cfg.IdempotencyTTL <= 0 {
		cfg.IdempotencyTTL = 24 * time.Hour
	}
	if cfg.ApplyTimeout <= 0 {
		cfg.ApplyTimeout = 10 * time.Second
	}
	if cfg.Timeouts == (Timeouts{}) {
		cfg.Timeouts = DefaultTimeouts()
	}
	a := &API{
		cfg: cfg, raft: node, state: node.FSM, log: log, now: hlc.New(now, node.FSM.AppliedAt).Now, wall: now, limiter: ratelimit.New(now), metrics: metrics,
		ipLimiter: ratelimit.NewCapped(now, cfg.IPWindows),
		Usage:     NewUsageRecorder(), inflight: map[string]struct{}{},
		statsCaps: newStatsCaps(cfg.StatsStreamsPerAccount, cfg.StatsStreamsPerIP, cfg.StatsCallsPerNode),
		oauthRT:   oauthRuntime{polls: map[string]*devicePoll{}, clients: map[string]cachedClient{}},
	}
	if metrics != nil {
		metrics.Register(a.ipTableCollectors()...)
	}
	a.fwd = newForwarder(a)
	if metrics != nil {
		metrics.Register(a.fwd.countCollectors()...)
	}
	a.leases = ratelimit.NewLeases(now, a.fetchLeaseLogged, node.LeaderID, a.voters)
	a.brand = cfg.Brand
	a.routes = BrandRoutes(cfg.Brand, a.allRoutes())
	doc, err := BrandOpenAPI(cfg.Brand, OpenAPI)
	if err != nil {
		panic("httpapi: the embedded openapi.json: " + err.Error()) // a test keeps it valid
	}
	a.openapi = doc
	params, err := queryParamsByOperation(doc)
	if err != nil {
		panic("httpapi: the embedded openapi.json's parameters: " + err.Error()) // a test keeps it valid
	}
	for i := range a.routes {
		a.routes[i].query = params[a.routes[i].Method+" "+a.routes[i].Path]
	}
	return a
}

// allRoutes is every domain's route table.
func (a *API) allRoutes() []Route {
	routes := append(append(a.publicRoutes(), a.webhookRoutes()...), a.serverRoutes()...)
	routes = append(routes, a.oauthRoutes()...)
	routes = append(routes, a.hostingRoutes()...)
	routes = append(routes, a.orderRoutes()...)
	routes = append(routes, a.apiKeyRoutes()...)
	routes = append(routes, a.domainRegRoutes()...)
	return append(routes, a.customDomainRoutes()...)
}

// Routes returns the public route table, in the brand's names.
func (a *API) Routes() []Route { return append([]Route(nil), a.routes...) }

// Brand is the dialect the API speaks.
func (a *API) Brand() *brand.Brand { return a.brand }

// OpenAPI returns the brand's OpenAPI document (served as /openapi.json).
func (a *API) OpenAPI() []byte { return a.openapi }

func (a *API) publicRoutes() []Route {
	return []Route{
		{Method: "GET", Path: "/v1/account", Scope: api.ScopeAccountRead, handler: a.getAccount},
		{Method: "GET", Path: "/v1/billing/wallet", Scope: api.ScopeBillingRead, handler: a.getWallet},
		{Method: "GET", Path: "/v1/billing/wallet/transactions", Scope: api.ScopeBillingRead, handler: a.listTransactions},
		{Method: "GET", Path: "/v1/billing/invoices", Scope: api.ScopeBillingRead, handler: a.listInvoices},
		{Method: "GET", Path: "/v1/billing/invoices/{id}", Scope: api.ScopeBillingRead, handler: a.getInvoice},
		{Method: "GET", Path: "/v1/tickets", Scope: api.ScopeTicketsRead, handler: a.listTickets},
		{Method: "GET", Path: "/v1/tickets/{id}", Scope: api.ScopeTicketsRead, handler: a.getTicket},
		{Method: "POST", Path: "/v1/tickets", Scope: api.ScopeTicketsWrite, Idempotent: true, handler: a.createTicket},
		{Method: "POST", Path: "/v1/tickets/{id}/reply", Scope: api.ScopeTicketsWrite, Idempotent: true, handler: a.replyTicket},
		{Method: "POST", Path: "/v1/tickets/{id}/close", Scope: api.ScopeTicketsWrite, handler: a.closeTicket},
	}
}

// Handler returns the public listener's handler: /v1, /openapi.json (also
// as /v1/openapi.json), health, and the cluster-internal admin mount.
// /metrics has a listener of its own (MetricsHandler).
func (a *API) Handler(admin http.Handler) http.Handler {
	mux := http.NewServeMux()
	for _, rt := range a.routes {
		mux.Handle(rt.Method+" "+rt.Path, a.wrap(rt))
	}
	mux.HandleFunc("GET /openapi.json", a.serveOpenAPI)
	// Also under /v1, for a client that appends the name to its /v1 base URL.
	mux.HandleFunc("GET /v1/openapi.json", a.serveOpenAPI)
	for _, m := range a.mounts {
		mux.Handle(m.pattern, m.handler)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", a.readyz)
	a.registerOAuth(mux)
	if admin != nil && a.clusterAuth() {
		mux.Handle("/internal/admin/", http.StripPrefix("/internal", a.requireClusterToken(admin)))
	}
	if a.clusterAuth() {
		mux.Handle("POST "+leasePath, a.requireClusterToken(http.HandlerFunc(a.serveLease)))
		mux.Handle("POST "+usagePath, a.requireClusterToken(http.HandlerFunc(a.serveUsage)))
	}
	// Anything else is a JSON 404, or a 405 with Allow, not the mux's text page.
	unrouted := a.unrouted(mux)
	mux.HandleFunc("/", unrouted)
	shadowLiterals(mux, a.routes, unrouted)
	h := secureHeaders(a.instrument(a.unreadBodies(canonicalV1(mux, unrouted))))
	if a.clusterAuth() {
		// Followers' forwarded writes, framed on one connection (forwardmux.go).
		mux.Handle("POST "+forwardPath, a.requireClusterToken(a.serveForwardChannel(h)))
	}
	return h
}

// SetKEKState gives /readyz the coordinator's key-encryption key check
// ("matches", "differs" or "unrecorded"); call it before serving.
func (a *API) SetKEKState(f func() string) { a.kekState = f }

// readyApplyWait is how long /readyz waits for the FSM to reach the commit
// index before it answers "catching up".
const readyApplyWait = 500 * time.Millisecond

func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	st := a.raft.Status()
	// Caught up is judged by the FSM, the state every read is served from:
	// Raft's own applied index is set after it hands a batch to the FSM, so for
	// an instant after a write was acknowledged it can still be one behind the
	// commit index (a fully caught-up node answered 503). The FSM's applied
	// index moves with commands and configuration entries only, so entries
	// after it that are neither (no-ops, the watchdog's barriers on an idle
	// leader) are looked up: compared alone, it
	// kept an idle coordinator under the systemd watchdog "catching up" for ever.
	leaderID, commit, fsmApplied := st.LeaderID, st.CommitIndex, a.state.AppliedIndex()
	body := map[string]any{"leader_id": leaderID, "applied_index": st.AppliedIndex, "commit_index": commit, "fsm_applied_index": fsmApplied}
	if a.kekState != nil {
		// Readiness does not depend on it (the API works), but an operator
		// sees a coordinator started with another --webhook-kek-file.
		body["kek"] = a.kekState()
	}
	if msg := a.brandMismatch.Load(); msg != nil {
		body["status"] = *msg
		writeJSON(w, http.StatusServiceUnavailable, body)
		return
	}
	if leaderID == "" {
		body["status"] = "no leader"
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, body)
		return
	}
	if !a.raft.IsLeader() && (a.LeaderAPIAddr() == "" || time.Since(st.LastContact) > 5*time.Second) {
		// A follower is ready only when it can forward to the leader and has
		// heard from it lately (its commit index is then current).
		body["status"] = "leader not reachable from this node yet"
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, body)
		return
	}
	// An entry committed while this request ran may still be on its way to
	// the FSM (Raft hands batches to it asynchronously): a write in flight is
	// not catching up. A member whose FSM does not reach the commit index
	// within readyApplyWait is.
	if !a.raft.CommandsAppliedWithin(commit, readyApplyWait) {
		body["status"] = "catching up"
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, body)
		return
	}
	body["status"] = "ready"
	writeJSON(w, 200, body)
}

func (a *API) requireClusterToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.clusterTokenOK(r) {
			writeError(w, "", api.NewError(http.StatusUnauthorized, "cluster_token", "missing or wrong cluster token"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (a *API) clusterTokenOK(r *http.Request) bool {
	if a.cfg.ClusterTLS != nil && r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		// The handshake checked the chain against the cluster CA (SniffTLS).
		return true
	}
	tok := r.Header.Get(headerClusterToken)
	return a.cfg.ClusterSecret != "" && tok != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(a.cfg.ClusterSecret)) == 1
}

// clusterAuth reports whether coordinators can authenticate each other
// (mutual TLS or the cluster secret), which forwarding admin calls needs.
func (a *API) clusterAuth() bool { return a.cfg.ClusterTLS != nil || a.cfg.ClusterSecret != "" }

// HeaderClusterToken carries the cluster secret between coordinators.
const HeaderClusterToken = headerClusterToken

const (
	headerRequestID    = "X-Request-Id"
	headerForwardedBy  = "X-Hostplane-Forwarded-By"
	headerClusterToken = "X-Hostplane-Cluster-Token"
	headerClientIP     = "X-Hostplane-Client-Ip"
)

// Now is the clock this coordinator makes ids and command times at: the
// clock New was given, never earlier than the latest time of an entry
// applied here (coordinator/internal/hlc). The coordinator's own commands
// (its leader jobs') are made at it too.
func (a *API) Now() time.Time { return a.now() }

// SetLeaderReady marks this node ready to serve as leader in term (after a barrier).
func (a *API) SetLeaderReady(term uint64) { a.readyTerm.Store(term) }

// LeaderReady reports whether this node leads and has applied all earlier entries.
func (a *API) LeaderReady() bool {
	return a.raft.IsLeader() && a.readyTerm.Load() == a.raft.Term()
}

// awaitLeaderReady waits briefly for a fresh leader's barrier; false means "not
// leader (any more)" or still not caught up after the wait.
func (a *API) awaitLeaderReady(ctx context.Context) bool {
	deadline := time.Now().Add(5 * time.Second)
	for {
		if a.LeaderReady() {
			return true
		}
		if !a.raft.IsLeader() || time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// wrap runs the middleware chain of a public route.
func (a *API) wrap(rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rid := requestID(r)
		w.Header().Set(headerRequestID, rid)
		if msg := a.brandMismatch.Load(); msg != nil {
			w.Header().Set("Retry-After", "1")
			a.uncountedLimitHeaders(w, r)
			writeError(w, rid, api.NewError(http.StatusServiceUnavailable, "brand_mismatch", *msg))
			return
		}
		if !rt.Public && !a.readGate(w, r, rid) {
			return
		}
		rq := &request{Request: r, w: w, id: rid, now: a.now().UTC(), clientIP: a.clientIP(r)}
		status, body, err := a.serve(rt, rq)
		if err != nil {
			ae, internal := toAPIError(err)
			if internal {
				a.log.Error("request failed", "request_id", rid, "route", rt.Method+" "+rt.Path, "err", err)
			}
			if ae.StatusCode == http.StatusServiceUnavailable {
				w.Header().Set("Retry-After", "1")
			}
			writeError(w, rid, ae)
			status = ae.StatusCode
		} else if _, streamed := body.(streamedBody); !streamed {
			writeJSON(w, status, body)
		}
		if rq.caller != nil {
			a.Usage.Record(rq.caller.keyID, fsm.KeyUsageEntry{At: rq.now, Method: r.Method, Path: r.URL.Path, Route: rt.Path, Status: status, IP: rq.clientIP})
		}
	})
}

func (a *API) serve(rt Route, rq *request) (int, any, error) {
	if rt.Public {
		if err := a.limitPublic(rq); err != nil {
			return 0, nil, err
		}
		if err := checkQuery(rq.Request, rt.query); err != nil {
			return 0, nil, err
		}
		return rt.handler(rq)
	}
	c, err := a.authenticate(rq)
	if err != nil {
		// No valid key: the client address's budget (a 429 beyond it).
		if lerr := a.limitUnkeyed(rq.w, rq.Request); lerr != nil {
			return 0, nil, lerr
		}
		return 0, nil, err
	}
	rq.caller = c
	// An address the key's allow-list does not hold is refused before the
	// key's request is counted (as /mcp's Authenticate does): it neither
	// spends the owner's budget nor sees its X-RateLimit-* figures; it is
	// counted against the address's budget, whose figures it carries.
	if !auth.IPAllowed(c.cidrs, rq.clientIP) {
		if lerr := a.limitUnkeyed(rq.w, rq.Request); lerr != nil {
			return 0, nil, lerr
		}
		return 0, nil, errf(http.StatusForbidden, "ip_not_allowed", "this API key may not be used from %s", rq.clientIP)
	}
	if err := a.rateLimit(rq, c); err != nil {
		return 0, nil, err
	}
	switch {
	case auth.HasScope(c.scopes, rt.Scope):
		rq.scope = rt.Scope
	case rt.AltScope != "" && auth.HasScope(c.scopes, rt.AltScope):
		rq.scope = rt.AltScope
	default:
		return 0, nil, errf(http.StatusForbidden, "missing_scope", "this API key lacks the %q scope", rt.Scope)
	}
	if err := checkQuery(rq.Request, rt.query); err != nil {
		return 0, nil, err
	}
	if rq.Method == http.MethodPost || rq.Method == http.MethodPut || rq.Method == http.MethodPatch {
		body, err := readBody(rq.w, rq.Request)
		if err != nil {
			return 0, nil, err
		}
		rq.body = body
	} else if rq.ContentLength != 0 {
		// No GET or DELETE takes a body: one sent is refused as the POSTs
		// that take none refuse it (nothing, or {}), rather than ignored. A
		// DELETE with {"dry_run": true} deleted; a GET with {"status":
		// "open"} listed everything, a list the client took for filtered.
		body, err := readBody(rq.w, rq.Request)
		if err != nil {
			return 0, nil, err
		}
		if err := decodeNoBody(body); err != nil {
			return 0, nil, err
		}
	}
	if rt.Idempotent {
		key, err := idempotencyKey(rq.Header)
		if err != nil {
			return 0, nil, err
		}
		if key != "" {
			return a.withIdempotency(rt, rq, key)
		}
	}
	return rt.handler(rq)
}

// rateLimit counts the request against the caller's key and sets the
// X-RateLimit-* headers: a 429 with Retry-After beyond the limit. The leader
// counts in its own windows; a follower serves only stale reads, which spend
// tokens leased from the leader's (ratelease.go).
func (a *API) rateLimit(rq *request, c *caller) error {
	var d ratelimit.Decision
	if a.raft.IsLeader() {
		d = a.limiter.Allow(c.keyID, c.limit)
	} else {
		d = a.leases.Allow(rq.Context(), c.keyID, c.limit)
	}
	return limitAnswer(rq.w.Header(), d, a.wall(), "rate limit of %d requests per minute exceeded; retry after %d s")
}

func setLimitHeaders(h http.Header, d ratelimit.Decision) {
	h.Set("X-RateLimit-Limit", strconv.Itoa(d.Limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(d.Remaining))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(d.Reset.Unix(), 10))
}

// uncountedLimitHeaders gives a /v1 answer written before the request is
// counted (wrap's brand check, readGate's refusals, a follower's failures to
// forward: the 503s of an election or of a lost quorum) the X-RateLimit-*
// headers every /v1 answer has. The request serves nothing and is not
// counted: for a valid key the headers say what this coordinator knows of the
// key's budget (the leader's window on the leader, the lease or the share
// without a leader on a follower: ratelimit Leases.Peek), from the key as this
// coordinator's own state holds it, never asking the leader. A request
// without a key this coordinator knows as valid (none, an invalid one, or a
// key used from an address its allow-list does not hold, whose owner's
// figures it must not see) gets its client address's budget on this
// coordinator (peekUnkeyed), as does any request to the OAuth endpoints
// under /oauth/, which take no key.
func (a *API) uncountedLimitHeaders(w http.ResponseWriter, r *http.Request) {
	oauthPath := strings.HasPrefix(r.URL.Path, "/oauth/")
	if !strings.HasPrefix(r.URL.Path, "/v1/") && !oauthPath || w.Header().Get("X-RateLimit-Limit") != "" {
		return
	}
	if oauthPath || auth.FromRequest(r) == "" {
		a.peekUnkeyed(w, r)
		return
	}
	// No writer: a failed token check sets no WWW-Authenticate on this answer.
	c, err := a.authenticate(&request{Request: r, now: a.now().UTC()})
	if err != nil || !auth.IPAllowed(c.cidrs, a.clientIP(r)) {
		a.peekUnkeyed(w, r)
		return
	}
	var d ratelimit.Decision
	if a.raft.IsLeader() {
		d = a.limiter.Peek(c.keyID, c.limit)
	} else {
		d = a.leases.Peek(c.keyID, c.limit)
	}
	setLimitHeaders(w.Header(), d)
}

// authenticate resolves the presented key to a caller: 401 for missing, unknown,
// revoked or expired keys.
func (a *API) authenticate(rq *request) (*caller, error) {
	key, conflicting := auth.Presented(rq.Request)
	if key == "" {
		return nil, errf(http.StatusUnauthorized, "missing_api_key", "missing API key: send it as Authorization: Bearer YOUR_API_KEY or X-API-Key: YOUR_API_KEY")
	}
	if conflicting {
		return nil, errf(http.StatusBadRequest, "conflicting_credentials", "the request presents more than one credential (two different API keys, or an API key beside an Authorization line of another scheme): send one API key, in Authorization: Bearer or in X-API-Key")
	}
	if strings.HasPrefix(key, oauth.AccessPrefix(a.cfg.KeyPrefix)) || strings.HasPrefix(key, oauth.RefreshPrefix(a.cfg.KeyPrefix)) {
		return a.authenticateToken(rq, key) // an OAuth access token (a refresh token is refused there)
	}
	if !auth.WellFormed(a.cfg.KeyPrefix, key) {
		return nil, errf(http.StatusUnauthorized, "invalid_api_key", "invalid API key")
	}
	k, err := a.lookupKey(auth.Hash(key))
	if errors.Is(err, store.ErrNotFound) {
		return nil, errf(http.StatusUnauthorized, "invalid_api_key", "invalid API key")
	} else if err != nil {
		return nil, err
	}
	if k.RevokedAt != nil {
		return nil, errf(http.StatusUnauthorized, "revoked_api_key", "this API key was revoked")
	}
	if k.ExpiresAt != nil && !rq.now.Before(*k.ExpiresAt) {
		return nil, errf(http.StatusUnauthorized, "expired_api_key", "this API key expired at %s", k.ExpiresAt.UTC().Format(time.RFC3339))
	}
	limit := k.RateLimitPerMin
	if limit <= 0 {
		limit = a.cfg.DefaultRateLimit
	}
	return &caller{keyID: k.ID, accountID: k.AccountID, scopes: k.Scopes, limit: limit, cidrs: k.AllowedCIDRs}, nil
}

type cachedKey struct {
	version uint64
	key     store.Key
}

// lookupKey returns the stored key for a hash, from the cache while no key has
// changed since it was read.
func (a *API) lookupKey(hash string) (store.Key, error) {
	ver := a.state.KeysVersion()
	if v, ok := a.keyCache.Load(hash); ok {
		if ck := v.(*cachedKey); ck.version == ver {
			return ck.key, nil
		}
	}
	var k store.Key
	err := a.state.Read(func(r store.ReadTx) (err error) { k, err = r.KeyByHash(hash); return })
	if err != nil {
		return k, err
	}
	a.keyCache.Store(hash, &cachedKey{version: ver, key: k})
	return k, nil
}

// idempotencyKey is the request's Idempotency-Key, "" without one. A key that
// is empty, longer than 255 characters or not printable ASCII is a 400, and so
// are two different keys in one request: the first would be honoured here
// where a proxy or a log in front may read the other, so a retry that a client
// believed protected could run twice (as two API keys in one request are
// refused, auth.Presented). The same key sent twice is that key.
func idempotencyKey(h http.Header) (string, error) {
	vs := h.Values("Idempotency-Key")
	if len(vs) == 0 {
		return "", nil
	}
	for _, v := range vs[1:] {
		if v != vs[0] {
			return "", &httpError{status: http.StatusBadRequest, code: "conflicting_idempotency_keys", msg: "the request carries more than one Idempotency-Key: send one"}
		}
	}
	if err := validate.IdempotencyKey(vs[0]); err != nil {
		return "", badRequest("%s", err) // MCP's order quotes refuse the key with the same rule and text
	}
	return vs[0], nil
}

// withIdempotency implements Idempotency-Key: a stored response is replayed for the
// same body, another body is a 422, a request still running is a 409. The record
// is written by the FSM in the same command as the change.
func (a *API) withIdempotency(rt Route, rq *request, key string) (int, any, error) {
	scope := rq.caller.keyID + "/" + key
	sum := sha256.Sum256([]byte(rq.Method + " " + rq.URL.Path + "\n" + string(rq.body)))
	hash := hex.EncodeToString(sum[:])
	var rec store.IdemRecord
	var stored bool
	var unresolved error
	_ = a.state.Read(func(r store.ReadTx) error {
		var err error
		if rec, err = r.Idempotency(scope); err != nil || !rec.ExpiresAt.After(rq.now) {
			return nil // no record this request can use: it proposes
		}
		stored = true
		if rec.ReqHash == hash {
			// A ticket reply's record is rebuilt from the ticket, in this read.
			rec, unresolved = fsm.ResolveIdem(r, rec)
		}
		return nil
	})
	if unresolved != nil {
		return 0, nil, unresolved // a record that cannot be replayed: a 500, logged
	}
	if stored {
		if rec.ReqHash != hash {
			return 0, nil, fsm.ErrIdemMismatch
		}
		rq.w.Header().Set("Idempotent-Replayed", "true")
		if rt.replayAnswer != nil {
			return rt.replayAnswer(rq, scope, rec)
		}
		if rt.replay != nil {
			return rec.Status, rt.replay(rq, json.RawMessage(rec.Body)), nil
		}
		return rec.Status, json.RawMessage(rec.Body), nil
	}
	a.inflightMu.Lock()
	if _, busy := a.inflight[scope]; busy {
		a.inflightMu.Unlock()
		return 0, nil, errf(http.StatusConflict, "idempotency_key_in_flight", "a request with this Idempotency-Key is still being processed")
	}
	a.inflight[scope] = struct{}{}
	a.inflightMu.Unlock()
	defer func() {
		a.inflightMu.Lock()
		delete(a.inflight, scope)
		a.inflightMu.Unlock()
	}()
	rq.idem = &fsm.IdemRequest{Scope: scope, ReqHash: hash, ExpiresAt: rq.now.Add(a.cfg.IdempotencyTTL)}
	return rt.handler(rq)
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return len(s) > 0
}

// propose commits a command and returns the response: the FSM's value with status,
// or a response replayed from an idempotency record the FSM already held.
func (a *API) propose(ctx context.Context, rq *request, t fsm.CommandType, payload any, status int) (int, any, error) {
	env, err := fsm.NewEnvelope(t, rq.now, payload)
	if err != nil {
		return 0, nil, err
	}
	if rq.idem != nil {
		idem := *rq.idem
		idem.Status = status
		env.Idem = &idem
	}
	res, err := a.apply(ctx, env)
	if err != nil {
		return 0, nil, err
	}
	if res.Replayed != nil {
		rq.w.Header().Set("Idempotent-Replayed", "true")
		return res.Replayed.Status, json.RawMessage(res.Replayed.Body), nil
	}
	return status, res.Value, nil
}

// apply proposes env and returns the FSM result, or its business error.
func (a *API) apply(ctx context.Context, env *fsm.Envelope) (*fsm.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.ApplyTimeout)
	defer cancel()
	start := time.Now()
	res, err := a.raft.Apply(ctx, env)
	if a.metrics != nil {
		a.metrics.applyLatency.Observe(time.Since(start).Seconds())
	}
	if err != nil {
		if ctx.Err() != nil && !a.raft.IsLeader() {
			// The wait ran out and this coordinator no longer leads: the
			// leadership change left the proposal unanswered (a leader
			// that removed itself shuts its Raft down, and hashicorp/raft
			// may then never answer a proposal that committed with the
			// removal). It may or may not have been applied, as after any
			// leadership change: 503 no_leader with Retry-After, so the
			// client sends it again with its Idempotency-Key (README
			// "Retry policy"), not a 500 that tells it nothing.
			return nil, fmt.Errorf("%w: %w", raftnode.ErrNotLeader, err)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			// Still leading, but no quorum committed it in time. The
			// client gets a 503 it can act on; the operator, who got
			// the 500's error line before, a warning.
			a.log.Warn("write not committed within the apply timeout while leading (no quorum answered?)",
				"command", env.Type, "apply_timeout", a.cfg.ApplyTimeout, "err", err)
			return nil, applyTimedOut(err)
		}
		return nil, err
	}
	if res.Err != nil {
		return nil, res.Err
	}
	return res, nil
}

// Apply is apply for callers outside HTTP handlers (leader jobs).
func (a *API) Apply(ctx context.Context, env *fsm.Envelope) (*fsm.Result, error) {
	return a.apply(ctx, env)
}

func requestID(r *http.Request) string {
	if id := r.Header.Get(headerRequestID); id != "" && len(id) <= 64 && printableASCII(id) {
		return id
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "req_" + hex.EncodeToString(b[:])
}

// rawJSON is a response body that is already encoded.
type rawJSON []byte

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if raw, ok := v.(rawJSON); ok {
		_, _ = w.Write(raw)
		return
	}
	if o, ok := v.(api.ServerOrder); ok {
		if raw, ok := encodeServerOrder(&o); ok {
			_, _ = w.Write(raw)
			return
		}
	}
	if v == nil {
		v = struct{}{}
	}
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, rid string, e *api.Error) {
	if rid == "" {
		rid = w.Header().Get(headerRequestID)
	}
	e.RequestID = rid
	if e.StatusCode == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="hostplane"`)
	}
	writeJSON(w, e.StatusCode, e)
}
