package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/hostplane/hostplane/coordinator/internal/httpapi"
	"github.com/hostplane/hostplane/pkg/api"
)

// HandlerDispatcher runs each call in-process: through Routes[c.Route], the
// handler of the call's own route as the public listener runs it once
// routed (httpapi's RouteHandlers), else through Handler, the public
// listener's own handler (the /v1 router with its middleware). Either way
// the same authentication, scope check, rate limit, idempotency, audit,
// forwarding to the leader and errors as a REST call, without a network hop.
type HandlerDispatcher struct {
	Handler http.Handler
	Routes  map[string]http.Handler
}

// Dispatch implements Dispatcher. A panic in the handler (net/http would
// recover it per connection; here it would end the process) becomes a 500,
// and http.ErrAbortHandler (a forwarded response cut off) an error.
func (hd HandlerDispatcher) Dispatch(ctx context.Context, c *Call, who Who) (resp *Response, err error) {
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		resp = nil
		if p == http.ErrAbortHandler {
			err = errors.New("the operation's response was cut off; retry")
			return
		}
		slog.Error("mcp: panic running "+c.Method+" "+c.Path, "panic", p, "stack", string(debug.Stack()))
		e := api.NewError(http.StatusInternalServerError, "internal_error", "internal error")
		e.RequestID = who.RequestID // as the handler's own errors carry it
		raw, _ := json.Marshal(e)
		resp = &Response{Status: http.StatusInternalServerError, Header: http.Header{}, Body: raw}
	}()
	host := who.Host
	if host == "" {
		host = "localhost"
	}
	// An OAuth token's audience is /mcp's, not the /v1 route's.
	r, err := newRequest(httpapi.ViaResource(ctx, "/mcp"), c.Method, host, c.Path, c.Body)
	if err != nil {
		return nil, err
	}
	if c.Header != nil {
		r.Header = c.Header // the call's own, used once
	}
	if who.Authorization != "" {
		r.Header["Authorization"] = []string{who.Authorization}
	}
	if who.RequestID != "" {
		r.Header[requestIDHeader] = []string{who.RequestID}
	}
	if who.RemoteAddr != "" {
		r.RemoteAddr = who.RemoteAddr
	}
	if len(who.ForwardedFor) > 0 {
		r.Header[forwardedForHeader] = who.ForwardedFor
	} else {
		delete(r.Header, forwardedForHeader)
	}
	if c.Body == nil {
		r.Body = http.NoBody
		r.ContentLength = 0
	}
	rec := recorders.Get().(*recorder)
	if h := hd.Routes[c.Route]; h != nil && c.Route != "" {
		h.ServeHTTP(rec, r)
	} else {
		hd.Handler.ServeHTTP(rec, r)
	}
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	rec.resp = Response{Status: rec.status, Header: rec.header, Body: rec.body.Bytes(), rec: rec}
	return &rec.resp, nil
}

// newRequest is the request http.NewRequestWithContext(ctx, method,
// "http://"+host+target, body) makes (body nil: none), as the handlers read
// it: the same method, URL, Host, header, body and length. A plain host
// (letters, digits, dots and hyphens, an optional port) and target (an
// absolute path of characters the URL's path keeps as they are, and a
// query of printable ASCII without '#', as Tool.build writes them) are
// set as they are, without parsing the URL again; the body is one reader
// without GetBody (a server's request has none). Anything else goes
// through http.NewRequestWithContext. TestNewRequestMatches and
// FuzzNewRequestMatches hold the two to the same request.
func newRequest(ctx context.Context, method, host, target string, body []byte) (*http.Request, error) {
	path, query, hasQuery := strings.Cut(target, "?")
	if !plainHost(host) || !plainPath(path) || (hasQuery && !plainQuery(query)) {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		return http.NewRequestWithContext(ctx, method, "http://"+host+target, rd)
	}
	r, err := http.NewRequestWithContext(ctx, method, "", nil)
	if err != nil {
		return nil, err
	}
	*r.URL = url.URL{Scheme: "http", Host: host, Path: path, RawQuery: query}
	r.Host = host
	if body != nil {
		br := &bodyReader{}
		br.Reset(body)
		r.Body = br
		r.ContentLength = int64(len(body))
	}
	return r, nil
}

// bodyReader is a dispatched request's body.
type bodyReader struct{ bytes.Reader }

// Close implements io.Closer.
func (*bodyReader) Close() error { return nil }

// plainHost: letters, digits, '.' and '-', then an optional non-empty
// numeric port.
func plainHost(h string) bool {
	name, port, hasPort := strings.Cut(h, ":")
	return name != "" && (!hasPort || port != "") && allIn(name, hostBytes) && allIn(port, digitBytes)
}

// plainPath: an absolute path of the bytes url.URL keeps unescaped in a
// path (unreserved, and $&+,/:;=@), so Path is the path and RawPath empty.
func plainPath(p string) bool {
	return p != "" && p[0] == '/' && allIn(p, pathBytes)
}

// plainQuery: a non-empty query of printable ASCII without '#'.
func plainQuery(q string) bool {
	return q != "" && allIn(q, queryBytes)
}

// A byteSet is the bytes a plain* check lets through (allIn).
type byteSet [256]bool

// The byte sets of plainHost, plainPath, plainQuery, plainID and plainKey.
var (
	hostBytes  = setOf(alnum + ".-")
	digitBytes = setOf("0123456789")
	pathBytes  = setOf(alnum + "-_.~$&+,/:;=@")
	queryBytes = printableBut('#')
	idBytes    = setOf(alnum + "._:-")
	keyBytes   = setOf(alnum + "_/.:-")
)

const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// setOf is the set of the bytes of chars.
func setOf(chars string) *byteSet {
	var t byteSet
	for i := 0; i < len(chars); i++ {
		t[chars[i]] = true
	}
	return &t
}

// printableBut is the set of printable ASCII ('!' to '~') without not.
func printableBut(not byte) *byteSet {
	var t byteSet
	for c := '!'; c <= '~'; c++ {
		t[c] = byte(c) != not
	}
	return &t
}

// allIn says whether every byte of s is in t (true for an empty s).
func allIn[S string | []byte](s S, t *byteSet) bool {
	for i := 0; i < len(s); i++ {
		if !t[s[i]] {
			return false
		}
	}
	return true
}

// recorder is the in-process http.ResponseWriter, and the Response made
// of what it recorded. Recorders are recycled: a Response's Release hands
// its recorder back once the answer is no longer read (the fast path, after
// encoding it); a Response never released is left to the garbage collector.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
	resp   Response
}

var recorders = sync.Pool{New: func() any { return &recorder{header: make(http.Header, 8)} }}

// maxPooledRecorder: recorders that held a bigger body are not recycled.
const maxPooledRecorder = 64 << 10

// Release hands the Response's memory back for reuse by later calls: its
// Header and Body must not be read afterwards. A Response that Dispatch did
// not make (or one released already) is left alone.
func (r *Response) Release() {
	rec := r.rec
	if rec == nil || &rec.resp != r {
		return
	}
	r.rec = nil
	if rec.body.Cap() > maxPooledRecorder {
		return
	}
	clear(rec.header)
	rec.status = 0
	rec.body.Reset()
	rec.resp = Response{}
	recorders.Put(rec)
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(p)
}

func (r *recorder) Flush() {}
