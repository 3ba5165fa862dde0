package httpapi

import (
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
)

// TestSnapshotCreatedAtAgrees: a snapshot's created_at is the same in the
// 202 of POST /v1/servers/{id}/snapshots, in the list once the node has
// taken it, and it is the created_at of the snapshot.create action: the
// moment the snapshot was requested (and its id and name reserved). The
// node takes it when the action runs, by the action's finished_at at the
// latest. Below semantics level 2 the list keeps the time the result was
// recorded, as the releases before (the replicas of a rolling upgrade apply
// the result alike).
func TestSnapshotCreatedAtAgrees(t *testing.T) {
	s := newSrvAPI(t)
	acc, key := s.account(allServerScopes...)
	s.apply(fsm.CmdClusterLevel, fsm.ClusterLevel{Level: 2})
	id := s.server(acc)
	base := "/v1/servers/" + id

	r := s.call(key, "POST", base+"/snapshots", `{"name":"before upgrade"}`)
	if r.status != 202 {
		t.Fatalf("snapshot create: %d %s", r.status, r.body)
	}
	snap := r.m["snapshot"].(map[string]any)
	act := r.m["action"].(map[string]any)
	if snap["created_at"] != act["created_at"] {
		t.Errorf("202: snapshot created_at %v, its action's %v", snap["created_at"], act["created_at"])
	}
	time.Sleep(30 * time.Millisecond) // the node takes it later
	s.finish(act["id"].(string), true)

	l := s.call(key, "GET", base+"/snapshots", "")
	data, _ := l.m["data"].([]any)
	if l.status != 200 || len(data) != 1 {
		t.Fatalf("snapshots: %d %s", l.status, l.body)
	}
	if got := data[0].(map[string]any)["created_at"]; got != snap["created_at"] {
		t.Errorf("created_at: the 202 said %v, the list says %v", snap["created_at"], got)
	}
	g := s.call(key, "GET", "/v1/actions/"+act["id"].(string), "")
	if g.m["created_at"] != snap["created_at"] {
		t.Errorf("action created_at %v, snapshot's %v", g.m["created_at"], snap["created_at"])
	}
}

// TestSnapshotCreatedAtLevel1: below semantics level 2 the list keeps the
// time the node's result was recorded, as the releases before level 2 (a
// replica of the older release applies the result so).
func TestSnapshotCreatedAtLevel1(t *testing.T) {
	s, _, key, id := newServerOwner(t)
	r := s.call(key, "POST", "/v1/servers/"+id+"/snapshots", `{"name":"before upgrade"}`)
	snap := r.m["snapshot"].(map[string]any)
	time.Sleep(30 * time.Millisecond)
	s.finish(actionID(t, r), true)
	l := s.call(key, "GET", "/v1/servers/"+id+"/snapshots", "")
	data, _ := l.m["data"].([]any)
	if len(data) != 1 || data[0].(map[string]any)["created_at"] == snap["created_at"] {
		t.Fatalf("level 1: the list should keep the recorded time, not the 202's %v: %s", snap["created_at"], l.body)
	}
}
