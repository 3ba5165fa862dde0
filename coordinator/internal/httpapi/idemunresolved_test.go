package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
	bolt "go.etcd.io/bbolt"
)

// TestTicketReplyReplayOfABrokenRecord: a ticket reply's idempotency record
// (semantics level 5: the ticket, the message count then, no body) whose
// count is more than the ticket's thread holds (threads are append-only, so
// only a broken state does this) is replayed as a 500 internal_error and a
// log line naming the record, never as an answer made of the shorter thread
// nor as a business error. The state is broken the one way a test can from
// outside the FSM: a backup, edited, restored.
func TestTicketReplyReplayOfABrokenRecord(t *testing.T) {
	w := newWHAPI(t)
	w.apply(fsm.CmdClusterLevel, fsm.ClusterLevel{Level: fsm.LevelTicketReplyIdem})
	var logged framework.SyncBuilder
	w.a.log = slog.New(slog.NewTextHandler(&logged, nil))
	acc, key := w.account(api.ScopeTicketsRead, api.ScopeTicketsWrite)
	st, out := w.do(key, "POST", "/v1/tickets", `{"subject":"s","message":"first"}`)
	id, _ := out["id"].(string)
	if st != 201 || id == "" {
		t.Fatalf("ticket: %d %v", st, out)
	}
	reply := func() framework.Reply {
		return w.api.Call(key, "POST", "/v1/tickets/"+id+"/reply", `{"body":"second"}`, map[string]string{"Idempotency-Key": "reply-1"})
	}
	first := reply()
	if first.Status != 200 && first.Status != 201 {
		t.Fatalf("reply: %d %s", first.Status, first.Body)
	}
	if again := reply(); again.Status != first.Status || !bytes.Equal(again.Body, first.Body) || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay of a sound record: %d %q %s, want %d %s", again.Status, again.Header.Get("Idempotent-Replayed"), again.Body, first.Status, first.Body)
	}

	// The thread cut to its first message; the record still counts two.
	editState(t, w, func(tx *bolt.Tx) error {
		var tk api.Ticket
		if err := store.GetJSON(tx, store.BucketTickets, store.OwnedKey(acc, id), &tk); err != nil {
			return err
		}
		if len(tk.Messages) != 2 {
			t.Errorf("thread of %d messages stored, want 2", len(tk.Messages))
		}
		tk.Messages = tk.Messages[:1]
		return store.PutJSON(tx, store.BucketTickets, store.OwnedKey(acc, id), tk)
	})

	broken := reply()
	var e api.Error
	if err := json.Unmarshal(broken.Body, &e); broken.Status != 500 || err != nil || e.Code != "internal_error" || broken.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("replay of a record counting 2 messages over a thread of 1: %d %q %s, want 500 internal_error", broken.Status, broken.Header.Get("Idempotent-Replayed"), broken.Body)
	}
	if bytes.Contains(broken.Body, []byte("first")) {
		t.Fatalf("the 500 carries the thread: %s", broken.Body)
	}
	line := ""
	for _, l := range strings.Split(logged.String(), "\n") {
		if strings.Contains(l, e.RequestID) {
			line = l
		}
	}
	if !strings.Contains(line, "level=ERROR") || !strings.Contains(line, "cannot be replayed") || !strings.Contains(line, "counts 2 messages, the thread holds 1") {
		t.Fatalf("log line of request %s: %q; whole log:\n%s", e.RequestID, line, logged.String())
	}
}

// editState breaks the FSM's state the one way a test can from outside it:
// a backup, edited by edit in a bbolt transaction, restored. A restore outside
// start-up leaves the FSM's applied index at 0 (fsm.Restore), below commands
// in the Raft log, so a linearizable read would wait for the FSM to reach
// them and answer 503 no_leader (unless an earlier read had already found
// the log's tail applied, which under load it may not have); a command
// that changes nothing (the level it has) brings the index back to the
// log's end, as the next write in a running cluster would.
func editState(t *testing.T, w *whAPI, edit func(tx *bolt.Tx) error) {
	t.Helper()
	f := w.node.FSM
	var backup bytes.Buffer
	if err := f.Backup(&backup); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(t.TempDir(), "edited.db")
	magic, _, _ := bytes.Cut(backup.Bytes(), []byte("\n"))
	if err := os.WriteFile(db, backup.Bytes()[len(magic)+1:], 0o600); err != nil {
		t.Fatal(err)
	}
	bdb, err := bolt.Open(db, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := bdb.Update(edit); err != nil {
		t.Fatal(err)
	}
	if err := bdb.Close(); err != nil {
		t.Fatal(err)
	}
	edited, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Restore(io.NopCloser(io.MultiReader(bytes.NewReader(append(magic, '\n')), bytes.NewReader(edited)))); err != nil {
		t.Fatal(err)
	}
	w.apply(fsm.CmdClusterLevel, fsm.ClusterLevel{Level: f.ClusterLevel()})
}
