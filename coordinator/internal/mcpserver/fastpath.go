package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// fastCalls answers the plain case of tools/call, the hot one, without the
// SDK's JSON-RPC transport: a POST of one call on a session the SDK
// initialized and touched within fastTouch, with the headers the SDK checks
// all fine. Anything else (and any doubt) goes to the SDK unchanged, so every
// error the transport can give stays the SDK's own. The tool runs through
// the same handler as on the SDK path and the answer has the SDK's shape
// (an SSE message event; no event store, so no event id or priming event).
type fastCalls struct {
	h        *handlers
	tools    *Tools
	mu       sync.Mutex
	sessions map[string]*fastSession
}

// fastOff turns the fast path off (tests compare it with the SDK's).
var fastOff atomic.Bool

// fastServed counts the calls the fast path answered (tests check it ran).
var fastServed atomic.Int64

// fastTouch: a session goes through the SDK at least this often, which
// proves it is still open there and keeps its idle timeout running as if
// every call had gone through it.
const fastTouch = 30 * time.Second

// fastMaxBody: bigger bodies go to the SDK.
const fastMaxBody = 1 << 20

type fastSession struct {
	ss      *mcp.ServerSession
	userID  string
	touched atomic.Int64 // unix nanos the SDK last handled a message of it
}

func newFastCalls(h *handlers, tools *Tools) *fastCalls {
	return &fastCalls{h: h, tools: tools, sessions: map[string]*fastSession{}}
}

// middleware records the sessions the SDK initialized (on
// notifications/initialized) and when the SDK last saw each.
func (f *fastCalls) middleware(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		ss, _ := req.GetSession().(*mcp.ServerSession)
		if ss != nil && ss.ID() != "" {
			id := ss.ID()
			f.mu.Lock()
			fs := f.sessions[id]
			if fs == nil && method == "notifications/initialized" && ss.InitializeParams() != nil {
				fs = &fastSession{ss: ss}
				if x := req.GetExtra(); x != nil && x.TokenInfo != nil {
					fs.userID = x.TokenInfo.UserID
				}
				f.sessions[id] = fs
				go func() {
					_ = ss.Wait()
					f.mu.Lock()
					delete(f.sessions, id)
					f.mu.Unlock()
				}()
			}
			f.mu.Unlock()
			if fs != nil {
				fs.touched.Store(time.Now().UnixNano())
			}
		}
		return next(ctx, method, req)
	}
}

var (
	fastTopKeys    = []string{"jsonrpc", "id", "method", "params"}
	fastParamKeys  = []string{"name", "arguments"}
	fastNumericID  = regexp.MustCompile(`^(0|-?[1-9][0-9]{0,14})$`)
	fastStringID   = regexp.MustCompile(`^"[A-Za-z0-9._:-]{0,64}"$`)
	fastSessionHdr = http.CanonicalHeaderKey("Mcp-Session-Id")
	fastVersionHdr = http.CanonicalHeaderKey("Mcp-Protocol-Version")
)

// fastParams are a plain tools/call's parameters.
type fastParams struct {
	Name      string
	Arguments json.RawMessage // nil when absent
}

// decodeFast reads body as one tools/call request of the plain shape: exact
// (case-sensitive) keys, jsonrpc "2.0" and method "tools/call" spelled
// without escapes, an integer or simple string id, and params with only a
// name (without escapes) and arguments. ok false: not that shape (the SDK
// answers it, errors included).
func decodeFast(body []byte) (id json.RawMessage, p fastParams, ok bool) {
	if !utf8.Valid(body) {
		return nil, p, false
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || !onlyKeys(top, fastTopKeys) {
		return nil, p, false
	}
	if string(top["jsonrpc"]) != `"2.0"` || string(top["method"]) != `"tools/call"` {
		return nil, p, false
	}
	id = top["id"]
	if !fastNumericID.Match(id) && !fastStringID.Match(id) {
		return nil, p, false
	}
	var params map[string]json.RawMessage
	if err := json.Unmarshal(top["params"], &params); err != nil || params == nil || !onlyKeys(params, fastParamKeys) {
		return nil, p, false
	}
	n := params["name"]
	if len(n) < 3 || n[0] != '"' || n[len(n)-1] != '"' || bytes.IndexByte(n, '\\') >= 0 {
		return nil, p, false
	}
	p.Name = string(n[1 : len(n)-1])
	p.Arguments = params["arguments"]
	return id, p, true
}

func onlyKeys(m map[string]json.RawMessage, allowed []string) bool {
	for k := range m {
		if !slices.Contains(allowed, k) {
			return false
		}
	}
	return true
}

// serve answers r when it is a plain tools/call (true), else leaves w
// untouched and r readable again and returns false.
func (f *fastCalls) serve(w http.ResponseWriter, r *http.Request, ti *auth.TokenInfo) bool {
	if r.Method != http.MethodPost || len(r.Header.Values("Last-Event-ID")) > 0 {
		return false
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
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
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok && la != nil && isLoopback(la.String()) && !isLoopback(r.Host) {
		return false // the SDK's DNS rebinding protection answers
	}
	f.mu.Lock()
	fs := f.sessions[r.Header.Get(fastSessionHdr)]
	f.mu.Unlock()
	if fs == nil || ti == nil || fs.userID != ti.UserID || time.Since(time.Unix(0, fs.touched.Load())) > fastTouch {
		return false
	}
	if r.ContentLength < 0 || r.ContentLength > fastMaxBody {
		return false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, fastMaxBody+1))
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil || len(body) > fastMaxBody {
		return false
	}
	id, p, ok := decodeFast(body)
	if !ok {
		return false
	}
	t := f.tools.ByName(p.Name)
	if t == nil {
		return false
	}
	res, err := f.h.tool(t)(r.Context(), &mcp.CallToolRequest{Session: fs.ss,
		Params: &mcp.CallToolParamsRaw{Name: p.Name, Arguments: p.Arguments},
		Extra:  &mcp.RequestExtra{TokenInfo: ti, Header: r.Header}})
	if err != nil || res == nil {
		return false // never: the handler answers errors as results; the SDK would run it again
	}
	data, err := encodeResponse(id, res)
	if err != nil {
		return false
	}
	hd := w.Header()
	hd.Set("Cache-Control", "no-cache, no-transform")
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Connection", "keep-alive")
	buf := make([]byte, 0, len(data)+len("event: message\ndata: \n\n"))
	buf = append(buf, "event: message\ndata: "...)
	buf = append(buf, data...)
	buf = append(buf, "\n\n"...)
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
		for _, raw := range strings.Split(value, ",") {
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
