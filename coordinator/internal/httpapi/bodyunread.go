package httpapi

import (
	"context"
	"errors"
	"net/http"
	"os"
	"time"
)

// A follower reads a body before it forwards the request, but the leader
// answers a body that is too large or stalls only after the key, its rate
// limit and its scope (serve), as every response carries the key's
// X-RateLimit-* headers and a call without a key is a 401 whatever its body.
// So a follower that cannot read the body does not answer itself: it forwards
// the request without a body and says why in headerBodyUnread, and the leader
// gives the request a body that fails as it failed on the follower
// (unreadBodies). The header is trusted only from a coordinator.
const headerBodyUnread = "X-Hostplane-Body-Unread"

const (
	unreadTooLarge = "too_large" // over MaxBodyBytes
	unreadTimeout  = "timeout"   // stalled past the follower's body deadline
)

// bodyUnreadKey carries headerBodyUnread's value from proxyTo to the proxy's
// Rewrite.
type bodyUnreadKey struct{}

// bodyUnread says whether err, readBodyAny's on a follower, is one the leader
// answers (and as what).
func bodyUnread(err error) (string, bool) {
	var he *httpError
	if !errors.As(err, &he) {
		return "", false
	}
	switch he.status {
	case http.StatusRequestEntityTooLarge:
		return unreadTooLarge, true
	case http.StatusRequestTimeout:
		return unreadTimeout, true
	}
	return "", false
}

// unreadContext is the context of forwarding a request whose body could not be
// read: a stalled body's read error ends the request's own context (the server
// cancels it when the connection fails a read), but the leader's answer is
// still due; a bounded wait, as the proxy's ResponseHeaderTimeout bounds it.
func unreadContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
}

// unreadBodies gives a request a coordinator forwarded without its body (see
// headerBodyUnread) a body that fails as the follower's did; from anyone else
// the header is dropped.
func (a *API) unreadBodies(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v, ok := r.Header[headerBodyUnread]; ok {
			delete(r.Header, headerBodyUnread)
			if len(v) == 1 && a.clusterTokenOK(r) {
				switch v[0] {
				case unreadTooLarge:
					r.Body = failingBody{&http.MaxBytesError{Limit: MaxBodyBytes}}
				case unreadTimeout:
					r.Body = failingBody{os.ErrDeadlineExceeded}
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// failingBody is a body whose every read fails with err.
type failingBody struct{ err error }

func (b failingBody) Read([]byte) (int, error) { return 0, b.err }
func (b failingBody) Close() error             { return nil }
