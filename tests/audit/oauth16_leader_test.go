package audit

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/hostplane/hostplane/tests/framework"
)

// TestOAuthAppOutlivesALeaderChange: an app connected (through a follower,
// so the leader issued its tokens) keeps working after the leadership moves
// to another coordinator: its access token is a 200 on every coordinator and
// its refresh token still rotates. The cluster has one --public-url, as the
// README asks of a cluster of several (oauthAppRig): the token's audience is
// that URL, not the address of whichever coordinator led when it was issued.
// Without it, every coordinator forwards /v1 to the new leader, which names
// its own address as the resource and refuses every token issued before the
// change ("this access token is for http://<old leader>, not this
// resource"): what TestOAuthAppGetsNoMoreThanItsKey met when a leader
// stepped down during its wait.
func TestOAuthAppOutlivesALeaderChange(t *testing.T) {
	// Mostly waits (see "Parallel tests" in audit_test.go).
	t.Parallel()
	r, o, client, connect := oauthAppRig(t)
	at, rt := connect(r.keyA)
	account := func(i int) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", r.c.URL(i)+"/v1/account", nil)
		req.Header.Set("Authorization", "Bearer "+at)
		resp, b := framework.Fetch(t, nil, req)
		return resp.StatusCode, string(b)
	}
	for i := range r.c.Len() {
		if st, body := account(i); st != 200 {
			t.Fatalf("coordinator %d: the app's token before the leader change: %d %.300s", i, st, body)
		}
	}

	old := r.c.WaitLeader(20 * time.Second)
	if _, err := r.c.Admin(old).ClusterTransferLeadership(r.ctx, ""); err != nil {
		t.Fatalf("transfer the leadership from coordinator %d: %v", old, err)
	}
	now := -1
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if i, err := r.c.LeaderIndex(time.Second); err == nil && i != old {
			now = i
			break
		}
	}
	if now < 0 {
		t.Fatalf("no coordinator but %d leads 20 s after the transfer", old)
	}

	// A 503 while the cluster settles is an election's answer; a 401 is the
	// token refused.
	for i := range r.c.Len() {
		st, body := account(i)
		for end := time.Now().Add(10 * time.Second); st == 503 && time.Now().Before(end); st, body = account(i) {
			time.Sleep(200 * time.Millisecond)
		}
		if st != 200 {
			t.Errorf("coordinator %d: the app's token after the leadership moved from coordinator %d to %d: %d %.300s; want 200", i, old, now, st, body)
		}
	}
	if status, out := o.token(url.Values{"grant_type": {"refresh_token"}, "client_id": {client}, "refresh_token": {rt}}); status != 200 {
		t.Errorf("refresh after the leader change: %d %v", status, out)
	}
}
