package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	hpauth "github.com/hostplane/hostplane/coordinator/internal/auth"
	"github.com/hostplane/hostplane/coordinator/internal/httpapi"
	"github.com/hostplane/hostplane/internal/clock"
	"github.com/hostplane/hostplane/internal/jsonmembers"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/version"
)

// Response is an operation's HTTP answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
	rec    *recorder // HandlerDispatcher's: recycled by Release
}

// Dispatcher sends a tool's HTTP request as the caller and returns the answer.
type Dispatcher interface {
	Dispatch(ctx context.Context, c *Call, who Who) (*Response, error)
}

// Who is the caller of one tool call as the /mcp request presented it: its
// credentials go on the dispatched request unchanged.
type Who struct {
	Authorization string // the /mcp request's Authorization header
	RemoteAddr    string
	// ForwardedFor is the /mcp request's X-Forwarded-For: with RemoteAddr,
	// an operation dispatched in-process has the /mcp request's client
	// address behind a trusted proxy (--trusted-proxies).
	ForwardedFor []string
	Host         string
	Caller       string // account id (confirmation tokens are bound to it)
	// RequestID is the /mcp request's X-Request-Id (the public listener's,
	// set before /mcp runs): an operation dispatched in-process runs under
	// it, so a tool error's request_id names the /mcp request.
	RequestID string
	// count counts the call against the caller's per-minute limit when
	// nothing was dispatched (bad arguments, a refused confirmation), which
	// no /v1 route counts; nil: not counted (no RequestCounter).
	count func() *api.Error
	// limit takes the X-RateLimit-* headers of the call's count (a
	// dispatched /v1 answer's, or count's) for the /mcp answer; nil: they
	// are not sent.
	limit func(http.Header)
}

// rateLimitHeaders are the headers of a request's count (httpapi).
var rateLimitHeaders = []string{
	http.CanonicalHeaderKey("X-RateLimit-Limit"),
	http.CanonicalHeaderKey("X-RateLimit-Remaining"),
	http.CanonicalHeaderKey("X-RateLimit-Reset"),
}

// copyRateLimit sets dst's X-RateLimit-* headers to src's, when src has them.
func copyRateLimit(dst, src http.Header) {
	if src.Get(rateLimitHeaders[0]) == "" {
		return
	}
	for _, k := range rateLimitHeaders {
		dst[k] = slices.Clone(src[k])
	}
}

// sendLimit hands the X-RateLimit-* headers of h, a dispatched answer's,
// to who.limit.
func (w Who) sendLimit(h http.Header) {
	if w.limit != nil && h != nil {
		w.limit(h)
	}
}

// Options configure the MCP server.
type Options struct {
	// ConfirmTTL is how long an order's confirmation token is good for (5 min).
	ConfirmTTL time.Duration
	// CallTimeout bounds one operation dispatched by the SDK's transport
	// (60 s). A call the fast path answers runs under its /mcp request's
	// context, as a REST call runs under its own: canceled when the client
	// goes away, and bounded by the route's own limits (the API's
	// ApplyTimeout on Raft, the forwarding transport's timeouts), so no
	// timer of its own is set per call.
	CallTimeout time.Duration
	Now         func() time.Time
}

// ProtocolVersions are the MCP versions served, newest first (up to
// 2025-11-25; the SDK knows later drafts, which stay off).
var ProtocolVersions = []string{"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"}

// NewServer builds the MCP server of tools: one handler per generated tool,
// each dispatching through d; tools/list is filtered to the scopes of the
// caller when the request carries them (the /mcp handler's token info).
func NewServer(tools *Tools, d Dispatcher, opts Options) *mcp.Server {
	s, _ := newServer(tools, d, opts)
	return s
}

