package httpapi

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/raftnode"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
)

// followerView is a Raft member that says it is not the leader, as a
// follower would; the leader it names (LeaderID) is the wrapped one's, or
// none while noLeader is set (an election).
type followerView struct {
	raftnode.Cluster
	noLeader *atomic.Bool
}

func (followerView) IsLeader() bool { return false }

func (f followerView) LeaderID() string {
	if f.noLeader.Load() {
		return ""
	}
	return f.Cluster.LeaderID()
}

// TestAdminOnFollowerWithoutSecretIsNotRetried: a coordinator that is not the
// leader, knows the leader's address but has no cluster secret (nor cluster
// TLS) to forward with answers an admin write 503 not_leader naming the leader
// and without Retry-After (da4ff56: waiting does not help), and pkg/client's
// Admin, as hostplanectl calls it, gives up at once with that error after one
// request instead of sending it again for ElectionWait (15 s). Nothing is
// executed. With the leader unknown the same refusal carries Retry-After: 1
// (an election: the client sends it again).
func TestAdminOnFollowerWithoutSecretIsNotRetried(t *testing.T) {
	w := newWHAPI(t) // Config without ClusterSecret or ClusterTLS
	if w.a.clusterAuth() {
		t.Fatal("the harness has cluster auth; this test needs a coordinator without")
	}
	w.apply(fsm.CmdNodeRegister, fsm.NodeRegister{ID: w.a.raft.LeaderID(), APIAddr: "10.0.0.1:8443"})
	var noLeader atomic.Bool
	w.a.raft = followerView{w.a.raft, &noLeader}

	sock := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var requests atomic.Int32
	srv := DefaultTimeouts().Server(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.a.AdminHandler().ServeHTTP(rw, r)
	}))
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	// The wire: 503 not_leader, the leader named, no Retry-After.
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := c.Post("http://admin/admin/accounts", "application/json", strings.NewReader(`{"email":"a@example.com"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "" {
		t.Fatalf("admin write on a follower without a secret: %s, Retry-After %q; want 503 without Retry-After", resp.Status, resp.Header.Get("Retry-After"))
	}

	// The client: one request, at once, the coordinator's error.
	requests.Store(0)
	a := client.NewAdmin(sock)
	start := time.Now()
	_, err = a.CreateAccount(context.Background(), api.AccountCreateRequest{Email: "a@example.com"})
	took := time.Since(start)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusServiceUnavailable || ae.Code != "not_leader" ||
		!strings.Contains(ae.Message, "no cluster secret") || !strings.Contains(ae.Message, "10.0.0.1:8443") {
		t.Fatalf("CreateAccount: %v; want the 503 not_leader naming the leader's address", err)
	}
	if n := requests.Load(); n != 1 || took > 900*time.Millisecond {
		t.Fatalf("CreateAccount gave up after %d requests and %v; want one request, at once", n, took)
	}

	// The leader unknown (an election): Retry-After: 1, and the client
	// sends it again until ElectionWait (1.5 s: one pause) has passed.
	noLeader.Store(true)
	requests.Store(0)
	a.ElectionWait = 1500 * time.Millisecond
	_, err = a.CreateAccount(context.Background(), api.AccountCreateRequest{Email: "a@example.com"})
	if !errors.As(err, &ae) || ae.Code != "not_leader" || !strings.Contains(ae.Message, "leader is unknown") || requests.Load() != 2 {
		t.Fatalf("CreateAccount with no leader known: %v after %d requests; want the not_leader 503 after 2", err, requests.Load())
	}

	var id string
	if err := w.a.state.Read(func(r store.ReadTx) error { id = r.AccountIDByEmail("a@example.com"); return nil }); err != nil || id != "" {
		t.Fatalf("account after the refusals: %q (%v), want none", id, err)
	}
}
