package mcpserver

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// Defaults of the GET stream limits (HTTPOptions.StreamsPerAccount,
// Streams, StreamIdle). A session has at most one GET stream (the SDK
// answers a second one 409), and a held stream costs the coordinator about
// five goroutines and a connection: 1,024 is some 5,000 goroutines, far below
// what a coordinator holds without strain, and an MCP client keeps one per
// session, so 16 sessions of one account stream at once.
const (
	DefaultStreamsPerAccount = 16
	DefaultStreams           = 1024
	DefaultStreamIdle        = 30 * time.Second
)

// streamsRetryAfter is the Retry-After of a stream refused by a cap, in
// seconds: a place frees only when a client closes a stream.
const streamsRetryAfter = 5

// streamLimits bounds the GET streams of /mcp (the server-to-client
// messages of a session) and ends the sessions their clients left.
//
// The SDK has no option for either. Its SessionTimeout (30 min) counts from a
// session's last POST, and a GET stream neither stops nor restarts it: a
// client that opens sessions and their streams and reads nothing held five
// goroutines and a connection per session for as long as it kept the
// connections (measured: 38 goroutines → 1,040 with 200 such streams), and
// two goroutines per session for the rest of the 30 minutes once it let
// them go. So:
//   - an account holds at most perAccount streams at once (429
//     too_many_streams beyond), and this coordinator at most total (503
//     too_many_streams), both with Retry-After;
//   - a session that had a stream (or was refused one by these caps), once
//     no request of it is running (the stream closed, and no POST since),
//     is closed after idle unless a request of it comes first. A client that comes back later gets the
//     SDK's 404 and initializes again, as the MCP transport says a client
//     does. Sessions that never opened a stream keep the SDK's
//     SessionTimeout.
type streamLimits struct {
	perAccount, total int
	idle              time.Duration
	end               func(session string) // closes a session (the SDK's Close)

	mu       sync.Mutex
	open     int
	accounts map[string]int         // account id → open streams
	sessions map[string]*sessionUse // sessions that had a stream
}

// sessionUse is a session that had a GET stream: its requests running, and
// the timer that ends it once none runs for idle.
type sessionUse struct {
	running  int
	streamed bool // a GET stream of it was served
	timer    *time.Timer
	gen      int // a timer fires only for the generation it was set in
}

func newStreamLimits(perAccount, total int, idle time.Duration, end func(string)) *streamLimits {
	if perAccount <= 0 {
		perAccount = DefaultStreamsPerAccount
	}
	if total <= 0 {
		total = DefaultStreams
	}
	if idle <= 0 {
		idle = DefaultStreamIdle
	}
	return &streamLimits{perAccount: perAccount, total: total, idle: idle, end: end,
		accounts: map[string]int{}, sessions: map[string]*sessionUse{}}
}

// acquire counts one GET stream of account, or refuses it (the error, with
// Retry-After set on h). release undoes the count.
func (l *streamLimits) acquire(account string, h http.Header) (release func(), e *api.Error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.accounts[account] >= l.perAccount:
		e = api.NewError(http.StatusTooManyRequests, "too_many_streams",
			fmt.Sprintf("this account already has %d MCP session streams (GET /mcp) open at this coordinator, the most it may hold at once; close one first", l.perAccount))
	case l.open >= l.total:
		e = api.NewError(http.StatusServiceUnavailable, "too_many_streams",
			"this coordinator holds as many MCP session streams (GET /mcp) as it takes; retry shortly (tool calls are not affected)")
	}
	if e != nil {
		h.Set("Retry-After", strconv.Itoa(streamsRetryAfter))
		return nil, e
	}
	l.open++
	l.accounts[account]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.open--
			if l.accounts[account]--; l.accounts[account] <= 0 {
				delete(l.accounts, account)
			}
		})
	}, nil
}

// begin notes a request of session (get: its GET stream) and returns what
// to call when it ends (streamed: the stream was served, a 200, or refused
// by the caps). A request
// of a session that never had a stream is not followed, but its GET is.
func (l *streamLimits) begin(session string, get bool) (done func(streamed bool)) {
	if session == "" {
		return func(bool) {}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	u := l.sessions[session]
	if u == nil {
		if !get {
			return func(bool) {}
		}
		u = &sessionUse{}
		l.sessions[session] = u
	}
	u.running++
	if u.timer != nil {
		u.timer.Stop()
		u.timer = nil
	}
	u.gen++
	return func(streamed bool) {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.sessions[session] != u {
			return // ended (forget) meanwhile
		}
		u.streamed = u.streamed || streamed
		if u.running--; u.running > 0 {
			return
		}
		if !u.streamed {
			delete(l.sessions, session) // a refused GET: no stream, nothing to follow
			return
		}
		gen := u.gen
		u.timer = time.AfterFunc(l.idle, func() { l.expire(session, u, gen) })
	}
}

// expire ends session if nothing of it ran since its timer was set.
func (l *streamLimits) expire(session string, u *sessionUse, gen int) {
	l.mu.Lock()
	if l.sessions[session] != u || u.running > 0 || u.gen != gen {
		l.mu.Unlock()
		return
	}
	delete(l.sessions, session)
	l.mu.Unlock()
	l.end(session)
}

// forget stops following session (its DELETE ended it).
func (l *streamLimits) forget(session string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if u := l.sessions[session]; u != nil {
		if u.timer != nil {
			u.timer.Stop()
		}
		delete(l.sessions, session)
	}
}
