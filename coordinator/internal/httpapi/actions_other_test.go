package httpapi

import (
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestListActionsOtherAccountsIDs: on GET /v1/actions, an id that is not
// the caller's is a 404, as on every route (SPEC: "404 (absent or another
// account's)"): resource_id of another account's server or hosting account,
// or of none, and a cursor that is another account's action (or none of the
// caller's). The answer is the same for another account's id and an unknown
// one, so it says nothing of the other account. The caller's own server,
// terminated or not, and its own cursor are listed as before.
func TestListActionsOtherAccountsIDs(t *testing.T) {
	s := newSrvAPI(t)
	s.apply(fsm.CmdClusterLevel, fsm.ClusterLevel{Level: 2})
	accA, keyA := s.account(api.ScopeServersRead, api.ScopeServersWrite, api.ScopeHostingRead)
	accB, keyB := s.account(api.ScopeServersRead, api.ScopeServersWrite, api.ScopeHostingRead)
	srvA := s.server(accA)
	time.Sleep(2 * time.Millisecond)
	srvB := s.server(accB)
	hstB := s.hostingAccount(accB, "bob", "bob.hosting.test")
	time.Sleep(2 * time.Millisecond)
	actB := actionID(t, s.call(keyB, "POST", "/v1/servers/"+srvB+"/power/stop", ""))
	s.finish(actB, true)
	time.Sleep(2 * time.Millisecond)
	actA := actionID(t, s.call(keyA, "POST", "/v1/servers/"+srvA+"/power/stop", ""))
	s.finish(actA, true)

	for _, q := range []string{
		"resource_id=" + srvB,
		"resource_id=" + hstB,
		"resource_id=" + ids.New("srv", time.Now()),
		"resource_id=" + ids.New("hst", time.Now()),
		"cursor=" + actB,
		"cursor=" + ids.New("act", time.Now()),
		"command=server.stop&resource_id=" + srvB,
	} {
		r := s.call(keyA, "GET", "/v1/actions?"+q, "")
		if r.status != 404 || strings.Contains(string(r.body), accB) {
			t.Errorf("A's ?%s: %d %s, want a 404", q, r.status, r.body)
		}
	}
	// The caller's own ids: listed.
	if got, next := actionIDs(t, s.call(keyA, "GET", "/v1/actions?resource_id="+srvA, "")); len(got) != 2 || got[0] != actA || next != "" {
		t.Errorf("A's own server: %v", got)
	}
	if got, _ := actionIDs(t, s.call(keyA, "GET", "/v1/actions?cursor="+actA, "")); len(got) != 1 {
		t.Errorf("A's own cursor: %v", got)
	}
	// B's view of its own is unchanged.
	if got, _ := actionIDs(t, s.call(keyB, "GET", "/v1/actions?resource_id="+srvB, "")); len(got) != 2 || got[0] != actB {
		t.Errorf("B's own server: %v", got)
	}
}
