package httpapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/raftnode"
)

// removedView is a Raft member that knows no leader and whose latest
// configuration lists servers.
type removedView struct {
	raftnode.Cluster
	servers []raftnode.Server
}

func (removedView) IsLeader() bool                        { return false }
func (removedView) LeaderID() string                      { return "" }
func (v removedView) Servers() ([]raftnode.Server, error) { return v.servers, nil }

// TestAdminOnARemovedCoordinatorNamesIt: an admin command on a coordinator
// removed from the cluster (its configuration no longer lists it: a leader
// that removed itself) is the 503 not_leader without Retry-After saying it
// is no member (00b0abd), and names the coordinator: tests/audit
// TestOpsClusterRemoveKeepsQuorum's second `cluster remove c2` run on c2
// wants the failure to name c2, and under load c2 was the leader that
// removed itself (it then got "retry shortly" for 14 s, before 00b0abd).
func TestAdminOnARemovedCoordinatorNamesIt(t *testing.T) {
	w := newWHAPI(t) // NodeID n1
	w.a.raft = removedView{w.a.raft, []raftnode.Server{{ID: "n2", Address: "127.0.0.1:2", Suffrage: "Voter"}, {ID: "n3", Address: "127.0.0.1:3", Suffrage: "Voter"}}}
	resp, e := postAdmin(t, adminURL(t, w.a)+"/admin/cluster/remove", `{"id":"n1"}`)
	if resp.StatusCode != http.StatusServiceUnavailable || e.Code != "not_leader" || !strings.Contains(e.Message, "(n1) is no member of the cluster") || resp.Header.Get("Retry-After") != "" {
		t.Errorf("admin command on a removed coordinator: %s %q %q, Retry-After %q; want 503 not_leader saying n1 is no member, no Retry-After",
			resp.Status, e.Code, e.Message, resp.Header.Get("Retry-After"))
	}
}

// TestRemovingANonMemberSaysItMayBeRemovedAlready: `cluster remove` of an id
// the configuration does not list is the 404 naming it, and says it may
// have been removed already: a removal the leader committed but answered
// 503 no_leader (it lost the leadership as it did), run again as the README
// says, meets this answer.
func TestRemovingANonMemberSaysItMayBeRemovedAlready(t *testing.T) {
	w := newWHAPI(t)
	resp, e := postAdmin(t, adminURL(t, w.a)+"/admin/cluster/remove", `{"id":"c9"}`)
	if resp.StatusCode != http.StatusNotFound || e.Code != "not_found" || !strings.Contains(e.Message, `"c9" is not a member`) || !strings.Contains(e.Message, "already removed?") {
		t.Errorf("remove of a non-member: %s %q %q; want 404 not_found naming c9, saying it may be removed already", resp.Status, e.Code, e.Message)
	}
}
