package framework

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

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
	dir := t.TempDir()
	node := &CoordinatorProcess{ID: "c1", DataDir: dir, cmd: &exec.Cmd{}}
	c := &ProcessCluster{Nodes: []*CoordinatorProcess{node}, tb: t}
	ln, err := net.Listen("unix", node.AdminSocket())
	if err != nil {
		t.Fatal(err)
	}
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
	acc := api.Account{ID: "acc_1", Email: "a@example.com"}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
			if keyTries++; keyTries == 1 {
				leaderChange(w, "leader_unreachable")
				return
			}
			w.WriteHeader(http.StatusCreated)
			_ = json.NewEncoder(w).Encode(api.KeyCreated{Key: "hp_secret"})
		case r.Method == "POST" && r.URL.Path == "/admin/accounts/acc_1/wallet/credit":
			if credited++; credited == 1 {
				leaderChange(w, "no_leader")
				return
			}
			w.WriteHeader(http.StatusCreated)
			_ = json.NewEncoder(w).Encode(api.WalletTransaction{ID: "wtx_1"})
		default:
			http.NotFound(w, r)
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

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