func newServer(tools *Tools, d Dispatcher, opts Options) (*mcp.Server, *handlers) {
	if opts.ConfirmTTL <= 0 {
		opts.ConfirmTTL = 5 * time.Minute
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 60 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := mcp.NewServer(&mcp.Implementation{Name: "hostplane", Title: "hostplane API", Version: version.Version},
		&mcp.ServerOptions{SupportedProtocolVersions: ProtocolVersions, Instructions: "Each tool is one operation of the hostplane /v1 REST API, run with your API key's scopes, rate limit and idempotency. Tools that spend money answer a quote and a confirmation_token first; call again with the token only after the user approved the quote."})
	h := &handlers{tools: tools, d: d, opts: opts, confirm: newConfirmations(opts.Now, opts.ConfirmTTL)}
	for _, t := range tools.List {
		s.AddTool(t.Def, h.tool(t))
	}
	s.AddReceivingMiddleware(filterTools(tools))
	return s, h
}

// filterTools drops from tools/list every tool whose scope the caller lacks.
func filterTools(tools *Tools) mcp.Middleware {
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			res, err := next(ctx, method, req)
			if err != nil || method != "tools/list" {
				return res, err
			}
			ti := req.GetExtra()
			if ti == nil || ti.TokenInfo == nil {
				return res, err
			}
			lr, ok := res.(*mcp.ListToolsResult)
			if !ok {
				return res, err
			}
			kept := lr.Tools[:0:0]
			for _, def := range lr.Tools {
				if t := tools.ByName(def.Name); t != nil && t.allows(ti.TokenInfo.Scopes) {
					kept = append(kept, def)
				}
			}
			out := *lr
			out.Tools = kept
			return &out, nil
		}
	}
}

type handlers struct {
	tools   *Tools
	d       Dispatcher
	opts    Options
	confirm *confirmations
}

func (h *handlers) tool(t *Tool) mcp.ToolHandler {
	return func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return h.run(ctx, t, []byte(req.Params.Arguments), whoFrom(req.Extra)), nil
	}
}

// run is one call of tool t with the raw arguments, as who, on the SDK's
// path: runOp bounded by CallTimeout, and the answer as a result.
func (h *handlers) run(ctx context.Context, t *Tool, raw []byte, who Who) *mcp.CallToolResult {
	ctx, cancel := context.WithTimeout(ctx, h.opts.CallTimeout)
	defer cancel()
	resp, res := h.runOp(ctx, t, raw, false, who)
	if res == nil {
		res = result(t, resp)
	}
	return res
}

// runOp is the tool handler's work, on the SDK's path and on the fast
// path alike, up to the operation's answer: either the answer resp, whose
// result is result(t, resp) (the fast path encodes it without building it),
// or res, the result itself (bad arguments, a quote, a failed dispatch).
// valid: raw is known to be valid UTF-8 and valid JSON (the fast path
// checked the whole request).
func (h *handlers) runOp(ctx context.Context, t *Tool, raw []byte, valid bool, who Who) (resp *Response, res *mcp.CallToolResult) {
	dispatched := false
	defer func() {
		// A call that dispatched nothing is counted here (a /v1 route
		// counts each dispatched one): its refusal still costs the key.
		if !dispatched && who.count != nil {
			if e := who.count(); e != nil {
				resp, res = nil, errorResult(e)
			}
		}
	}()
	call, err := t.build(raw, valid)
	if err != nil {
		return nil, errorResult(api.NewError(http.StatusBadRequest, "invalid_argument", err.Error()))
	}
	if t.Op.SpendsMoney {
		res, proceed := h.confirmStep(ctx, t, raw, call, who, &dispatched)
		if !proceed {
			return nil, res
		}
	}
	dispatched = true
	resp, err = h.d.Dispatch(ctx, call, who)
	if err != nil {
		return nil, errorResult(api.NewError(http.StatusBadGateway, "dispatch_failed", err.Error()))
	}
	who.sendLimit(resp.Header)
	return resp, nil
}

func whoFrom(x *mcp.RequestExtra) Who {
	var w Who
	if x == nil {
		return w
	}
	if x.Header != nil {
		w.Authorization = x.Header.Get("Authorization")
		w.RequestID = x.Header.Get(requestIDHeader)
		w.ForwardedFor = x.Header.Values(forwardedForHeader)
	}
	if ti := x.TokenInfo; ti != nil {
		w.Caller = ti.UserID
		w.RemoteAddr, _ = ti.Extra["remote_addr"].(string)
		w.Host, _ = ti.Extra["host"].(string)
		w.count, _ = ti.Extra["count"].(func() *api.Error)
		w.limit, _ = ti.Extra["limit"].(func(http.Header))
	}
	return w
}

// result is the operation's answer as a tool result: the JSON body as text
// (what the REST call returns), and as structured content when the tool
// declares an output schema and the call succeeded.
func result(t *Tool, resp *Response) *mcp.CallToolResult {
	body := bytes.TrimSpace(resp.Body)
	r := &mcp.CallToolResult{
		Content: []mcp.Content{&mcp.TextContent{Text: string(body)}},
		IsError: resp.Status >= 400,
		Meta:    mcp.Meta{metaStatus: resp.Status},
	}
	if ra, ok := retryAfter(resp); ok {
		r.Meta[metaRetryAfter] = ra
	}
	if structuredBody(t, body, r.IsError) {
		r.StructuredContent = validJSON(body)
	}
	return r
}

