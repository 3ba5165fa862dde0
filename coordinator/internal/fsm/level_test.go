package fsm

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	bolt "go.etcd.io/bbolt"
)

// cmdLevelTwoProbe is a command type only these tests register, at level 2:
// what a command added by the first release with levels looks like.
const cmdLevelTwoProbe CommandType = 579

// withLevelTwoProbe registers cmdLevelTwoProbe (it credits a wallet, so
// whether it applied shows in the balance) for the test's duration.
func withLevelTwoProbe(t *testing.T) {
	t.Helper()
	handlers[cmdLevelTwoProbe] = typed(applyWalletCredit)
	commandLevel[cmdLevelTwoProbe] = 2
	t.Cleanup(func() {
		delete(handlers, cmdLevelTwoProbe)
		delete(commandLevel, cmdLevelTwoProbe)
	})
}

// TestLevelGatesNewCommands: a command of a newer level than the cluster's
// is refused by the FSM, changing nothing, until CmdClusterLevel raises
// the level; the level never falls; level 0 is invalid.
func TestLevelGatesNewCommands(t *testing.T) {
	withLevelTwoProbe(t)
	f := open(t, filepath.Join(t.TempDir(), "f.db"))
	defer f.Close()
	if l := f.ClusterLevel(); l != 1 {
		t.Fatalf("a new state's level is %d, want 1", l)
	}
	res := f.ApplyBatch([]*raft.Log{
		logOf(t, 1, CmdAccountCreate, AccountCreate{ID: "acc_1", Email: "a@x.io", Name: "a", Country: "TR"}),
		logOf(t, 2, cmdLevelTwoProbe, WalletCredit{TxID: "wtx_1", AccountID: "acc_1", AmountUsdCents: 700}),
	})
	var le *LevelError
	if r := res[1].(*Result); !errors.As(r.Err, &le) || le.Need != 2 || le.Have != 1 {
		t.Fatalf("level-2 command at level 1: %v, want a LevelError 2/1", r.Err)
	}
	if b := balance(t, f, "acc_1"); b != 0 {
		t.Fatalf("refused command credited %d", b)
	}
	res = f.ApplyBatch([]*raft.Log{
		logOf(t, 3, CmdClusterLevel, ClusterLevel{Level: 0}),
		logOf(t, 4, CmdClusterLevel, ClusterLevel{Level: 2}),
		logOf(t, 5, cmdLevelTwoProbe, WalletCredit{TxID: "wtx_2", AccountID: "acc_1", AmountUsdCents: 700}),
		logOf(t, 6, CmdClusterLevel, ClusterLevel{Level: 1}),
	})
	if r := res[0].(*Result); !errors.Is(r.Err, ErrInvalid) {
		t.Fatalf("level 0: %v, want invalid", r.Err)
	}
	for i := 1; i < 4; i++ {
		if r := res[i].(*Result); r.Err != nil {
			t.Fatalf("entry %d: %v", i+3, r.Err)
		}
	}
	if b := balance(t, f, "acc_1"); b != 700 {
		t.Fatalf("level-2 command at level 2 credited %d, want 700", b)
	}
	if l := f.ClusterLevel(); l != 2 {
		t.Fatalf("level after a lower CmdClusterLevel is %d, want 2 (never falls)", l)
	}
}

// TestLevelAboveBinaryStopsReplica: a replica whose binary applies an older
// level than the one the log raises to stops at that entry, committing
// nothing of its batch, instead of applying what follows as an older
// release would.
func TestLevelAboveBinaryStopsReplica(t *testing.T) {
	f := open(t, filepath.Join(t.TempDir(), "f.db"))
	defer f.Close()
	f.LimitLevel(1)
	f.ApplyBatch([]*raft.Log{logOf(t, 1, CmdAccountCreate, AccountCreate{ID: "acc_1", Email: "a@x.io", Name: "a", Country: "TR"})})
	var msg string
	func() {
		defer func() { msg, _ = recover().(string) }()
		f.ApplyBatch([]*raft.Log{
			logOf(t, 2, CmdWalletCredit, WalletCredit{TxID: "wtx_1", AccountID: "acc_1", AmountUsdCents: 700}),
			logOf(t, 3, CmdClusterLevel, ClusterLevel{Level: 2}),
		})
	}()
	if !strings.Contains(msg, "applies only up to 1: upgrade it") {
		t.Fatalf("panic %q, want the upgrade message", msg)
	}
	if b := balance(t, f, "acc_1"); b != 0 {
		t.Fatalf("the stopped batch committed a credit of %d", b)
	}
	var applied uint64
	_ = f.View(func(tx *bolt.Tx) error { applied = store.AppliedIndex(tx); return nil })
	if applied != 1 || f.ClusterLevel() != 1 {
		t.Fatalf("applied index %d, level %d after the stop; want 1, 1", applied, f.ClusterLevel())
	}
}

// TestRestoreRefusesNewerLevel: a snapshot (or backup) of a cluster at a
// level this binary does not apply is refused, leaving the state as it was.
func TestRestoreRefusesNewerLevel(t *testing.T) {
	dir := t.TempDir()
	snap := backup(t, applied(t, filepath.Join(dir, "a.db"),
		logOf(t, 1, CmdAccountCreate, AccountCreate{ID: "acc_1", Email: "a@x.io", Name: "a", Country: "TR"}),
		logOf(t, 2, CmdClusterLevel, ClusterLevel{Level: 2})))
	old := open(t, filepath.Join(dir, "old.db"))
	defer old.Close()
	old.LimitLevel(1)
	err := old.Restore(io.NopCloser(bytes.NewReader(snap)))
	if err == nil || !strings.Contains(err.Error(), "semantics level 2") {
		t.Fatalf("restore of a level-2 snapshot into a level-1 binary: %v", err)
	}
	if err := old.Read(func(r store.ReadTx) error { _, err := r.Account("acc_1"); return err }); err == nil {
		t.Fatal("the refused snapshot's account is there")
	}
	if l := restored(t, filepath.Join(dir, "cur.db"), snap).ClusterLevel(); l != 2 {
		t.Fatalf("restored level %d, want 2", l)
	}
}
