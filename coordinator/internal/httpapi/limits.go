package httpapi

import (
	"errors"
	"io"
	"net/http"
	"os"
	"time"
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
	MaxHeaderBytes int           // request line and headers
}

// DefaultTimeouts are the listeners' defaults.
func DefaultTimeouts() Timeouts {
	return Timeouts{ReadHeader: 10 * time.Second, Body: 30 * time.Second, Write: 60 * time.Second, Idle: 120 * time.Second, MaxHeaderBytes: 64 << 10}
}

// Server returns an http.Server for h with these limits; h is wrapped so each
// request gets its body and write deadlines.
func (t Timeouts) Server(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           t.Deadlines(h),
		ReadHeaderTimeout: t.ReadHeader,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    t.MaxHeaderBytes,
	}
}

// Deadlines sets the request's read deadline to Body from now (the end of the
// headers) and its write deadline to Body+Write from now.
func (t Timeouts) Deadlines(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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

// liftDeadlines removes the per-request deadlines for a handler that streams
// for longer than they allow; it then bounds its own writes.
func liftDeadlines(w http.ResponseWriter) {
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
