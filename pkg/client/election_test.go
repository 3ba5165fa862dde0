package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/internal/socktest"
	"github.com/hostplane/hostplane/pkg/api"
)

// adminServer serves h on a unix socket and returns an admin client for it.
func adminServer(t *testing.T, h http.HandlerFunc) *Admin {
	t.Helper()
	return NewAdmin(unixServer(t, "admin.sock", h))
}

// unixServer serves h on a new unix socket named name, closed when the test
// ends, and returns the socket's path.
func unixServer(t *testing.T, name string, h http.Handler) string {
	t.Helper()
	return socktest.Serve(t, filepath.Join(t.TempDir(), name), h)
}

// refuse answers as a coordinator that knows no leader (admin.go forwardAdmin).
func refuse(w http.ResponseWriter, retryAfter bool) {
	if retryAfter {
		w.Header().Set("Retry-After", "1")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	raw, _ := json.Marshal(api.NewError(http.StatusServiceUnavailable, "not_leader", "this coordinator is not the leader and the leader is unknown; retry shortly"))
	_, _ = w.Write(raw)
}

// TestAdminSendsAgainWhileNoLeaderIsKnown: a call a coordinator refused for
// knowing no leader (503 not_leader with Retry-After, nothing executed) is
// sent again, the same body, until it is answered; one refused without
// Retry-After (no cluster secret: waiting does not help), another 503, a
// body read from an io.Reader, ElectionWait below 0 and a cancelled context
// are not.
func TestAdminSendsAgainWhileNoLeaderIsKnown(t *testing.T) {
	var n atomic.Int32
	var bodies []string
	a := adminServer(t, func(w http.ResponseWriter, r *http.Request) {
		var b strings.Builder
		buf := make([]byte, 512)
		for {
			k, err := r.Body.Read(buf)
			b.Write(buf[:k])
			if err != nil {
				break
			}
		}
		bodies = append(bodies, b.String())
		if n.Add(1) <= 2 {
			refuse(w, true)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"acc_1","email":"a@example.com"}`))
	})
	start := time.Now()
	got, err := a.CreateAccount(context.Background(), api.AccountCreateRequest{Email: "a@example.com"})
	if err != nil {
		t.Fatalf("create after two refusals: %v", err)
	}
	if got.ID != "acc_1" || n.Load() != 3 {
		t.Fatalf("got %+v after %d requests, want acc_1 after 3", got, n.Load())
	}
	if len(bodies) != 3 || bodies[0] == "" || bodies[1] != bodies[0] || bodies[2] != bodies[0] {
		t.Fatalf("bodies sent %q: want the same body three times", bodies)
	}
	if d := time.Since(start); d < 2*time.Second {
		t.Fatalf("sent again after %v in all: Retry-After: 1 twice asks for 2 s", d)
	}

	cases := []struct {
		name       string
		retryAfter bool
		code       int
		body       any
		wait       time.Duration
	}{
		{"no Retry-After", false, 503, nil, 0},
		{"another 503", true, 0, nil, 0},
		{"io.Reader body", true, 503, strings.NewReader(`{}`), 0},
		{"ElectionWait below 0", true, 503, nil, -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var calls atomic.Int32
			a := adminServer(t, func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				if c.code == 0 {
					w.Header().Set("Retry-After", "1")
					w.WriteHeader(http.StatusServiceUnavailable)
					raw, _ := json.Marshal(api.NewError(http.StatusServiceUnavailable, "no_leader", "the cluster is electing a leader; retry shortly"))
					_, _ = w.Write(raw)
					return
				}
				refuse(w, c.retryAfter)
			})
			a.ElectionWait = c.wait
			err := a.Do(context.Background(), "POST", "/admin/accounts", c.body, nil)
			if api.StatusOf(err) != 503 || calls.Load() != 1 {
				t.Fatalf("err %v after %d requests: want the 503 after one", err, calls.Load())
			}
		})
	}

	t.Run("context ends the wait", func(t *testing.T) {
		var calls atomic.Int32
		a := adminServer(t, func(w http.ResponseWriter, r *http.Request) { calls.Add(1); refuse(w, true) })
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := a.Do(ctx, "GET", "/admin/cluster/status", nil, nil)
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Code != "not_leader" || time.Since(start) > 900*time.Millisecond {
			t.Fatalf("err %v after %v: want the not_leader 503 once the context ends", err, time.Since(start))
		}
	})

	t.Run("gives up after ElectionWait", func(t *testing.T) {
		var calls atomic.Int32
		a := adminServer(t, func(w http.ResponseWriter, r *http.Request) { calls.Add(1); refuse(w, true) })
		a.ElectionWait = 1500 * time.Millisecond
		err := a.Do(context.Background(), "GET", "/admin/cluster/status", nil, nil)
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Code != "not_leader" || calls.Load() != 2 {
			t.Fatalf("err %v after %d requests: want the not_leader 503 after 2 (1.5 s allows one pause of 1 s)", err, calls.Load())
		}
	})
}

// TestAdminGivesUpAtOnceWithoutClusterSecret: the wire shape of a follower
// that knows the leader but has no cluster secret to forward with (httpapi
// forwardAdmin since da4ff56): 503 not_leader naming the leader, no
// Retry-After. Admin sends it once and returns that error as it came, the
// leader's address in what hostplanectl prints, without waiting
// (coordinator/internal/httpapi TestAdminOnFollowerWithoutSecretIsNotRetried
// checks the coordinator answers so).
func TestAdminGivesUpAtOnceWithoutClusterSecret(t *testing.T) {
	const msg = "this coordinator is not the leader and has no cluster secret to forward with; run the command on the leader (10.0.0.1:8443)"
	var calls atomic.Int32
	a := adminServer(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Request-Id", "req_1")
		w.WriteHeader(http.StatusServiceUnavailable)
		raw, _ := json.Marshal(api.NewError(http.StatusServiceUnavailable, "not_leader", msg))
		_, _ = w.Write(raw)
	})
	start := time.Now()
	_, err := a.CreateAccount(context.Background(), api.AccountCreateRequest{Email: "a@example.com"})
	took := time.Since(start)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.StatusCode != 503 || ae.Code != "not_leader" || ae.Message != msg {
		t.Fatalf("err %v: want the coordinator's 503 not_leader, its message as sent", err)
	}
	if !strings.Contains(err.Error(), "run the command on the leader (10.0.0.1:8443)") {
		t.Fatalf("err.Error() = %q: want the leader's address in it", err.Error())
	}
	if n := calls.Load(); n != 1 || took > 900*time.Millisecond {
		t.Fatalf("%d requests in %v: want one, at once (waiting does not help)", n, took)
	}
}

// TestAdminSendsAgainWhileTheClusterElects: an admin call answered 503
// no_leader or leader_unreachable with Retry-After (an election; a leader
// that stopped answering) is sent again as Retry-After says when that
// cannot apply a change twice: a GET, a write with an Idempotency-Key;
// Waiting hears of each wait. A write without a key is sent once.
func TestAdminSendsAgainWhileTheClusterElects(t *testing.T) {
	for _, c := range []struct {
		name, code string
		call       func(a *Admin) error
		refusals   int32
		want       int32 // requests
	}{
		{"GET no_leader", "no_leader", func(a *Admin) error { _, err := a.ClusterStatus(context.Background()); return err }, 2, 3},
		{"GET leader_unreachable", "leader_unreachable", func(a *Admin) error { _, err := a.Account(context.Background(), "acc_1"); return err }, 1, 2},
		{"keyed POST no_leader", "no_leader", func(a *Admin) error {
			_, err := a.CreditWalletOnce(context.Background(), "acc_1", api.WalletCreditRequest{AmountUsdCents: 5}, "pay-1")
			return err
		}, 1, 2},
		{"POST without a key", "no_leader", func(a *Admin) error {
			_, err := a.CreateAccount(context.Background(), api.AccountCreateRequest{Email: "a@example.com"})
			return err
		}, 1, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			var n atomic.Int32
			a := adminServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				if n.Add(1) <= c.refusals {
					w.Header().Set("Retry-After", "1")
					w.WriteHeader(http.StatusServiceUnavailable)
					raw, _ := json.Marshal(api.NewError(http.StatusServiceUnavailable, c.code, "leadership is changing; retry shortly"))
					_, _ = w.Write(raw)
					return
				}
				_, _ = w.Write([]byte(`{}`))
			})
			var waits []string
			a.Waiting = func(e *api.Error, pause time.Duration) { waits = append(waits, fmt.Sprint(e.Code, " ", pause)) }
			err := c.call(a)
			var ae *api.Error
			switch {
			case c.want == 1:
				if !errors.As(err, &ae) || ae.Code != c.code || n.Load() != 1 || len(waits) != 0 {
					t.Fatalf("err %v after %d requests, waits %q: want the 503 %s after one, no wait", err, n.Load(), waits, c.code)
				}
			case err != nil || n.Load() != c.want || len(waits) != int(c.want-1) || waits[0] != c.code+" 1s":
				t.Fatalf("err %v after %d requests, waits %q: want the answer after %d, a 1 s wait before each resend", err, n.Load(), waits, c.want)
			}
		})
	}
}
