package httpapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/hostplane/hostplane/coordinator/internal/raftnode"
	"github.com/hostplane/hostplane/pkg/api"
)

// Read consistency (README "Read consistency"). A GET is linearizable by default:
// a follower forwards it to the leader, and the leader serves it only after a
// quorum has confirmed its leadership in a round that started after the request
// arrived and its FSM has applied everything committed before (raftnode
// LinearizableRead; concurrent reads share rounds). The API key is looked up
// after that, so a key whose revocation was acknowledged before the request
// arrived is refused. With ?consistency=stale a GET is served from this
// coordinator's own state, leader or not, without forwarding or confirmation: it
// may miss writes acknowledged elsewhere (and accept a key revoked a moment ago).
const (
	paramConsistency      = "consistency"
	consistencyLinear     = "linearizable"
	consistencyStale      = "stale"
	headerReadConsistency = "X-Hostplane-Read-Consistency"
)

// readGate decides where and how a public request is served: forwarded to the
// leader, refused while leadership is changing, or served here (after the read
// barrier for a linearizable GET). It writes the response and returns false when
// the request must not be served here.
func (a *API) readGate(w http.ResponseWriter, r *http.Request, rid string) bool {
	stale, err := staleRequested(r)
	if err != nil {
		ae, _ := toAPIError(err)
		a.uncountedLimitHeaders(w, r)
		writeRefusal(w, r, rid, ae)
		return false
	}
	if stale {
		w.Header().Set(headerReadConsistency, consistencyStale)
		return true
	}
	if !a.raft.IsLeader() {
		a.fwd.forward(w, r, rid)
		return false
	}
	if !a.awaitLeaderReady(r.Context()) {
		w.Header().Set("Retry-After", "1")
		a.uncountedLimitHeaders(w, r)
		writeRefusal(w, r, rid, api.NewError(http.StatusServiceUnavailable, "no_leader", "leadership is changing; retry shortly"))
		return false
	}
	if isRead(r) {
		if ae := a.linearizableRead(r.Context()); ae != nil {
			w.Header().Set("Retry-After", "1")
			a.uncountedLimitHeaders(w, r)
			writeRefusal(w, r, rid, ae)
			return false
		}
		w.Header().Set(headerReadConsistency, consistencyLinear)
	}
	return true
}

// staleRequested parses ?consistency=: absent, empty or "linearizable" (the
// default) or "stale" (GET and HEAD only). An empty value is the default, as
// for every query parameter (queryparams.go).
func staleRequested(r *http.Request) (bool, error) {
	if r.URL.RawQuery == "" {
		return false, nil
	}
	q := r.URL.Query()
	vs, ok := q[paramConsistency]
	if !ok {
		return false, nil
	}
	if len(vs) != 1 {
		return false, badParam(`query parameter "consistency" given more than once`)
	}
	switch vs[0] {
	case "", consistencyLinear:
		return false, nil
	case consistencyStale:
		if !isRead(r) {
			return false, badParam(`query parameter "consistency" applies to GET (and HEAD) requests only`)
		}
		return true, nil
	}
	return false, badParam(`query parameter "consistency" must be "linearizable" or "stale"`)
}

// isRead: a GET or a HEAD. net/http routes a HEAD to the GET's handler and
// drops the body, so a HEAD answers the GET's headers (Content-Length, the rate-limit figures):
// it reads as the GET does, with the same consistency and the same
// ?consistency= choice. Before, a HEAD skipped the leader's read barrier and
// ?consistency=stale on it was a 400.
func isRead(r *http.Request) bool {
	return r.Method == http.MethodGet || r.Method == http.MethodHead
}

func badParam(msg string) error {
	return &httpError{status: http.StatusBadRequest, code: "invalid_query", msg: msg}
}

// linearizableRead waits for the read barrier: nil, or a 503 to retry.
func (a *API) linearizableRead(ctx context.Context) *api.Error {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.ApplyTimeout)
	defer cancel()
	err := a.raft.LinearizableRead(ctx)
	if err == nil {
		return nil
	}
	if errors.Is(err, raftnode.ErrNotLeader) {
		return api.NewError(http.StatusServiceUnavailable, "no_leader", "this coordinator could not confirm it is still the leader; retry shortly")
	}
	a.log.Warn("read barrier failed", "err", err)
	return api.NewError(http.StatusServiceUnavailable, "read_unconfirmed", "the read could not be confirmed with the cluster in time; retry shortly")
}
