package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// Timeouts bound how long a client may hold a connection of a listener (public
// API, admin socket) without finishing its request. A stalled header is cut by the
// server; a stalled body is answered 408 (and the connection closed) once Body
// has passed since the headers arrived; Write bounds the response after the
// body's time; Idle bounds a keep-alive connection between requests.
//
// Read and write deadlines are set per request through http.ResponseController
// rather than http.Server.ReadTimeout/WriteTimeout, so that a handler that
// streams (the stats SSE stream, the admin backup, the admin restore upload) can
// lift them for itself.
type Timeouts struct {
	ReadHeader     time.Duration // request line and headers
	Body           time.Duration // the whole request body, from the end of the headers
	Write          time.Duration // the response, from the end of the body's time (headers + Body)
	Idle           time.Duration // a keep-alive connection between requests
	MaxHeaderBytes int           // request line and headers: a JSON 431 beyond (headerLimit)
}

// DefaultTimeouts are the listeners' defaults.
func DefaultTimeouts() Timeouts {
	return Timeouts{ReadHeader: 10 * time.Second, Body: 30 * time.Second, Write: 60 * time.Second, Idle: 120 * time.Second, MaxHeaderBytes: 64 << 10}
}

// Server returns an http.Server for h with these limits; h is wrapped so each
// request gets its body and write deadlines, and a request whose target
// passes maxTargetBytes or whose line and headers pass MaxHeaderBytes is
// answered with the API's JSON 414 or 431.
func (t Timeouts) Server(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           t.headerLimit(t.Deadlines(h)),
		ReadHeaderTimeout: t.ReadHeader,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    t.cutHeaderBytes(),
	}
}

// cutHeaderBytes is net/http's own limit, above MaxHeaderBytes. net/http
// answers a request past its limit itself, before any handler runs and with no
// way to shape the answer: a text/plain 431 without X-Request-Id, the
// connection closed. So it is set higher, and headerLimit answers between the
// two limits with the JSON error every other refusal is; only headers past
// this one (twice MaxHeaderBytes, at least 64 KiB more) get net/http's answer,
// which still bounds what a connection may make the server read and hold.
func (t Timeouts) cutHeaderBytes() int {
	if t.MaxHeaderBytes <= 0 {
		return 0 // net/http's default (1 MiB), and no check of ours
	}
	return max(2*t.MaxHeaderBytes, t.MaxHeaderBytes+64<<10)
}