// metaStatus is the _meta key of the operation's HTTP status.
const metaStatus = "hostplane/status"

// metaRetryAfter is the _meta key of the operation's Retry-After, in
// seconds (a 429, or a 503 while leadership changes or the leader cannot be
// reached): what a /v1 client reads in the header, for a tool call, whose
// /mcp answer is a 200 either way.
const metaRetryAfter = "hostplane/retry_after"

// retryAfter is resp's Retry-After in whole seconds, when an error answer
// carries one (hostplane writes delta-seconds only).
func retryAfter(resp *Response) (int, bool) {
	if resp.Status < 400 {
		return 0, false
	}
	vs := resp.Header["Retry-After"]
	if len(vs) == 0 {
		return 0, false
	}
	n, err := strconv.Atoi(vs[0])
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// structuredBody: the (trimmed) body of a successful answer is also the
// result's structured content (the tool declares an output schema and the
// body is a valid JSON object).
func structuredBody(t *Tool, body []byte, isError bool) bool {
	return !isError && t.Def.OutputSchema != nil && len(body) > 0 && body[0] == '{' && jsonValid(body)
}

// validJSON is structured content checked to be valid JSON: it encodes as
// json.RawMessage does, and the fast path's encoding need not check it again.
type validJSON []byte

// MarshalJSON is json.RawMessage's.
func (v validJSON) MarshalJSON() ([]byte, error) { return v, nil }

func errorResult(e *api.Error) *mcp.CallToolResult {
	raw, _ := json.Marshal(e)
	return &mcp.CallToolResult{
		Content: []mcp.Content{&mcp.TextContent{Text: string(raw)}},
		IsError: true,
		Meta:    mcp.Meta{"hostplane/status": e.StatusCode},
	}
}

// Authenticator resolves a request's credentials (httpapi.API).
type Authenticator interface {
	Authenticate(r *http.Request) (httpapi.Caller, *api.Error)
	// StreamRefusal checks again the credentials of the request that
	// opened a stream, as a new request of the client would be checked: a
	// 4xx it answers ends the stream (httpapi.API.StreamRefusal).
	StreamRefusal(r *http.Request, scope string) *api.Error
}

// RequestCounter is an Authenticator that also counts requests against the
// caller's per-minute limit (httpapi.API). /mcp counts every request but a
// call of a known tool that the caller's scopes allow, which its /v1 route
// counts when it is dispatched: initialize, ping, tools/list, the GET of a
// session's stream, its DELETE, anything malformed, and notifications
// (notifications/initialized, cancelled, …: answered 202, but each one is a
// request the SDK reads and handles). So one key cannot open sessions (held
// in memory up to SessionTimeout) or keep the SDK busy without bound. A call
// refused for its scope (insufficient_scope) is counted here, as /v1 counts
// its own refusals.
type RequestCounter interface {
	CountRequest(w http.ResponseWriter, r *http.Request, c httpapi.Caller) *api.Error
}

// StreamAddresser is an Authenticator that also names the client address a
// request's stream counts against (httpapi.API.StreamAddress: the address
// behind --trusted-proxies, an IPv6 /64), the one its stats streams count.
type StreamAddresser interface {
	StreamAddress(r *http.Request) string
}

// streamAddress is r's client address for the per-address stream cap:
// authn's, else the TCP peer's.
func streamAddress(authn Authenticator, r *http.Request) string {
	if sa, ok := authn.(StreamAddresser); ok {
		return sa.StreamAddress(r)
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// UnauthenticatedCounter is an Authenticator that also counts the requests it
// refuses for their credentials against the client address's budget for
// requests without a valid key (httpapi.API, --ip-rate-limit): /mcp counts
// its 401s and 403 ip_not_allowed so, as /v1 counts its own, and answers a
// 429 beyond the budget.
type UnauthenticatedCounter interface {
	CountUnauthenticated(w http.ResponseWriter, r *http.Request) *api.Error
}

// rpcEnvelope names the JSON-RPC members that decide what a POSTed message
// does. Three readers decode a message: toolCall here (encoding/json, which
// matches names case-insensitively and keeps the last of two), the fast path
// and the SDK (segmentio/encoding, case-sensitive). A message that gives one
// of these names twice, or in another case ({"params":{"name":"list_tickets",
// "Name":"create_server"}}), would be one tool to toolCall's scope check and
// count and another to the SDK: refused before any of them reads it, as is a
// name given twice anywhere in the message.
type rpcEnvelope struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  string          `json:"method"`
	Params  struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
		Meta      json.RawMessage `json:"_meta"`
	} `json:"params"`
}

// toolCall is the tool a POSTed body calls when it is one tools/call request
// (with an id) of a known tool, else nil.
func toolCall(tools *Tools, body []byte) *Tool {
	var m struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params struct {
			Name string `json:"name"`
		} `json:"params"`
	}
	if json.Unmarshal(body, &m) != nil || m.ID == nil || m.Method != "tools/call" {
		return nil
	}
	return tools.ByName(m.Params.Name)
}

