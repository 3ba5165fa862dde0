package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

const (
	// statsTimeout bounds a one-shot sample, and the wait for a stream's
	// first sample before the stream is committed anyway.
	statsTimeout         = 3 * time.Second
	defaultStatsInterval = 2 * time.Second
	maxStatsIntervalSecs = 60
	// streamWriteSlack is how long past one interval an event may take to
	// reach a slow client before the write deadline cuts the stream.
	streamWriteSlack = 15 * time.Second
)

var errNoSample = errors.New("the node sent no sample")

// msgNodeOffline is what the client sees when the node cannot be asked.
const msgNodeOffline = "the server's host is not reachable right now; stats are unavailable"

// streamedBody is the handler result of a response the handler already wrote
// (server-sent events). It marshals to nothing, so writeJSON adds no bytes.
type streamedBody struct{}

// MarshalJSON fails so that json.Encoder writes nothing.
func (streamedBody) MarshalJSON() ([]byte, error) {
	return nil, errors.New("response already streamed")
}

// statsQuery parses ?stream= and ?interval= (seconds, 1-60, default 2).
func statsQuery(r *http.Request) (stream bool, interval time.Duration, err error) {
	q := r.URL.Query()
	switch q.Get("stream") {
	case "", "0", "false":
	case "1", "true":
		stream = true
	default:
		return false, 0, &httpError{status: 400, code: "invalid_query", msg: "query parameter \"stream\" must be 1, 0, true or false"}
	}
	interval = defaultStatsInterval
	if s := q.Get("interval"); s != "" {
		n, e := strconv.Atoi(s)
		if e != nil || n < 1 || n > maxStatsIntervalSecs {
			return false, 0, &httpError{status: 400, code: "invalid_query", msg: fmt.Sprintf("query parameter \"interval\" must be an integer from 1 to %d (seconds)", maxStatsIntervalSecs)}
		}
		interval = time.Duration(n) * time.Second
	}
	return stream, interval, nil
}

// statsError turns a failed Stats call into the client's error. Node or agent
// detail stays in the log: it may name the VM or the host.
func (a *API) statsError(rq *request, s store.Server, err error) error {
	if errors.Is(err, ErrNodeOffline) || errors.Is(err, context.DeadlineExceeded) {
		return &httpError{status: http.StatusServiceUnavailable, code: "node_offline", msg: msgNodeOffline, cause: err}
	}
	if rq.Context().Err() == nil && a.log != nil {
		a.log.Warn("server stats failed", "request_id", rq.id, "server", s.ID, "err", err)
	}
	return &httpError{status: http.StatusServiceUnavailable, code: "stats_unavailable", msg: "stats for this server are unavailable right now; retry shortly", cause: err}
}

func (a *API) serverStats(rq *request) (int, any, error) {
	s, err := a.loadServer(rq)
	if err != nil {
		return 0, nil, err
	}
	stream, interval, err := statsQuery(rq.Request)
	if err != nil {
		return 0, nil, err
	}
	if s.Status == api.ServerTerminated {
		return 0, nil, errf(http.StatusConflict, "conflict", "server %s is terminated; it has no stats", s.ID)
	}
	deps, err := a.serverDeps()
	if err != nil {
		return 0, nil, err
	}
	if deps.Stats == nil {
		return 0, nil, a.statsError(rq, s, ErrNodeOffline)
	}
	// Each call holds a stream of the node's agent session until it returns.
	release, err := a.acquireStats(rq, s.NodeID, stream)
	if err != nil {
		return 0, nil, err
	}
	defer release()
	if stream {
		return a.streamStats(rq, deps, s, interval)
	}
	ctx, cancel := context.WithTimeout(rq.Context(), statsTimeout)
	defer cancel()
	var mu sync.Mutex
	var got *api.ServerStats
	err = deps.Stats(ctx, s.NodeID, s.VMName, false, 0, func(st api.ServerStats) error {
		mu.Lock()
		defer mu.Unlock()
		if got == nil {
			got = &st
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if err == nil && got == nil {
		err = errNoSample
	}
	if err != nil {
		return 0, nil, a.statsError(rq, s, err)
	}
	got.ServerID = s.ID
	return http.StatusOK, *got, nil
}

// streamStats serves ?stream=1 as server-sent events: `event: stats` per
// sample until the client goes away, or one `event: error` when the node
// drops or the stream's key is refused (StreamRefusal: revoked, expired, its
// allow-list no longer holds the client; its 401 or 403). A failure before
// the first sample is a plain JSON error; the response
// is committed by the first sample, or after statsTimeout without one, so a
// proxy waiting for headers (the follower's forwarder) does not give up.
func (a *API) streamStats(rq *request, deps *ServerDeps, s store.Server, interval time.Duration) (int, any, error) {
	w := rq.w
	rc := http.NewResponseController(w)
	// The listener's per-request deadlines would end the stream: reading is
	// over (a GET), and each event's write gets its own deadline below.
	LiftDeadlines(w)
	var mu sync.Mutex // guards the writer and the flags: the timer writes too
	started, done := false, false
	// extend pushes the write deadline past the next event; the server's
	// WriteTimeout (if any) must not cut a long stream. Unsupported writers
	// (no deadline to extend) are fine.
	extend := func() { _ = rc.SetWriteDeadline(time.Now().Add(interval + streamWriteSlack)) }
	begin := func() {
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
		extend()
		w.WriteHeader(http.StatusOK)
		started = true
	}
	send := func(event string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		extend()
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b); err != nil {
			return err
		}
		return rc.Flush()
	}
	t := time.AfterFunc(statsTimeout, func() {
		mu.Lock()
		defer mu.Unlock()
		if !started && !done {
			begin()
			_, _ = io.WriteString(w, ": waiting for the first sample\n\n")
			_ = rc.Flush()
		}
	})
	// refused: the stream's key (or access token) is refused since it was
	// opened (revoked, expired, its allow-list no longer holds the client).
	// Each sample checks it again (StreamRefusal, from the key cache, read
	// again only after a key changed): a key that was checked once, when
	// the stream opened, kept streaming the server's figures to whoever held
	// it after its revocation, for as long as they read.
	var refused *api.Error
	err := deps.Stats(rq.Context(), s.NodeID, s.VMName, true, interval, func(st api.ServerStats) error {
		mu.Lock()
		defer mu.Unlock()
		if done {
			return errors.New("stream closed")
		}
		if refused = a.StreamRefusal(rq.Request, rq.scope); refused != nil {
			return refused
		}
		if !started {
			begin()
		}
		st.ServerID = s.ID
		return send("stats", st)
	})
	t.Stop()
	mu.Lock()
	defer mu.Unlock()
	done = true
	if !started {
		if refused != nil {
			return 0, nil, &httpError{status: refused.StatusCode, code: refused.Code, msg: refused.Message}
		}
		if err == nil {
			err = errNoSample
		}
		return 0, nil, a.statsError(rq, s, err)
	}
	if refused != nil {
		_ = send("error", refused)
	} else if rq.Context().Err() == nil {
		// The node dropped (or the agent ended the stream): say so, then end.
		if err == nil {
			err = errNoSample
		}
		var he *httpError
		errors.As(a.statsError(rq, s, err), &he)
		_ = send("error", api.NewError(he.status, he.code, he.msg))
	}
	return http.StatusOK, streamedBody{}, nil
}
