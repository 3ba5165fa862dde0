package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/ratelimit"
)

// A key's rate-limit window is counted on the leader (ratelimit package doc).
// A follower serving a stale read spends tokens it leased from that window:
// it asks the leader with POST leasePath over the coordinators' own channel
// (mutual TLS, else the cluster secret; requireClusterToken refuses anyone
// else), the leader debits what it grants (Limiter.Lease), and the follower
// spends the tokens without asking again (ratelimit.Leases).
const (
	leasePath = "/internal/ratelimit/lease"
	// maxLeaseBody bounds a lease request's and answer's body.
	maxLeaseBody = 1 << 10
	// maxLeaseKey bounds the key id a lease is asked for (a key or grant id).
	maxLeaseKey = 128
	// maxLeaseLimit bounds the limit a lease is asked for.
	maxLeaseLimit = 1_000_000_000
)

// leaseRequest asks the leader for Want tokens of Key's window at Limit a
// minute (Want 0: the window's state only).
type leaseRequest struct {
	Key   string `json:"key"`
	Limit int    `json:"limit"`
	Want  int    `json:"want"`
}

// leaseAnswer is the leader's ratelimit.Grant.
type leaseAnswer struct {
	Granted   int   `json:"granted"`
	Remaining int   `json:"remaining"`
	ResetMS   int64 `json:"reset_ms"` // the window's end, Unix milliseconds
	TTLMS     int64 `json:"ttl_ms"`   // the window's end less the leader's now
}

// parseLeaseRequest decodes and checks a lease request body.
func parseLeaseRequest(body []byte) (leaseRequest, error) {
	var q leaseRequest
	if err := decodeStrict(body, &q); err != nil {
		return q, err
	}
	switch {
	case q.Key == "" || len(q.Key) > maxLeaseKey:
		return q, badRequest("key must be 1 to %d bytes", maxLeaseKey)
	case q.Limit < 1 || q.Limit > maxLeaseLimit:
		return q, badRequest("limit must be 1 to %d", maxLeaseLimit)
	case q.Want < 0 || q.Want > q.Limit:
		return q, badRequest("want must be 0 to limit")
	}
	return q, nil
}

// parseLeaseAnswer decodes and checks the leader's answer to a request for
// want tokens of a window at limit.
func parseLeaseAnswer(body []byte, limit, want int) (ratelimit.Grant, error) {
	var a leaseAnswer
	if err := decodeStrict(body, &a); err != nil {
		return ratelimit.Grant{}, err
	}
	if a.Granted < 0 || a.Granted > want || a.Remaining < 0 || a.Remaining > limit ||
		a.TTLMS < 0 || a.TTLMS > ratelimit.Window.Milliseconds() || a.ResetMS < 0 || a.ResetMS > 1<<53 {
		return ratelimit.Grant{}, badRequest("lease answer out of range: %+v", a)
	}
	return ratelimit.Grant{Granted: a.Granted, Remaining: a.Remaining, Reset: time.UnixMilli(a.ResetMS), TTL: time.Duration(a.TTLMS) * time.Millisecond}, nil
}

// serveLease is the leader's end of a lease: it debits the key's window by
// what it grants.
func (a *API) serveLease(w http.ResponseWriter, r *http.Request) {
	q, ok := leaderRequest(a, w, r, maxLeaseBody, "lease request", "invalid_lease", parseLeaseRequest)
	if !ok {
		return
	}
	g := a.limiter.Lease(q.Key, q.Limit, q.Want, a.voters())
	writeJSON(w, http.StatusOK, leaseAnswer{Granted: g.Granted, Remaining: g.Remaining, ResetMS: g.Reset.UnixMilli(), TTLMS: g.TTL.Milliseconds()})
}

// fetchLeaseLogged is fetchLease, logging a failure: the follower's stale
// reads then use its share of each key's limit for a while (at most one such
// failure per ratelimit.Leases Backoff).
func (a *API) fetchLeaseLogged(ctx context.Context, key string, limit, want int) (ratelimit.Grant, error) {
	g, err := a.fetchLease(ctx, key, limit, want)
	if err != nil && !errors.Is(err, ratelimit.ErrNoLeader) {
		a.log.Warn("rate-limit lease from the leader failed; stale reads use this coordinator's share of each key's limit for a while", "err", err)
	}
	return g, err
}

// fetchLease is a follower's ratelimit.Fetch: it asks the leader's serveLease.
func (a *API) fetchLease(ctx context.Context, key string, limit, want int) (ratelimit.Grant, error) {
	if !a.clusterAuth() {
		return ratelimit.Grant{}, ratelimit.ErrNoLeader // the leader could not tell a follower from a client
	}
	addr := a.LeaderAPIAddr()
	if addr == "" || a.raft.IsLeader() {
		return ratelimit.Grant{}, ratelimit.ErrNoLeader
	}
	resp, err := a.postToLeader(ctx, addr, leasePath, leaseRequest{Key: key, Limit: limit, Want: want})
	if err != nil {
		return ratelimit.Grant{}, err
	}
	defer resp.Body.Close()
	ans, err := io.ReadAll(io.LimitReader(resp.Body, maxLeaseBody+1))
	if err != nil {
		return ratelimit.Grant{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return ratelimit.Grant{}, fmt.Errorf("lease from the leader at %s: %s", addr, resp.Status)
	}
	if len(ans) > maxLeaseBody {
		return ratelimit.Grant{}, errors.New("lease answer too large")
	}
	return parseLeaseAnswer(ans, limit, want)
}

// voters is the number of voters in the Raft configuration (at least 1), as
// read at most votersTTL ago: the coordinators a key's budget is shared by.
func (a *API) voters() int {
	now := time.Now()
	if c := a.votersCache.Load(); c != nil && now.Sub(c.at) < votersTTL {
		return c.n
	}
	n := 0
	servers, err := a.raft.Servers()
	for _, s := range servers {
		if s.Suffrage == "Voter" {
			n++
		}
	}
	if err != nil || n == 0 {
		if c := a.votersCache.Load(); c != nil {
			return c.n
		}
		return 1
	}
	a.votersCache.Store(&votersCount{n: n, at: now})
	return n
}

const votersTTL = 10 * time.Second

type votersCount struct {
	n  int
	at time.Time
}
