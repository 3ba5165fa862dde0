package client

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// DefaultElectionWait is the default of Resend.Wait (Client.LeaderWait,
// Admin.ElectionWait): a few elections here.
const DefaultElectionWait = 15 * time.Second

// Resend is the one policy by which pkg/client sends a request again that a
// coordinator answered 503 while the cluster elects a leader. Client.Do and
// Admin.DoWith use it; a caller that sends requests another way (a test's
// rig) can use it through Do.
//
// What is sent again, a 503 with Retry-After only (the coordinator sends one
// on each of these when waiting helps; without one, as on a not_leader from
// a coordinator with no cluster secret to forward with, or no member, it
// does not, and the answer is returned at once):
//   - 503 no_leader (the coordinator knows no leader, or lost the leadership
//     while it served the request: an election) and 503 leader_unreachable
//     (a follower forwarded the request and the leader did not answer): the
//     request may have been applied, so only one that sending again cannot
//     apply twice (Resendable: a GET or HEAD, or a write with an
//     Idempotency-Key, whose body is not an io.Reader).
//   - 503 not_leader (an admin request a follower that knows no leader
//     refused before executing or forwarding anything): any request whose
//     body is not an io.Reader.
//
// The pause before the n-th resend is 250 ms doubling to 2 s, and at least
// what the answer's Retry-After asks (at most 5 s). No resend is made at or
// after Wait from the first send, or the context's deadline, nor once the
// context ends; the last answer is then returned.
type Resend struct {
	// Wait bounds the resends from the first send: 0 means
	// DefaultElectionWait, below 0 never send again.
	Wait time.Duration
	// Waiting, if set, is called before each pause with the answer that
	// caused it and the pause (hostplanectl says it is waiting; a benchmark
	// counts resends).
	Waiting func(e *api.Error, pause time.Duration)
	// Codes are more 503 codes sent again as no_leader is, with Retry-After
	// (a test's rig: a new leader's servers_unavailable); nil for none.
	Codes []string
	// Resendable, if set, is used in place of the package's Resendable (a
	// test's rig also sends again a PUT without a key, which sets what its
	// body says).
	Resendable func(method string, body any, hdr http.Header) bool
}

// Do calls send, and again as the policy allows while its answer is one of
// the 503s above; it returns send's last error. send returns the answer's
// headers (nil when no answer came) and an *api.Error for a non-2xx answer.
// method, body and hdr are the request's, for the rule on what may be sent
// again; send must send the same each time (a body given as an io.Reader is
// never sent again, since a second read of it would send nothing).
func (p Resend) Do(ctx context.Context, method string, body any, hdr http.Header, send func() (http.Header, error)) error {
	wait := p.Wait
	if wait == 0 {
		wait = DefaultElectionWait
	}
	deadline := time.Now().Add(wait)
	for n := 0; ; n++ {
		h, err := send()
		var ae *api.Error
		if wait < 0 || !errors.As(err, &ae) || !p.resends(ae, h, method, body, hdr) {
			return err
		}
		pause := min(250*time.Millisecond<<min(n, 3), 2*time.Second)
		if ra, ok := retryAfter(h); ok {
			pause = max(pause, ra)
		}
		next := time.Now().Add(pause)
		if d, ok := ctx.Deadline(); !next.Before(deadline) || ok && !next.Before(d) {
			return err
		}
		if p.Waiting != nil {
			p.Waiting(ae, pause)
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// resends says whether the answer e (with headers h) to the request is one
// the policy sends again.
func (p Resend) resends(e *api.Error, h http.Header, method string, body any, hdr http.Header) bool {
	if _, ok := retryAfter(h); !ok || e.StatusCode != http.StatusServiceUnavailable {
		return false
	}
	if e.Code == "not_leader" {
		_, reader := body.(io.Reader)
		return !reader
	}
	if e.Code != "no_leader" && e.Code != "leader_unreachable" && !slices.Contains(p.Codes, e.Code) {
		return false
	}
	if p.Resendable != nil {
		return p.Resendable(method, body, hdr)
	}
	return Resendable(method, body, hdr)
}

// Resendable says whether a request may be sent again after an answer that
// leaves unknown whether it was applied: a read, or a write with an
// Idempotency-Key (the coordinator answers a resent one with the first
// answer, or applies it once), whose body (if any) can be sent again (not
// an io.Reader).
func Resendable(method string, body any, hdr http.Header) bool {
	if _, ok := body.(io.Reader); ok {
		return false
	}
	return method == http.MethodGet || method == http.MethodHead || hdr.Get("Idempotency-Key") != ""
}

// retryAfter is the pause h's Retry-After asks for in seconds, at most 5 s;
// false without one.
func retryAfter(h http.Header) (time.Duration, bool) {
	secs, err := strconv.Atoi(h.Get("Retry-After"))
	if err != nil || secs < 0 {
		return 0, false
	}
	return time.Duration(min(secs, 5)) * time.Second, true
}
