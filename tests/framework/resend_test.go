package framework

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/internal/socktest"
	"github.com/hostplane/hostplane/pkg/api"
)

// A cluster's setup writes meet a leader change (a 503 the README says to
// send again after, which may or may not have been made): NewAccount reads
// the account by its email before creating it again, and sends the key again
// only when the account has none; Credit sends its credit again with the same
// Idempotency-Key. Before, the first such 503 failed the rig (tests/audit's
// "503 no_leader" at a rig's start under load). A fake admin socket answers
// the first create of each with the 503 (the account made, the key not).
func TestSetupWritesAfterALeaderChange(t *testing.T) {
	var (
		mu       sync.Mutex
		seen     []string // method path [Idempotency-Key]
		made     bool     // the account
		keyTries int
		credited int
	)
	leaderChange := func(w http.ResponseWriter, code string) {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(api.NewError(http.StatusServiceUnavailable, code, "leadership is changing; retry shortly"))
	}
	// created answers the n-th create of a kind: the first a leadership
	// change's code, the next v.
	created := func(w http.ResponseWriter, n *int, code string, v any) {
		if *n++; *n == 1 {
			leaderChange(w, code)
			return
		}
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(v)
	}
	acc := api.Account{ID: "acc_1", Email: "a@example.com"}
	c := fakeAdmin(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, strings.TrimSpace(r.Method+" "+r.URL.Path+" "+r.Header.Get("Idempotency-Key")))
		switch {
		case r.Method == "POST" && r.URL.Path == "/admin/accounts":
			if made {
				w.WriteHeader(http.StatusConflict)
				_ = json.NewEncoder(w).Encode(api.NewError(http.StatusConflict, "conflict", "email taken"))
				return
			}
			made = true
			leaderChange(w, "no_leader")
		case r.Method == "GET" && r.URL.Path == "/admin/accounts/a@example.com":
			_ = json.NewEncoder(w).Encode(acc)
		case r.Method == "GET" && r.URL.Path == "/admin/accounts/acc_1/keys":
			_ = json.NewEncoder(w).Encode([]api.KeyInfo{})
		case r.Method == "POST" && r.URL.Path == "/admin/accounts/acc_1/keys":
			created(w, &keyTries, "leader_unreachable", api.KeyCreated{Key: "hp_secret"})
		case r.Method == "POST" && r.URL.Path == "/admin/accounts/acc_1/wallet/credit":
			created(w, &credited, "no_leader", api.WalletTransaction{ID: "wtx_1"})
		default:
			http.NotFound(w, r)
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got, key, err := c.NewAccount(ctx, "a@example.com")
	if err != nil || got.ID != "acc_1" || key != "hp_secret" {
		t.Fatalf("NewAccount: %+v %q %v; want acc_1 and its key", got, key, err)
	}
	c.Credit(ctx, "acc_1", 500)

	mu.Lock()
	defer mu.Unlock()
	want := []string{
		"POST /admin/accounts", "GET /admin/accounts/a@example.com", // read, not created again
		"POST /admin/accounts/acc_1/keys", "GET /admin/accounts/acc_1/keys", "POST /admin/accounts/acc_1/keys",
	}
	if len(seen) != len(want)+2 || strings.Join(seen[:len(want)], "\n") != strings.Join(want, "\n") {
		t.Fatalf("requests:\n%s\nwant:\n%s\nthen two credits", strings.Join(seen, "\n"), strings.Join(want, "\n"))
	}
	first, second := seen[len(want)], seen[len(want)+1]
	if !strings.HasPrefix(first, "POST /admin/accounts/acc_1/wallet/credit ") || first != second {
		t.Fatalf("credit sent as %q, then %q; want the same Idempotency-Key twice", first, second)
	}
}

// A leadership 503 without Retry-After is one waiting does not help (a
// not_leader from a coordinator that is no member of a cluster, or has no
// secret to forward with): Resend, as pkg/client's policy says, returns it
// at once. Before, the framework's own loop sent it again every second until
// the test's context ended.
func TestResendNotWithoutRetryAfter(t *testing.T) {
	var sends atomic.Int32
	c := fakeAdmin(t, func(w http.ResponseWriter, r *http.Request) {
		sends.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(api.NewError(http.StatusServiceUnavailable, "not_leader", "this coordinator is not a member of a cluster"))
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := Resend(ctx, func(ctx context.Context, _ bool) error {
		_, err := c.Nodes[0].Admin().CreateJoinToken(ctx, api.JoinTokenCreateRequest{TTLSeconds: 600})
		return err
	})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != "not_leader" || sends.Load() != 1 {
		t.Fatalf("Resend: %v after %d sends; want the 503 not_leader after one", err, sends.Load())
	}
}

// fakeAdmin is a one-node cluster whose admin socket h answers.
func fakeAdmin(t *testing.T, h http.HandlerFunc) *ProcessCluster {
	node := &CoordinatorProcess{ID: "c1", DataDir: t.TempDir(), cmd: &exec.Cmd{}}
	socktest.Serve(t, node.AdminSocket(), h)
	return &ProcessCluster{Nodes: []*CoordinatorProcess{node}, tb: t}
}

// ResendInFlight sends again while the answer is a 409
// idempotency_key_in_flight, and returns any other answer at once.
func TestResendInFlight(t *testing.T) {
	inFlight := api.NewError(http.StatusConflict, "idempotency_key_in_flight", "a request with this Idempotency-Key is still being processed")
	for _, tc := range []struct {
		name    string
		answers []error // in turn; the last repeats
		sends   int
	}{
		{"in flight twice, then done", []error{inFlight, inFlight, nil}, 3},
		{"another 409", []error{api.NewError(http.StatusConflict, "conflict", "taken"), nil}, 1},
		{"done at once", []error{nil}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var again []bool
			err := ResendInFlight(time.Minute, func(a bool) error {
				again = append(again, a)
				return tc.answers[min(len(again), len(tc.answers))-1]
			})
			if len(again) != tc.sends || again[0] || len(again) > 1 && !again[1] || err != tc.answers[tc.sends-1] {
				t.Fatalf("sends (again) %v, err %v; want %d sends, the first not again, and answer %d", again, err, tc.sends, tc.sends)
			}
		})
	}
}