// allows reports whether scopes let the caller use t (its scope, or its
// alternative scope, or none needed), as the /v1 route decides.
func (t *Tool) allows(scopes []string) bool {
	return t.Op.Scope == "" || hpauth.HasScope(scopes, t.Op.Scope) || t.Op.AltScope != "" && hpauth.HasScope(scopes, t.Op.AltScope)
}

// stepUpScopes is the scope parameter of an insufficient_scope challenge
// for t: the scopes the caller holds and the one t needs (MCP authorization,
// "Scope Challenge Handling", the recommended approach: a client that
// re-authorizes with them keeps what it was granted).
func stepUpScopes(held []string, t *Tool) string {
	out := make([]string, 0, len(held)+1)
	for _, s := range held {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if !slices.Contains(out, t.Op.Scope) {
		out = append(out, t.Op.Scope)
	}
	return strings.Join(out, " ")
}

// challengeValue is s fit for a quoted auth-param of WWW-Authenticate
// (RFC 6750 §3: printable ASCII but the double quote and the backslash).
func challengeValue(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return -1
		}
		return r
	}, s)
}

// HTTPOptions configure the /mcp handler.
type HTTPOptions struct {
	Options
	// ResourceMetadataURL is the protected-resource metadata of /mcp (RFC
	// 9728), named in the 401s' WWW-Authenticate; empty: the host called plus
	// /.well-known/oauth-protected-resource/mcp.
	ResourceMetadataURL string
	// ChallengeScopes are the scope parameter of a 401's challenge: the
	// scopes a client asks for first (MCP authorization, "Scope Selection
	// Strategy"), more by step-up (insufficient_scope); none: no parameter,
	// and clients ask for all of scopes_supported.
	ChallengeScopes []string
	// SessionTimeout closes idle sessions (30 min).
	SessionTimeout time.Duration
	// StreamsPerAccount and Streams bound the GET streams (a session's
	// server-to-client messages) one account, and all accounts, hold open
	// at once at this coordinator (DefaultStreamsPerAccount,
	// DefaultStreams); StreamIdle is how long a session that had a stream
	// lives on once no request of it runs (DefaultStreamIdle). streamLimits.
	StreamsPerAccount, Streams int
	StreamIdle                 time.Duration
	// StreamsPerIP bounds the GET streams one client address (an IPv6 /64;
	// the address a StreamAddresser gives) holds open at once at this
	// coordinator, whatever the accounts (DefaultStreamsPerIP).
	StreamsPerIP int
	// SessionsPerAccount bounds the sessions one account holds at once at
	// this coordinator (DefaultSessionsPerAccount): past it, an initialize
	// ends the account's session used least recently with no request
	// running, or is refused when every one has a request running
	// (sessionCap).
	SessionsPerAccount int
	// PublicHost is the host (and port) of the public URL: a request that
	// reaches a loopback listener with it in Host came through a reverse
	// proxy on the same machine that passes the Host on (Caddy's and
	// Traefik's default), not through DNS rebinding.
	PublicHost string
}

// rebound reports a request that looks like DNS rebinding (the SDK's own
// protection, which knows no public host): it reached a loopback listener
// with a Host that is neither loopback nor the public URL's.
func rebound(r *http.Request, publicHost string) bool {
	la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok || la == nil || !loopbackAddr(la) || isLoopback(r.Host) {
		return false
	}
	return publicHost == "" || !strings.EqualFold(withoutDefaultPort(r.Host), withoutDefaultPort(publicHost))
}

