package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
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
		raw, _ := json.Marshal(api.NewError(http.StatusInternalServerError, "internal_error", "internal error"))
		resp = &Response{Status: http.StatusInternalServerError, Header: http.Header{}, Body: raw}
	}()
	var body io.Reader // none: NoBody, below
	if c.Body != nil {
		body = bytes.NewReader(c.Body)
	}
	host := who.Host
	if host == "" {
		host = "localhost"
	}
	// An OAuth token's audience is /mcp's, not the /v1 route's.
	r, err := http.NewRequestWithContext(httpapi.ViaResource(ctx, "/mcp"), c.Method, "http://"+host+c.Path, body)
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
