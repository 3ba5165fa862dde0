package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	sjson "github.com/segmentio/encoding/json"

	"github.com/hostplane/hostplane/coordinator/internal/httpapi"
	"github.com/hostplane/hostplane/pkg/api"
)

// fastCalls answers the plain case of tools/call, the hot one, without the
// SDK's JSON-RPC transport: a POST of one call on a session the SDK
// initialized and touched within fastTouch, with the headers the SDK checks
// all fine. Anything else (and any doubt) goes to the SDK unchanged, so every
// error the transport can give stays the SDK's own. The tool runs through
// the same handler as on the SDK path and the answer has the SDK's shape
// (an SSE message event; no event store, so no event id or priming event).
type fastCalls struct {
	h          *handlers
	counter    RequestCounter // nil: nothing counted at /mcp
	publicHost string
	tools      *Tools
	ends       *sessionEnds
	mu         sync.Mutex
	sessions   map[string]*fastSession
}

// fastOff turns the fast path off (tests compare it with the SDK's).
var fastOff atomic.Bool

// fastServed counts the calls the fast path answered (tests check it ran).
var fastServed atomic.Int64

// cleanupGate, when set (tests), holds back the fast path's clean-up of an
// ended session until the channel is closed: a session's DELETE must not
// count on that clean-up having run (forget).
var cleanupGate atomic.Pointer[chan struct{}]

// fastTouch: a session goes through the SDK at least this often, which
// proves it is still open there and keeps its idle timeout running as if
// every call had gone through it.
const fastTouch = 30 * time.Second

var (
	noCache     = noStore // as the SDK's answers (noStoreWriter)
	eventStream = []string{"text/event-stream"}
	keepAlive   = []string{"keep-alive"}
)

type fastSession struct {
	ss     *mcp.ServerSession
	userID string
	// ready: the SDK handled its notifications/initialized (the fast path
	// serves only such sessions); before, the session is recorded from its
	// initialize on, so that known counts a call on it once (its /v1 route
	// does), which the SDK serves already.
	ready   bool         // under fastCalls.mu
	touched atomic.Int64 // unix nanos the SDK last handled a message of it
}

func newFastCalls(h *handlers, tools *Tools, publicHost string, ends *sessionEnds) *fastCalls {
	return &fastCalls{h: h, tools: tools, publicHost: publicHost, ends: ends, sessions: map[string]*fastSession{}}
}

// middleware records the sessions the SDK initialized (from their
// initialize on; ready on notifications/initialized) and when the SDK last
// saw each.
func (f *fastCalls) middleware(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		ss, _ := req.GetSession().(*mcp.ServerSession)
		if ss == nil || ss.ID() == "" {
			return next(ctx, method, req)
		}
		if method == "initialize" {
			// The client learns the session's id from this answer: the
			// session is recorded before it can send a call on it.
			res, err := next(ctx, method, req)
			if err == nil && ss.InitializeParams() != nil {
				f.record(ss, req, false)
			}
			return res, err
		}
		var fs *fastSession
		if method == "notifications/initialized" && ss.InitializeParams() != nil {
			fs = f.record(ss, req, true)
		} else {
			f.mu.Lock()
			fs = f.sessions[ss.ID()]
			f.mu.Unlock()
		}
		if fs != nil {
			fs.touched.Store(time.Now().UnixNano())
		}
		return next(ctx, method, req)
	}
}

// record adds ss to the sessions (once: it is removed when ss ends), ready
// when its notifications/initialized is handled.
func (f *fastCalls) record(ss *mcp.ServerSession, req mcp.Request, ready bool) *fastSession {
	id := ss.ID()
	f.mu.Lock()
	defer f.mu.Unlock()
	fs := f.sessions[id]
	if fs == nil {
		fs = &fastSession{ss: ss}
		if x := req.GetExtra(); x != nil && x.TokenInfo != nil {
			fs.userID = x.TokenInfo.UserID
		}
		f.sessions[id] = fs
		f.ends.onEnd(ss, func() {
			if g := cleanupGate.Load(); g != nil {
				<-*g
			}
			f.mu.Lock()
			if f.sessions[id] == fs {
				delete(f.sessions, id)
			}
			f.mu.Unlock()
		})
	}
	fs.ready = fs.ready || ready
	return fs
}

var (
	fastTopKeys    = []string{"jsonrpc", "id", "method", "params"}
	fastParamKeys  = []string{"name", "arguments"}
	fastSessionHdr = http.CanonicalHeaderKey("Mcp-Session-Id")
	fastVersionHdr = http.CanonicalHeaderKey("Mcp-Protocol-Version")
)

// fastParams are a plain tools/call's parameters.
type fastParams struct {
	Name      string
	Arguments json.RawMessage // nil when absent
}