// withoutDefaultPort drops a :443 or :80 from a Host: a proxy may pass the
// public host with or without its default port, and --public-url may be
// written either way.
func withoutDefaultPort(host string) string {
	if h, ok := strings.CutSuffix(host, ":443"); ok {
		return h
	}
	if h, ok := strings.CutSuffix(host, ":80"); ok {
		return h
	}
	return host
}

// NewHTTPHandler serves the tools over Streamable HTTP (/mcp): the bearer is
// authenticated by authn exactly as on /v1 (a 401 names the protected-resource
// metadata), and each tool call is dispatched with the same bearer.
func NewHTTPHandler(tools *Tools, authn Authenticator, d Dispatcher, opts HTTPOptions) http.Handler {
	h, _ := newHTTPHandler(tools, authn, d, opts)
	return h
}

// httpState is what an /mcp handler keeps of its sessions (tests read it).
type httpState struct {
	fast     *fastCalls
	sessions *sessionCap
	ends     *sessionEnds
}

func newHTTPHandler(tools *Tools, authn Authenticator, d Dispatcher, opts HTTPOptions) (http.Handler, httpState) {
	if opts.SessionTimeout <= 0 {
		opts.SessionTimeout = 30 * time.Minute
	}
	srv, h := newServer(tools, d, opts.Options)
	ends := newSessionEnds()
	fast := newFastCalls(h, tools, opts.PublicHost, ends)
	srv.AddReceivingMiddleware(fast.middleware)
	sessions := newSessionCap(opts.SessionsPerAccount)
	if f := sessionCapBuilt; f != nil {
		f(sessions)
	}
	var streams *streamLimits
	// A session displaced by the cap has no request running: it is closed
	// now, so that its id is a 404 from the next request on.
	srv.AddReceivingMiddleware(sessions.middleware(ends, func(ss *mcp.ServerSession) {
		streams.forget(ss.ID())
		_ = ss.Close()
		fast.forget(ss.ID())
	}))
	streamable := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv },
		&mcp.StreamableHTTPOptions{SessionTimeout: opts.SessionTimeout, DisableLocalhostProtection: true}) // rebound, below
	verified := auth.RequireBearerToken(func(ctx context.Context, _ string, r *http.Request) (*auth.TokenInfo, error) {
		ti, _ := ctx.Value(tokenInfoKey{}).(*auth.TokenInfo)
		if ti == nil {
			return nil, auth.ErrInvalidToken
		}
		return ti, nil
	}, &auth.RequireBearerTokenOptions{AllowMissingExpiration: true})(streamable)
	counter, _ := authn.(RequestCounter)
	fast.counter = counter
	streams = newStreamLimits(opts.StreamsPerAccount, opts.StreamsPerIP, opts.Streams, opts.StreamIdle, func(id string) {
		ss := fast.session(id)
		if ss == nil {
			for s := range srv.Sessions() {
				if s.ID() == id {
					ss = s
					break
				}
			}
		}
		if ss != nil {
			_ = ss.Close()
		}
		fast.forget(id)
	})
	uncounted, _ := authn.(UnauthenticatedCounter)
	st := httpState{fast: fast, sessions: sessions, ends: ends}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		meta := opts.ResourceMetadataURL
		if meta == "" {
			meta = baseURL(r) + "/.well-known/oauth-protected-resource/mcp"
		}
		answer := func(e *api.Error) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(e.StatusCode)
			e.RequestID = w.Header().Get("X-Request-Id")
			_ = json.NewEncoder(w).Encode(e)
		}
		// fail answers e; a 401 challenges the client to authorize (MCP
		// authorization: resource_metadata names where), with RFC 6750
		// §3.1's error="invalid_token" when a bearer was sent and is not
		// good (malformed, unknown, expired, revoked, for another
		// resource), and no error code when none was sent.
		fail := func(e *api.Error) {
			if e.StatusCode == http.StatusUnauthorized {
				ch := fmt.Sprintf(`Bearer resource_metadata=%q`, meta)
				if len(opts.ChallengeScopes) > 0 {
					ch += fmt.Sprintf(`, scope="%s"`, challengeValue(strings.Join(opts.ChallengeScopes, " ")))
				}
				if bearerShaped(r.Header.Get("Authorization")) {
					ch += fmt.Sprintf(`, error="invalid_token", error_description="%s"`, challengeValue(e.Message))
				}
				w.Header().Set("WWW-Authenticate", ch)
			}
			answer(e)
		}
		// insufficient answers a tools/call of t that the caller's scopes
		// do not allow as the MCP authorization spec's runtime
		// insufficient-scope error: HTTP 403 with error="insufficient_scope",
		// the scopes to ask for and resource_metadata, so a client can
		// step up its authorization and retry. Nothing is dispatched.
		insufficient := func(t *Tool, c httpapi.Caller) {
			msg := fmt.Sprintf("the tool %s needs the %q scope, which this token or API key lacks", t.Def.Name, t.Op.Scope)
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer error="insufficient_scope", scope="%s", resource_metadata=%q, error_description="%s"`,
				challengeValue(stepUpScopes(c.Scopes, t)), meta, challengeValue(msg)))
			answer(api.NewError(http.StatusForbidden, "missing_scope", msg))
		}
		// refused answers a request refused for its credentials, counted
		// against the client address's budget first: a 429 beyond it.
		refused := func(e *api.Error) {
			if uncounted != nil && e.StatusCode < 500 {
				if le := uncounted.CountUnauthenticated(w, r); le != nil {
					answer(le)
					return
				}
			}
			fail(e)
		}
		if !bearerShaped(r.Header.Get("Authorization")) {
			refused(api.NewError(http.StatusUnauthorized, "missing_api_key", "missing credentials: send an API key or OAuth access token as Authorization: Bearer TOKEN"))
			return
		}
		c, aerr := authn.Authenticate(r)
		if aerr != nil {
			refused(aerr)
			return
		}
		if rebound(r, opts.PublicHost) {
			http.Error(w, fmt.Sprintf("Forbidden: invalid Host header %q", r.Host), http.StatusForbidden)
			return
		}
		// A session that had its GET stream, or was refused one by the
		// caps, is ended once no request of it runs for StreamIdle
		// (streamLimits): every request of it counts, the fast path's too.
		streamed := false
		done := streams.begin(r.Header.Get(fastSessionHdr), r.Method == http.MethodGet)
		defer func() { done(streamed) }()
		defer sessions.begin(r.Header.Get(fastSessionHdr), c.AccountID)()
		if r.Method == http.MethodPost {
			// refusedBody answers a POST refused for its body, counted
			// against the key's limit first (a 429 beyond it), as /v1
			// counts every request of a valid key before it reads the
			// body: uncounted, a key could send such requests, each read
			// and checked, past its limit.
			refusedBody := func(e *api.Error) {
				if counter != nil {
					if aerr := counter.CountRequest(w, r, c); aerr != nil {
						fail(aerr)
						return
					}
				}
				fail(e)
			}
			// Read here, as /v1 reads (1 MiB, 413; a stalled body 408), not
			// by the SDK (4 MiB, and any read error a 400).
			body, aerr := httpapi.ReadRequestBody(w, r)
			if aerr != nil {
				refusedBody(aerr)
				return
			}
			if ct := r.Header.Get("Content-Type"); !jsonMediaType(ct) {
				// The transport's messages are application/json. The SDK
				// refuses other types too, but in plain text, and a tool
				// call on a session reached it uncounted (its /v1 route
				// never ran): refused here as /v1 refuses such a body.
				refusedBody(api.NewError(http.StatusUnsupportedMediaType, "unsupported_media_type",
					fmt.Sprintf("a JSON-RPC message must be sent as Content-Type: application/json, not %q", ct)))
				return
			}
			if err := jsonmembers.Check(body, reflect.TypeOf((*rpcEnvelope)(nil))); err != nil {
				refusedBody(api.NewError(http.StatusBadRequest, "invalid_request", "JSON-RPC message refused: "+err.Error()))
				return
			}
			if !fastOff.Load() && fast.serve(w, r, c, body) {
				return
			}
			if dataAfterValue(body) {
				// The SDK would run the first message and drop the rest
				// without a word; /v1 refuses such a body with a 400.
				refusedBody(api.NewError(http.StatusBadRequest, "invalid_request", "JSON-RPC message refused: data after the JSON value (send one message per request)"))
				return
			}
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
			t := toolCall(tools, body)
			// A permitted call of a known tool is counted by its /v1 route
			// when dispatched, or by runOp when not; one the SDK will refuse
			// before any tool runs (no session of this caller's here) is
			// counted now.
			if counter != nil && (t == nil || !t.allows(c.Scopes) || !fast.known(r.Header.Get(fastSessionHdr), c.AccountID)) {
				if aerr := counter.CountRequest(w, r, c); aerr != nil {
					fail(aerr)
					return
				}
			}
			if t != nil && !t.allows(c.Scopes) {
				insufficient(t, c)
				return
			}
		} else if counter != nil {
			if aerr := counter.CountRequest(w, r, c); aerr != nil {
				fail(aerr)
				return
			}
		}
		if r.Method == http.MethodGet {
			release, aerr := streams.acquire(c.AccountID, streamAddress(authn, r), w.Header())
			if aerr != nil {
				// Followed only if the session is the caller's: another
				// account's refused GET must not end it.
				streamed = fast.known(r.Header.Get(fastSessionHdr), c.AccountID)
				fail(aerr)
				return
			}
			defer release()
		}
		ti := &auth.TokenInfo{Scopes: c.Scopes, UserID: c.AccountID,
			Extra: map[string]any{"remote_addr": r.RemoteAddr, "host": r.Host, "key_id": c.KeyID}}
		// The tool handler runs on the SDK's goroutine, which writes the
		// answer once the handler returns: the X-RateLimit-* headers of the
		// call's count are handed over under a lock and set as the answer's
		// header is written (none when the SDK wrote it first).
		lim := &limitBox{}
		ti.Extra["limit"] = lim.set
		if counter != nil {
			ti.Extra["count"] = func() *api.Error {
				s := headerSink{h: http.Header{}}
				e := counter.CountRequest(s, r, c)
				lim.set(s.h)
				return e
			}
		}
		nw := &noStoreWriter{ResponseWriter: w, lim: lim}
		ctx := r.Context()
		if r.Method == http.MethodGet {
			var cancel context.CancelFunc
			ctx, cancel = context.WithCancel(ctx)
			defer cancel()
			go endWithCredentials(ctx, cancel, authn, r)
		}
		verified.ServeHTTP(nw, r.WithContext(context.WithValue(ctx, tokenInfoKey{}, ti)))
		streamed = r.Method == http.MethodGet && nw.code == http.StatusOK
		if r.Method == http.MethodDelete && nw.code/100 == 2 {
			streams.forget(r.Header.Get(fastSessionHdr))
			sessions.drop(r.Header.Get(fastSessionHdr))
			// The SDK ended the session: the fast path forgets it before
			// this handler returns (and so before the 204, which has no
			// body, is sent), not when the session's clean-up gets to it:
			// a call sent right after the DELETE's answer was answered on
			// the ended session.
			fast.forget(r.Header.Get(fastSessionHdr))
		}
		if nw.plain != 0 {
			answer(sdkRefusal(r.Method, nw.plain, w.Header().Get("Allow"), nw.text.String()))
		}
	}), st
}

// streamAuthEvery is how often a session's GET stream checks the
// credentials that opened it.
const streamAuthEvery = time.Second

// endWithCredentials cancels a session's GET stream (the request r, ctx its
// context) once its API key or access token is refused (StreamRefusal:
// revoked, expired, its allow-list no longer holding the client; a 401 or
// 403), as every POST of the session then is. Before, a stream opened before
// the key was revoked stayed open for as long as the client held it. It
// checks at once (clock.Every), then every streamAuthEvery until ctx ends:
// a key refused since the request's own check ends the stream without
// waiting a tick.
func endWithCredentials(ctx context.Context, cancel context.CancelFunc, authn Authenticator, r *http.Request) {
	clock.Every(ctx, streamAuthEvery, func() {
		if authn.StreamRefusal(r.WithContext(ctx), "") != nil {
			cancel()
		}
	})
}

// jsonMediaType reports whether ct is application/json (parameters such as
// charset allowed), the one type the SDK takes a POSTed message in.
func jsonMediaType(ct string) bool {
	if ct == "application/json" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}

// sdkRefusal is the error envelope of a refusal the SDK's transport wrote as
// a text/plain line (a method /mcp does not serve, an Accept without both
// types, no or an unknown session, a body that is not JSON-RPC): the status
// kept and the line as the message, except that a 404 says how to start a new
// session and a 405 names the methods Allow lists, as /v1's 405s do.
func sdkRefusal(method string, status int, allow, text string) *api.Error {
	msg := strings.TrimSpace(text)
	code := "invalid_request"
	switch status {
	case http.StatusNotFound:
		code, msg = "session_not_found", "MCP session not found: start a new one with initialize (without an Mcp-Session-Id header)"
	case http.StatusMethodNotAllowed:
		code, msg = "method_not_allowed", method+" is not allowed on /mcp; allowed: "+allow
	case http.StatusForbidden:
		code = "forbidden"
	case http.StatusUnsupportedMediaType:
		code = "unsupported_media_type"
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	return api.NewError(status, code, msg)
}

// dataAfterValue reports whether body is one JSON value followed by more than
// white space (a second message, or garbage). A body that does not start with
// a JSON value is false: the SDK answers it as malformed. The fast path never
// takes such a body (jsonValid), so only the SDK's path pays for this.
func dataAfterValue(body []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	var v json.RawMessage
	if dec.Decode(&v) != nil {
		return false
	}
	_, err := dec.Token()
	return err != io.EOF
}

// noStoreWriter gives an answer of the SDK Cache-Control: no-store,
// no-transform in place of the SDK's "no-cache, no-transform", which lets a
// cache store it: a tool's answer can carry a secret shown once (a webhook's
// or an API key's secret, a root password), and such answers are no-store on
// /v1 (issue 10, item 4). The fast path writes the same header itself.
//
// A refusal the SDK writes as text/plain (http.Error: status 400 or more) is
// held back instead: plain is its status and text its line (the first 1 KiB),
// and the handler answers it in the error envelope once the SDK returns.
type noStoreWriter struct {
	http.ResponseWriter
	wrote bool
	code  int       // the status the SDK wrote first
	lim   *limitBox // X-RateLimit-* headers of a tool call's count
	plain int
	text  bytes.Buffer
}

// limitBox holds the X-RateLimit-* headers of a tool call's count on the
// SDK's path, handed from the tool handler to the answer's writer.
type limitBox struct {
	mu sync.Mutex
	h  http.Header
}

func (b *limitBox) set(h http.Header) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.h == nil {
		b.h = http.Header{}
	}
	copyRateLimit(b.h, h)
}

// writeTo sets the held headers on h, if any.
func (b *limitBox) writeTo(h http.Header) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.h != nil {
		copyRateLimit(h, b.h)
	}
}

var noStore = []string{"no-store, no-transform"}

func (w *noStoreWriter) WriteHeader(code int) {
	if !w.wrote {
		w.wrote, w.code = true, code
		if _, ok := w.Header()["Cache-Control"]; ok {
			w.Header()["Cache-Control"] = noStore
		}
		if w.lim != nil {
			w.lim.writeTo(w.Header())
		}
		if code >= 400 && strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") {
			w.plain = code
			w.Header().Del("Content-Length")
			return
		}
	}
	if w.plain == 0 {
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *noStoreWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.plain != 0 {
		w.text.Write(b[:min(len(b), max(0, 1024-w.text.Len()))])
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// Flush and Unwrap let the SDK's http.ResponseController reach the
// connection's writer for its event streams.
func (w *noStoreWriter) Flush() {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.plain != 0 {
		return
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *noStoreWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// bearerShaped: v is two fields (as strings.Fields splits it), the first
// "Bearer" in any case; without strings.Fields' slice.
func bearerShaped(v string) bool {
	n, bearer := 0, false
	for f := range strings.FieldsSeq(v) {
		if n == 0 {
			bearer = strings.EqualFold(f, "bearer")
		}
		if n++; n > 2 {
			return false
		}
	}
	return n == 2 && bearer
}

type tokenInfoKey struct{}

// headerSink is a ResponseWriter whose headers go to h and whose body goes
// nowhere.
type headerSink struct{ h http.Header }

func (s headerSink) Header() http.Header       { return s.h }
func (headerSink) Write(b []byte) (int, error) { return len(b), nil }
func (headerSink) WriteHeader(int)             {}

// requestIDHeader is the public listener's request id header.
var requestIDHeader = http.CanonicalHeaderKey("X-Request-Id")

// forwardedForHeader is the /mcp request's X-Forwarded-For, carried to
// the operations it dispatches (Who.ForwardedFor).
const forwardedForHeader = "X-Forwarded-For"

// baseURL is the scheme and host the client called. X-Forwarded-Proto is
// read from any peer, unlike X-Forwarded-For (--trusted-proxies): only a
// handler built without ResourceMetadataURL uses this (Attach, the
// coordinator's, always sets it from --public-url), and only for the 401
// challenge of the same request, whose Host the client chose anyway; a
// forged value misleads no one but its sender.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
