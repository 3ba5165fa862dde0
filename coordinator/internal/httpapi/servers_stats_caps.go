package httpapi

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"

	"github.com/hostplane/hostplane/coordinator/internal/streamcap"
)

// Defaults of the stats caps (Config.StatsStreamsPerAccount,
// Config.StatsStreamsPerIP, Config.StatsCallsPerNode). The agent takes at
// most 256 concurrent streams on its session (agent/internal/session
// maxIncomingStreams), actions included: stats calls may hold at most half
// of them. One client address may hold the streams of four accounts at their
// cap: several customers behind one NAT address are served, while one
// client with many accounts' keys is held to that many streams whatever
// keys it uses.
const (
	DefaultStatsStreamsPerAccount = 8
	DefaultStatsStreamsPerIP      = 32
	DefaultStatsCallsPerNode      = 128
)

// streamsRetryAfter is the Retry-After of a stream refused by the account's
// cap, in seconds: a stream frees a place only when a client closes one.
const streamsRetryAfter = 5

// statsCaps counts the stats calls this coordinator has open on agent
// sessions (each holds one stream of its node's session while it runs):
// ?stream=1 streams per account and per client address (an IPv6 /64, as
// the address rate limit counts them), and calls of either kind per node.
// Only the leader holds agent sessions, and followers forward stats requests
// to it with the client's address (clientIP), so the leader's counts are the
// cluster's; a call counts from acquire until the release acquire returned
// is called, whatever ends it.
type statsCaps struct {
	perNode int
	streams *streamcap.Counter // ?stream=1 streams per account and client address (ipBudgetKey)
	mu      sync.Mutex
	nodes   map[string]int // node id → open calls
}

func newStatsCaps(perAccount, perIP, perNode int) *statsCaps {
	return &statsCaps{perNode: perNode, streams: streamcap.New(perAccount, perIP), nodes: map[string]int{}}
}

// acquire counts one call to node for account from the client address ip (a
// stream when stream), or refuses it: the account's streams or the
// address's are at their cap (429 too_many_streams) or the node's calls are
// (503 node_busy). release undoes the count; calling it again does nothing.
func (c *statsCaps) acquire(account, ip, node string, stream bool) (release func(), err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	unstream := func() {}
	if stream {
		var refused streamcap.Refusal
		switch unstream, refused = c.streams.Acquire(account, ip); refused {
		case streamcap.Account:
			return nil, &httpError{status: http.StatusTooManyRequests, code: "too_many_streams",
				msg: fmt.Sprintf("this account already has %d stats streams open, the most it may hold at once; close one first", c.streams.PerAccount())}
		case streamcap.Address:
			return nil, &httpError{status: http.StatusTooManyRequests, code: "too_many_streams",
				msg: fmt.Sprintf("%d stats streams are open from this client address already, the most one address may hold at once, whatever the account; close one first", c.streams.PerAddress())}
		}
	}
	if c.nodes[node] >= c.perNode {
		unstream() // under c.mu: no other stats call saw the count
		return nil, &httpError{status: http.StatusServiceUnavailable, code: "node_busy",
			msg: "the server's host is answering as many stats requests as it takes right now; retry shortly"}
	}
	c.nodes[node]++
	var once sync.Once
	return func() {
		once.Do(func() {
			unstream()
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.nodes[node]--; c.nodes[node] <= 0 {
				delete(c.nodes, node)
			}
		})
	}, nil
}

// open returns the account's open streams and the node's open calls.
func (c *statsCaps) open(account, node string) (streams, calls int) {
	streams, _ = c.streams.Open(account, "")
	c.mu.Lock()
	defer c.mu.Unlock()
	return streams, c.nodes[node]
}

// acquireStats counts a stats call of rq's caller to node (see statsCaps);
// a refusal by the account's or the address's cap carries Retry-After.
func (a *API) acquireStats(rq *request, node string, stream bool) (func(), error) {
	release, err := a.statsCaps.acquire(rq.caller.accountID, ipBudgetKey(a.clientIP(rq.Request)), node, stream)
	if he, ok := err.(*httpError); ok && he.status == http.StatusTooManyRequests {
		rq.w.Header().Set("Retry-After", strconv.Itoa(streamsRetryAfter))
	}
	return release, err
}

// StreamAddress is the client address r's streams count against (the
// per-address caps: clientIP behind --trusted-proxies, an IPv6 /64), the
// one the stats streams count, for /mcp's session streams.
func (a *API) StreamAddress(r *http.Request) string {
	return ipBudgetKey(a.clientIP(r))
}