// decodeFast reads body as one tools/call request of the plain shape: exact
// (case-sensitive) keys written without escapes and each at most once,
// jsonrpc "2.0" and method "tools/call" spelled without escapes, an integer
// or simple string id, and params with only a name (without escapes) and
// arguments. ok false: not that shape (the SDK answers it, errors included).
// It reads the members in place (no maps): the body is valid JSON, checked
// first, so a value's end is found by matching brackets and quotes.
func decodeFast(body []byte) (id json.RawMessage, p fastParams, ok bool) {
	if !utf8.Valid(body) || !jsonValid(body) {
		return nil, p, false
	}
	var top [4][]byte // jsonrpc, id, method, params
	if !members(body, fastTopKeys, top[:]) {
		return nil, p, false
	}
	if string(top[0]) != `"2.0"` || string(top[2]) != `"tools/call"` {
		return nil, p, false
	}
	id = top[1]
	if !plainID(id) {
		return nil, p, false
	}
	var params [2][]byte // name, arguments
	if top[3] == nil || !members(top[3], fastParamKeys, params[:]) {
		return nil, p, false
	}
	n := params[0]
	if len(n) < 3 || n[0] != '"' || n[len(n)-1] != '"' || bytes.IndexByte(n, '\\') >= 0 {
		return nil, p, false
	}
	p.Name = string(n[1 : len(n)-1])
	if params[1] != nil {
		p.Arguments = json.RawMessage(params[1])
	}
	return id, p, true
}

// jsonValid is json.Valid, about four times faster: segmentio/encoding's
// validator (the SDK's JSON package). FuzzJSONValidMatches holds the two
// to the same answer. segmentio's has no nesting limit, where
// encoding/json refuses more than 10,000 levels (TestJSONValidNesting): an
// input long enough to hold that many is also checked for its depth.
func jsonValid(b []byte) bool {
	return sjson.Valid(b) && (len(b) < 2*(maxNesting+1) || nestingWithin(b))
}

// maxNesting is encoding/json's limit of nested arrays and objects.
const maxNesting = 10000

// nestingWithin reports whether the valid JSON b nests at most maxNesting
// arrays and objects (brackets inside strings not counted).
func nestingWithin(b []byte) bool {
	depth, inString := 0, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case inString:
			if c == '\\' {
				i++
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			if depth++; depth > maxNesting {
				return false
			}
		case c == ']' || c == '}':
			depth--
		}
	}
	return true
}

// members reads the JSON object obj (valid JSON) into vals, the raw value of
// each key of keys by position: false when obj is not an object, or a key is
// not one of keys, is written with an escape or comes twice.
func members(obj []byte, keys []string, vals [][]byte) bool {
	return eachMember(obj, func(key, val []byte) bool {
		for j, name := range keys {
			if string(key) == name && vals[j] == nil {
				vals[j] = val
				return true
			}
		}
		return false
	})
}

// eachMember calls fn with each key (without its quotes) and raw value of
// the JSON object obj, which must be valid JSON: false when obj is not an
// object, a key is written with an escape, or fn answers false.
func eachMember(obj []byte, fn func(key, val []byte) bool) bool {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return false
	}
	i = skipSpace(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return true
	}
	for i < len(obj) {
		if obj[i] != '"' {
			return false
		}
		end := stringEnd(obj, i)
		key := obj[i+1 : end-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			return false
		}
		i = skipSpace(obj, end)
		if i >= len(obj) || obj[i] != ':' {
			return false
		}
		i = skipSpace(obj, i+1)
		if i >= len(obj) {
			return false
		}
		end = valueEnd(obj, i)
		if !fn(key, obj[i:end]) {
			return false
		}
		i = skipSpace(obj, end)
		if i >= len(obj) {
			return false
		}
		switch obj[i] {
		case '}':
			return true
		case ',':
			i = skipSpace(obj, i+1)
		default:
			return false
		}
	}
	return false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd is the index after the string starting at b[i] ('"').
func stringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// valueEnd is the index after the JSON value starting at b[i] (b valid).
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = stringEnd(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	}
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
		i++
	}
	return i
}

// serve answers r, whose body is body, when it is a plain tools/call (true),
// else leaves w untouched and returns false.
func (f *fastCalls) serve(w http.ResponseWriter, r *http.Request, c httpapi.Caller, body []byte) bool {
	if r.Method != http.MethodPost || len(r.Header.Values("Last-Event-ID")) > 0 {
		return false
	}
	if !jsonMediaType(r.Header.Get("Content-Type")) {
		return false
	}
	if j, s := accepts(r.Header.Values("Accept")); !j || !s {
		return false
	}
	for k := range r.Header { // Mcp-Method, Mcp-Name, Mcp-Param-*: the SDK validates them
		if strings.HasPrefix(k, "Mcp-") && k != fastSessionHdr && k != fastVersionHdr {
			return false
		}
	}
	if v := r.Header.Get(fastVersionHdr); v == "" || !slices.Contains(ProtocolVersions, v) {
		return false
	}
	if rebound(r, f.publicHost) {
		return false // never: NewHTTPHandler refused it already
	}
	f.mu.Lock()
	fs := f.sessions[r.Header.Get(fastSessionHdr)]
	ready := fs != nil && fs.ready
	f.mu.Unlock()
	if !ready || fs.userID != c.AccountID || time.Since(time.Unix(0, fs.touched.Load())) > fastTouch {
		return false
	}
	return f.serveBody(w, r, c, body)
}