// headerLimit answers, before anything else handles it, a request whose
// target (path and query) takes more than maxTargetBytes with a JSON 414
// uri_too_long, and one whose line and headers take more than MaxHeaderBytes
// with a JSON 431 headers_too_large; either closes the connection (the body
// is not read).
func (t Timeouts) headerLimit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n := len(r.RequestURI); n > maxTargetBytes {
			// Before the header check: a long target also passes the
			// header limit, and the 431 would name headers the client
			// never sent.
			refuseEarly(w, r, api.NewError(http.StatusRequestURITooLong, "uri_too_long",
				fmt.Sprintf("the request target (path and query) takes %d bytes, more than the %d accepted", n, maxTargetBytes)))
			return
		}
		if t.MaxHeaderBytes <= 0 {
			next.ServeHTTP(w, r)
			return
		}
		limit := t.MaxHeaderBytes
		if r.Header.Get(headerForwardedBy) != "" {
			// A follower checked the client's headers against the limit
			// and added its own (forward.go: the forwarding node, the
			// client's address, the cluster token, the leader's Host).
			limit += forwardedHeaderSlack
		}
		if n := headerBytes(r); n > limit {
			refuseEarly(w, r, api.NewError(http.StatusRequestHeaderFieldsTooLarge, "headers_too_large",
				fmt.Sprintf("the request line and headers take %d bytes, more than the %d accepted", n, t.MaxHeaderBytes)))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// maxTargetBytes is the longest request target (path and query, as sent)
// the listeners take. The longest the API makes or asks for is far shorter
// (ids, cursors and filters: a few hundred bytes); RFC 9112 recommends
// taking request lines of at least 8000 bytes, and nginx's default buffer for
// one is 8 KiB. Longer is a JSON 414
// up to net/http's own cut (cutHeaderBytes: the request line counts against
// it), past which net/http answers its text/plain 431 itself.
const maxTargetBytes = 8 << 10

// refuseEarly writes e, the answer of a check that runs before the API's own
// middleware (so not counted by the rate limits, no X-RateLimit-*), with the
// headers that middleware gives every answer, and closes the connection.
func refuseEarly(w http.ResponseWriter, r *http.Request, e *api.Error) {
	rid := requestID(r)
	h := w.Header()
	h[headerRequestID] = []string{rid}
	h["X-Content-Type-Options"] = nosniff
	h["Cache-Control"] = noStore
	h.Set("Connection", "close")
	writeError(w, rid, e)
}

// forwardedHeaderSlack is how many more header bytes a request forwarded by
// a follower may take at the leader than a client's: the follower's own
// headers are about 300 bytes. Anyone may send the marker header; it buys
// them this much (net/http's cut stays above), and the request is refused
// later unless it proves the cluster's secret or certificate.
const forwardedHeaderSlack = 1 << 10

// headerBytes is about the size of r's request line and headers as they came
// on the wire (net/http keeps Host apart from the other headers).
func headerBytes(r *http.Request) int {
	n := len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto) + 2
	if r.Host != "" {
		n += len("Host: ") + len(r.Host) + 2
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + 2 + len(v) + 2
		}
	}
	return n + 2
}

// Deadlines sets the request's read deadline to Body from now (the end of the
// headers) and its write deadline to Body+Write from now, and closes the
// connection after answering a chunked request.
func (t Timeouts) Deadlines(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TransferEncoding) > 0 {
			// RFC 9112 §6.3: a request with both Transfer-Encoding and
			// Content-Length is read by the former, and the server MUST close
			// the connection after answering it; else what Content-Length
			// called body (behind a proxy framing by it) is read here as the
			// next request: request smuggling. net/http has deleted the
			// Content-Length by now, so every chunked request closes.
			w.Header().Set("Connection", "close")
		}
		rc := http.NewResponseController(w)
		now := time.Now()
		if t.Body > 0 {
			_ = rc.SetReadDeadline(now.Add(t.Body))
		}
		if t.Write > 0 {
			// From the end of the body's time, so that a 408 can still be written.
			_ = rc.SetWriteDeadline(now.Add(t.Body + t.Write))
		}
		next.ServeHTTP(w, r)
	})
}

// LiftDeadlines removes the per-request deadlines (Deadlines) for a handler
// that streams or runs for longer than they allow (the stats streams, the
// pprof listener's timed profiles); it then bounds its own writes.
func LiftDeadlines(w http.ResponseWriter) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
}

// isTimeout reports whether a body read failed on its deadline.
func isTimeout(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded)
}

// stallBody bounds each read of a long upload (the admin restore) instead of the
// whole body: the deadline moves on while bytes arrive.
type stallBody struct {
	io.ReadCloser
	rc *http.ResponseController
	d  time.Duration
}

func (s *stallBody) Read(p []byte) (int, error) {
	_ = s.rc.SetReadDeadline(time.Now().Add(s.d))
	return s.ReadCloser.Read(p)
}

// stallWriter bounds each write of a long response (a proxied stream, the
// admin backup) instead of the whole response.
type stallWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
	d  time.Duration
}

func newStallWriter(w http.ResponseWriter, d time.Duration) *stallWriter {
	return &stallWriter{ResponseWriter: w, rc: http.NewResponseController(w), d: d}
}

func (s *stallWriter) Write(b []byte) (int, error) {
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.d))
	return s.ResponseWriter.Write(b)
}

func (s *stallWriter) Flush() { _ = s.rc.Flush() }

// Unwrap lets http.ResponseController reach the connection.
func (s *stallWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
