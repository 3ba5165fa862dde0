package dispatch

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/coordinator/internal/fsm"
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

// TestCleanupRetryBackoff: a failed cleanup's next attempt waits the base,
// then twice as long per attempt made, at most an hour; the last attempt
// gets none (bounded), nor does an action that is no cleanup.
func TestCleanupRetryBackoff(t *testing.T) {
	d := &Dispatcher{s: Deps{CleanupRetryBase: 40 * time.Minute, ActionDeadline: time.Minute, Log: slog.New(slog.DiscardHandler)}}
	cleanup := func(n int) store.Action {
		a := store.Action{Action: api.Action{ID: "act_c", Command: api.ActionServerTerminate}, Meta: map[string]string{"cleanup_of": "act_p"}}
		if n > 1 {
			a.Meta[fsm.MetaCleanupAttempt] = strconv.Itoa(n)
		}
		return a
	}
	want := map[int]int64{1: 2400, 2: 3600, 3: 3600, fsm.MaxCleanupAttempts - 1: 3600, fsm.MaxCleanupAttempts: 0}
	for n, w := range want {
		if got := d.cleanupRetry(cleanup(n)); got != w {
			t.Errorf("attempt %d: retry in %d s, want %d", n, got, w)
		}
	}
	d.s.CleanupRetryBase = time.Second
	for n, w := range map[int]int64{1: 1, 2: 2, 3: 4, 5: 16, 6: 0} {
		if got := d.cleanupRetry(cleanup(n)); got != w {
			t.Errorf("base 1s, attempt %d: retry in %d s, want %d", n, got, w)
		}
	}
	if f := d.withCleanup(store.Action{Action: api.Action{ID: "act_x", Command: api.ActionServerTerminate}}, fsm.ActionFinish{ID: "act_x"}); f.CleanupRetrySeconds != 0 || f.CleanupDeadlineSeconds != 0 {
		t.Errorf("a terminate that is no cleanup: %+v", f)
	}
	if f := d.withCleanup(cleanup(2), fsm.ActionFinish{ID: "act_c"}); f.CleanupRetrySeconds != 2 || f.CleanupDeadlineSeconds != 60 {
		t.Errorf("a failed second attempt: %+v", f)
	}
}

// TestCleanupLogSaysWhatHappens: a failed cleanup's log line says what the
// FSM will do with it, read from the replicated state's semantics level:
// at level 1 (mid-upgrade) it is not retried, and says so, not "retrying";
// at level 2 it is retried in the backoff's time; the last attempt is given
// up at either.
func TestCleanupLogSaysWhatHappens(t *testing.T) {
	f, err := fsm.Open(filepath.Join(t.TempDir(), "fsm.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	var buf bytes.Buffer
	d := &Dispatcher{s: Deps{State: f, CleanupRetryBase: time.Second, ActionDeadline: time.Minute, Log: slog.New(slog.NewTextHandler(&buf, nil))}}
	cleanup := func(n int) store.Action {
		return store.Action{Action: api.Action{ID: "act_c", Command: api.ActionServerTerminate},
			Meta: map[string]string{"cleanup_of": "act_p", fsm.MetaCleanupAttempt: strconv.Itoa(n)}}
	}
	logOf := func(n int) string {
		buf.Reset()
		d.withCleanup(cleanup(n), fsm.ActionFinish{ID: "act_c", ErrorCode: "node_error"})
		return buf.String()
	}
	has := func(level, line string, want ...string) {
		t.Helper()
		for _, w := range want {
			neg := strings.HasPrefix(w, "!")
			if strings.Contains(line, strings.TrimPrefix(w, "!")) == neg {
				t.Errorf("level %s: log %q, want %q", level, line, w)
			}
		}
	}
	has("1", logOf(2), "level=ERROR", "not retried", "semantics level is below 2", "semantics_level=1", "attempt=2", "!retrying", "!retry_in")
	has("1", logOf(fsm.MaxCleanupAttempts), "level=ERROR", "failed its last attempt", "!retrying")
	env, err := fsm.NewEnvelope(fsm.CmdClusterLevel, time.Now(), fsm.ClusterLevel{Level: 2})
	if err != nil {
		t.Fatal(err)
	}
	data, err := env.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if res := f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: data}).(*fsm.Result); res.Err != nil || f.ClusterLevel() != 2 {
		t.Fatalf("raise the level: %v, level %d", res.Err, f.ClusterLevel())
	}
	has("2", logOf(2), "level=WARN", "retrying", "retry_in=2s", "attempt=2", "!not retried")
	has("2", logOf(fsm.MaxCleanupAttempts), "level=ERROR", "failed its last attempt", "!retrying")
}
