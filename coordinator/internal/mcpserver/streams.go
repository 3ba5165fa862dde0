package mcpserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hostplane/hostplane/coordinator/internal/streamcap"
	"github.com/hostplane/hostplane/pkg/api"
)

// Defaults of the GET stream limits (HTTPOptions.StreamsPerAccount,
// Streams, StreamIdle). A session has at most one GET stream (the SDK
// answers a second one 409), and a held stream costs the coordinator about
// five goroutines and a connection: 1,024 is some 5,000 goroutines, far below
// what a coordinator holds without strain, and an MCP client keeps one per
// session, so 16 sessions of one account stream at once.
//
// One client address may hold the streams of four accounts at their cap
// (DefaultStreamsPerIP), as the stats streams' --stats-streams-per-ip: several
// customers behind one NAT address are served, while one client with many
// accounts' keys is held to that many streams whatever keys it uses.
const (
	DefaultStreamsPerAccount = 16
	DefaultStreamsPerIP      = 4 * DefaultStreamsPerAccount
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
//   - an account holds at most perAccount streams at once, a client
//     address (an IPv6 /64, behind --trusted-proxies the client's) at most
//     perIP whatever the accounts (429 too_many_streams beyond), and this
//     coordinator at most total (503 too_many_streams), all with
//     Retry-After;
//   - a session that had a stream (or was refused one by these caps), once
//     no request of it is running (the stream closed, and no POST since),
//     is closed after idle unless a request of it comes first. A client that comes back later gets the
//     SDK's 404 and initializes again, as the MCP transport says a client
//     does. Sessions that never opened a stream keep the SDK's
//     SessionTimeout.
type streamLimits struct {
	total   int
	idle    time.Duration
	end     func(session string) // closes a session (the SDK's Close)
	streams *streamcap.Counter   // per account and per client address

	mu       sync.Mutex
	open     int
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

func newStreamLimits(perAccount, perIP, total int, idle time.Duration, end func(string)) *streamLimits {
	if perAccount <= 0 {
		perAccount = DefaultStreamsPerAccount
	}
	if perIP <= 0 {
		perIP = DefaultStreamsPerIP
	}
	if total <= 0 {
		total = DefaultStreams
	}
	if idle <= 0 {
		idle = DefaultStreamIdle
	}
	return &streamLimits{total: total, idle: idle, end: end, streams: streamcap.New(perAccount, perIP),
		sessions: map[string]*sessionUse{}}
}

// acquire counts one GET stream of account from the client address addr, or
// refuses it (the error, with Retry-After set on h). release undoes the
// count.
func (l *streamLimits) acquire(account, addr string, h http.Header) (release func(), e *api.Error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	unstream, refused := l.streams.Acquire(account, addr)
	switch {
	case refused == streamcap.Account:
		e = api.NewError(http.StatusTooManyRequests, "too_many_streams",
			fmt.Sprintf("this account already has %d MCP session streams (GET /mcp) open at this coordinator, the most it may hold at once; close one first", l.streams.PerAccount()))
	case refused == streamcap.Address:
		e = api.NewError(http.StatusTooManyRequests, "too_many_streams",
			fmt.Sprintf("%d MCP session streams (GET /mcp) are open from this client address at this coordinator already, the most one address may hold at once, whatever the account; close one first", l.streams.PerAddress()))
	case l.open >= l.total:
		unstream() // under l.mu: no other GET saw the count
		e = api.NewError(http.StatusServiceUnavailable, "too_many_streams",
			"this coordinator holds as many MCP session streams (GET /mcp) as it takes; retry shortly (tool calls are not affected)")
	}
	if e != nil {
		h.Set("Retry-After", strconv.Itoa(streamsRetryAfter))
		return nil, e
	}
	l.open++
	var once sync.Once
	return func() {
		once.Do(func() {
			unstream()
			l.mu.Lock()
			defer l.mu.Unlock()
			l.open--
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

// DefaultSessionsPerAccount is the default of HTTPOptions.SessionsPerAccount:
// four times the streams an account may hold (DefaultStreamsPerAccount), as a
// client may keep sessions it uses without a stream. A session that never
// opens a stream costs about two goroutines until the SDK's SessionTimeout;
// before this cap, an account could keep as many as its keys' rate limits let
// it open in that time (50 keys × 120 a minute × 30 minutes).
const DefaultSessionsPerAccount = 64

// sessionsRetryAfter is the retry_after of an initialize refused by the
// session cap, in seconds: a place frees when a request of a session ends.
const sessionsRetryAfter = 5

// codeTooManySessions is the JSON-RPC error code of an initialize refused by
// the session cap: in the range JSON-RPC 2.0 leaves to the server's own
// errors (its data names too_many_sessions).
const codeTooManySessions = -32000

// sessionCap bounds the MCP sessions one account holds at this coordinator
// at once (perAccount), from their initialize until they end (DELETE, the
// stream idle time of streamLimits, the SDK's SessionTimeout, a restart).
//
// An initialize past the cap ends the account's session used least recently
// of those with no request running, and goes on: its client, if it comes
// back, gets 404 session_not_found, from which the MCP transport says a
// client initializes again. That is what a client expects: the sessions
// left over are mostly those of clients that went without a DELETE (an
// editor restarted, a process killed), and refusing the new session would
// refuse the client that is here for the ones that are gone, until the SDK's
// 30 minutes. Only when every session of the account has a request running
// (a held GET stream, a call) is nothing ended: the initialize is refused, as
// a JSON-RPC error (the one shape every MCP client shows its user) naming
// the cap.
type sessionCap struct {
	perAccount int

	mu       sync.Mutex
	seq      uint64                             // use counter: a higher last is a later use
	accounts map[string]map[string]*liveSession // account → session id → session
	byID     map[string]*liveSession
}

// liveSession is one session counted against its account.
type liveSession struct {
	id, account string
	running     int    // requests of it running
	last        uint64 // sessionCap.seq at its last request's start or end
	end         func() // ends it (closes the SDK's session)
}

func newSessionCap(perAccount int) *sessionCap {
	if perAccount <= 0 {
		perAccount = DefaultSessionsPerAccount
	}
	return &sessionCap{perAccount: perAccount, accounts: map[string]map[string]*liveSession{}, byID: map[string]*liveSession{}}
}

// admit counts session id, being initialized, against account: added
// (false: it was counted already, a second initialize), and the end of the
// session it displaced, if any, for the caller to call once admit returned.
// A refusal is the JSON-RPC error to answer. The new session counts as
// running until initialized is called.
func (c *sessionCap) admit(account, id string, end func()) (added bool, displaced func(), refusal error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byID[id] != nil {
		return false, nil, nil
	}
	mine := c.accounts[account]
	if len(mine) >= c.perAccount {
		var lru *liveSession
		for _, s := range mine {
			if s.running == 0 && (lru == nil || s.last < lru.last) {
				lru = s
			}
		}
		if lru == nil {
			return false, nil, tooManySessions(c.perAccount)
		}
		c.removeLocked(lru)
		displaced = lru.end
	}
	if mine = c.accounts[account]; mine == nil {
		mine = map[string]*liveSession{}
		c.accounts[account] = mine
	}
	c.seq++
	s := &liveSession{id: id, account: account, running: 1, last: c.seq, end: end}
	mine[id] = s
	c.byID[id] = s
	return true, displaced, nil
}

// tooManySessions is the refusal of an initialize by the cap.
func tooManySessions(perAccount int) error {
	data, _ := json.Marshal(map[string]any{"code": "too_many_sessions", "status": http.StatusTooManyRequests, "retry_after": sessionsRetryAfter})
	return &jsonrpc.Error{Code: codeTooManySessions, Data: data, Message: fmt.Sprintf(
		"this account already holds %d MCP sessions at this coordinator, the most it may hold at once, and each has a request running; end one (DELETE /mcp with its Mcp-Session-Id) or retry in %d s",
		perAccount, sessionsRetryAfter)}
}

// initialized ends the initialize of session id: ok false (it failed) drops
// the session, which the SDK closes.
func (c *sessionCap) initialized(id string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.byID[id]
	if s == nil {
		return
	}
	if !ok {
		c.removeLocked(s)
		return
	}
	s.running--
	c.seq++
	s.last = c.seq
}

// begin notes a request of session id by account (a request that names a
// session of another account, or one not counted, is not followed) and
// returns what to call when it ends.
func (c *sessionCap) begin(id, account string) (done func()) {
	if id == "" {
		return func() {}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.byID[id]
	if s == nil || s.account != account {
		return func() {}
	}
	s.running++
	c.seq++
	s.last = c.seq
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		s.running--
		c.seq++
		s.last = c.seq
	}
}

// drop stops counting session id (it ended: DELETE, idle, SDK timeout).
func (c *sessionCap) drop(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.byID[id]; s != nil {
		c.removeLocked(s)
	}
}

// sessionCapBuilt, when set (tests, before any handler is built), is
// handed each handler's sessionCap.
var sessionCapBuilt func(*sessionCap)

// count is the sessions account holds (tests).
func (c *sessionCap) count(account string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.accounts[account])
}

func (c *sessionCap) removeLocked(s *liveSession) {
	delete(c.byID, s.id)
	if mine := c.accounts[s.account]; mine != nil && mine[s.id] == s {
		if delete(mine, s.id); len(mine) == 0 {
			delete(c.accounts, s.account)
		}
	}
}

// middleware counts each session the SDK initializes against the caller's
// account (admit: past the cap, the one used least recently is ended or the
// initialize refused), and stops counting it when it ends.
func (c *sessionCap) middleware(ends *sessionEnds, end func(ss *mcp.ServerSession)) mcp.Middleware {
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			ss, _ := req.GetSession().(*mcp.ServerSession)
			x := req.GetExtra()
			if method != "initialize" || ss == nil || ss.ID() == "" || x == nil || x.TokenInfo == nil {
				return next(ctx, method, req)
			}
			id := ss.ID()
			added, displaced, refusal := c.admit(x.TokenInfo.UserID, id, func() { end(ss) })
			if refusal != nil {
				return nil, refusal
			}
			if displaced != nil {
				displaced()
			}
			if !added {
				return next(ctx, method, req)
			}
			ends.onEnd(ss, func() { c.drop(id) })
			res, err := next(ctx, method, req)
			c.initialized(id, err == nil && ss.InitializeParams() != nil)
			return res, err
		}
	}
}
