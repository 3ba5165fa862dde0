package dispatch

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
)

func TestScrubKeepsBackboneOut(t *testing.T) {
	a := store.Action{Action: api.Action{ResourceID: "srv_1"}, NodeID: "hv-07", Target: "hp-srv-1"}
	msg := scrub(`vm hp-srv-1: create volume "hp-srv-1-root-ab.qcow2" in /var/lib/hostplane/pool/x on hv-07: no space (path=/srv/pool)`, a)
	for _, leak := range []string{"hp-srv-1", "hv-07", "/var/lib", "/srv/pool"} {
		if strings.Contains(msg, leak) {
			t.Fatalf("scrubbed message %q still holds %q", msg, leak)
		}
	}
	if !strings.Contains(msg, "srv_1") || !strings.Contains(msg, "no space") {
		t.Fatalf("scrubbed message lost its meaning: %q", msg)
	}
	long := scrub(strings.Repeat("é", 400), a)
	if !strings.HasSuffix(long, "…") || !json.Valid([]byte(`"`+long+`"`)) {
		t.Fatalf("long message not cut cleanly: %q", long)
	}
}

func TestAgentParamsForSnapshots(t *testing.T) {
	a := store.Action{Action: api.Action{Command: api.ActionSnapshotCreate}, SnapshotID: "",
		Snapshot: &api.ServerSnapshot{ID: "snp_01abc", Name: "before upgrade", Description: "kernel"}}
	var p map[string]string
	if err := json.Unmarshal(agentParams(a), &p); err != nil || p["name"] != "snp-01abc" || p["description"] != "kernel" {
		t.Fatalf("snapshot.create params %v %v", p, err)
	}
	a = store.Action{Action: api.Action{Command: api.ActionSnapshotRevert}, SnapshotID: "snp_01abc"}
	p = nil
	if err := json.Unmarshal(agentParams(a), &p); err != nil || p["name"] != "snp-01abc" || len(p) != 1 {
		t.Fatalf("snapshot.revert params %v %v", p, err)
	}
	if got := string(agentParams(store.Action{Action: api.Action{Command: api.ActionServerStart}})); got != "{}" {
		t.Fatalf("start params %s", got)
	}
}

func TestDeadlineResultSaysWhy(t *testing.T) {
	r := deadlineResult(store.Action{Action: api.Action{ID: "act_1", Status: api.ActionPending}}, 5*time.Minute)
	if r.ErrorCode != "node_unreachable" || !strings.Contains(r.ErrorMessage, "5m0s") || !strings.Contains(r.ErrorMessage, "nothing was changed") {
		t.Fatalf("pending: %+v", r)
	}
	r = deadlineResult(store.Action{Action: api.Action{ID: "act_1", Status: api.ActionRunning}}, time.Minute)
	if !strings.Contains(r.ErrorMessage, "outcome is unknown") {
		t.Fatalf("running: %+v", r)
	}
}

// TestSnapshotNamesPassTheAgent: the name a snapshot id becomes on the node
// passes the agent's rule (pkg/validate).
func TestSnapshotNamesPassTheAgent(t *testing.T) {
	for range 50 {
		id := ids.New("snp", time.Now())
		if err := validate.Name("snapshot", agentSnapshotName(id)); err != nil {
			t.Fatalf("snapshot %s: %v", id, err)
		}
	}
}
