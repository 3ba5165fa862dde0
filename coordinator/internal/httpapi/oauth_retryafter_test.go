package httpapi

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/raftnode"
)

// notLeaderApply answers every OAuth client registration raftnode.ErrNotLeader
// (the leadership lost during the proposal).
type notLeaderApply struct{ *faultyApply }

func (n notLeaderApply) Apply(ctx context.Context, env *fsm.Envelope) (*fsm.Result, error) {
	if env.Type == fsm.CmdOAuthClientRegister {
		return nil, raftnode.ErrNotLeader
	}
	return n.faultyApply.Apply(ctx, env)
}

// An OAuth 503 from the handler (leadership lost during its
// proposal) carries Retry-After, as /v1's 503s do.
func TestOAuth503FromTheHandlerHasRetryAfter(t *testing.T) {
	w, f := usageAPI(t, fsm.MaxLevel)
	w.a.raft = notLeaderApply{f}
	resp, err := http.Post(w.srv.URL+"/oauth/register", "application/json",
		strings.NewReader(`{"client_name":"retry","redirect_uris":["http://127.0.0.1:9/cb"],"token_endpoint_auth_method":"none"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("POST /oauth/register with the leadership lost: %d Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}