// forget removes session id (ended by its DELETE): the calls sent on it
// from now on go to the SDK, which answers 404.
func (f *fastCalls) forget(id string) {
	f.mu.Lock()
	delete(f.sessions, id)
	f.mu.Unlock()
}

// session is the SDK's session id, if the fast path recorded it.
func (f *fastCalls) session(id string) *mcp.ServerSession {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fs := f.sessions[id]; fs != nil {
		return fs.ss
	}
	return nil
}

// known reports whether session id is one the SDK initialized for account
// (a tools/call on it reaches the tool handler), ready or not.
func (f *fastCalls) known(id, account string) bool {
	f.mu.Lock()
	fs := f.sessions[id]
	f.mu.Unlock()
	return fs != nil && fs.userID == account
}

// serveBody is serve once the body is read: false, w untouched, when the
// SDK is to answer.
func (f *fastCalls) serveBody(w http.ResponseWriter, r *http.Request, c httpapi.Caller, body []byte) bool {
	id, p, ok := decodeFast(body)
	if !ok {
		return false
	}
	t := f.tools.ByName(p.Name)
	if t == nil || !t.allows(c.Scopes) { // NewHTTPHandler answers the scope challenge
		return false
	}
	// The Who the SDK's path makes of the same request (whoFrom).
	who := Who{Authorization: r.Header.Get("Authorization"),
		RemoteAddr: r.RemoteAddr, ForwardedFor: r.Header.Values(forwardedForHeader), Host: r.Host, Caller: c.AccountID, RequestID: r.Header.Get(requestIDHeader)}
	// The answer is written after runOp: the X-RateLimit-* headers of the
	// call's count go on it, as on every other /mcp and /v1 answer.
	who.limit = func(h http.Header) { copyRateLimit(w.Header(), h) }
	if f.counter != nil {
		who.count = func() *api.Error {
			s := headerSink{h: http.Header{}}
			e := f.counter.CountRequest(s, r, c)
			copyRateLimit(w.Header(), s.h)
			return e
		}
	}
	resp, res := f.h.runOp(r.Context(), t, p.Arguments, true, who)
	if resp == nil && res == nil {
		return false // never: the handler answers errors as results; the SDK would run it again
	}
	bp := eventBufs.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxPooledBuf {
			*bp = (*bp)[:0]
			eventBufs.Put(bp)
		}
	}()
	var buf []byte
	var err error
	if resp != nil {
		buf, ok = appendResultEvent((*bp)[:0], id, t, resp)
		if !ok { // never: decodeFast took only plain ids
			res = result(t, resp)
		}
	}
	if res != nil {
		buf, err = appendEvent((*bp)[:0], id, res)
	}
	if resp != nil {
		resp.Release() // encoded: neither buf nor res holds its memory
	}
	*bp = buf
	if err != nil {
		return false
	}
	hd := w.Header() // the SDK's headers (shared values: replaced, never written in place)
	hd["Cache-Control"] = noCache
	hd["Content-Type"] = eventStream
	hd["Connection"] = keepAlive
	// The whole stream is this one event: written at once, without the
	// SDK's flush (net/http sends it with a Content-Length, not chunked).
	_, _ = w.Write(buf)
	fastServed.Add(1)
	return true
}

// encodeResponse is the JSON-RPC response as the SDK encodes it (HTML
// characters unescaped, no trailing newline).
func encodeResponse(id json.RawMessage, res *mcp.CallToolResult) ([]byte, error) {
	if res.Content == nil {
		cp := *res
		cp.Content = []mcp.Content{}
		res = &cp
	}
	result, err := marshalNoHTML(res)
	if err != nil {
		return nil, err
	}
	return marshalNoHTML(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Result  json.RawMessage `json:"result"`
	}{"2.0", id, result})
}

func marshalNoHTML(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// accepts is the SDK's reading of Accept for POSTs.
func accepts(values []string) (jsonOK, streamOK bool) {
	for _, value := range values {
		for rest, more := value, true; more; {
			var raw string
			raw, rest, more = strings.Cut(rest, ",")
			base, _, _ := strings.Cut(strings.TrimSpace(raw), ";")
			switch strings.ToLower(strings.TrimSpace(base)) {
			case "application/json", "application/*":
				jsonOK = true
			case "text/event-stream", "text/*":
				streamOK = true
			case "*/*":
				jsonOK, streamOK = true, true
			}
		}
	}
	return jsonOK, streamOK
}

// loopbackAddr is isLoopback(a.String()), without formatting a TCP address.
func loopbackAddr(a net.Addr) bool {
	if t, ok := a.(*net.TCPAddr); ok && t != nil {
		return t.AddrPort().Addr().Unmap().IsLoopback()
	}
	return isLoopback(a.String())
}

// isLoopback is the SDK's test of a host (with or without port).
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = strings.Trim(addr, "[]")
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
