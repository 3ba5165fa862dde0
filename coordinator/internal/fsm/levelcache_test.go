package fsm

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	bolt "go.etcd.io/bbolt"
)

// storedLevel is the semantics level f's database holds, read from it.
func storedLevel(t *testing.T, f *FSM) uint16 {
	t.Helper()
	var l uint16
	if err := f.View(func(tx *bolt.Tx) error { l = store.ClusterLevelTx(tx); return nil }); err != nil {
		t.Fatal(err)
	}
	return l
}

// probeCredit applies, at idx, a cmdLevelTwoProbe crediting acc_1 100
// cents, and returns its error (nil: applied).
func probeCredit(t *testing.T, f *FSM, idx uint64, tx string) error {
	t.Helper()
	res := f.ApplyBatch([]*raft.Log{logOf(t, idx, cmdLevelTwoProbe, WalletCredit{TxID: tx, AccountID: "acc_1", AmountUsdCents: 100})})
	return res[0].(*Result).Err
}

// TestClusterLevelKeptWithTheDatabase: the level the FSM keeps in memory
// (FSM.ClusterLevel, and what each command's apply checks) is the level its
// database holds after every way that level changes: a new state, a raise
// inside a batch (seen by the batch's later commands), a restart, a Restore
// of a backup at a lower level (the level falls with the state) and of one
// at a higher level; a command of level 2 is refused or applied as the
// stored level says each time.
func TestClusterLevelKeptWithTheDatabase(t *testing.T) {
	withLevelTwoProbe(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "f.db")
	f := open(t, path)
	defer func() { f.Close() }()
	same := func(step string, want uint16) {
		t.Helper()
		if got, stored := f.ClusterLevel(), storedLevel(t, f); got != want || stored != want {
			t.Fatalf("%s: ClusterLevel %d, database %d; want %d", step, got, stored, want)
		}
	}
	refused := func(step string, err error, have uint16) {
		t.Helper()
		var le *LevelError
		if !errors.As(err, &le) || le.Need != 2 || le.Have != have {
			t.Fatalf("%s: level-2 command: %v, want a LevelError 2/%d", step, err, have)
		}
	}
	same("new state", 1)

	// A raise is seen by the commands after it in the same batch, and by
	// FSM.ClusterLevel once the batch commits.
	res := f.ApplyBatch([]*raft.Log{
		logOf(t, 1, CmdAccountCreate, AccountCreate{ID: "acc_1", Email: "a@x.io", Name: "a", Country: "TR"}),
		logOf(t, 2, cmdLevelTwoProbe, WalletCredit{TxID: "wtx_1", AccountID: "acc_1", AmountUsdCents: 100}),
		logOf(t, 3, CmdClusterLevel, ClusterLevel{Level: 2}),
		logOf(t, 4, cmdLevelTwoProbe, WalletCredit{TxID: "wtx_2", AccountID: "acc_1", AmountUsdCents: 100}),
	})
	refused("before the raise in its batch", res[1].(*Result).Err, 1)
	if err := res[3].(*Result).Err; err != nil {
		t.Fatalf("level-2 command after the raise in its batch: %v", err)
	}
	same("after a raise to 2", 2)
	low := backup(t, applied(t, filepath.Join(dir, "low.db"),
		logOf(t, 1, CmdAccountCreate, AccountCreate{ID: "acc_1", Email: "a@x.io", Name: "a", Country: "TR"})))

	// A lower raise changes nothing.
	f.ApplyBatch([]*raft.Log{logOf(t, 5, CmdClusterLevel, ClusterLevel{Level: 1})})
	same("after a lower CmdClusterLevel", 2)

	// A restart reads it back.
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	f = open(t, path)
	same("after a restart", 2)
	if err := probeCredit(t, f, 6, "wtx_3"); err != nil {
		t.Fatalf("level-2 command after a restart at level 2: %v", err)
	}
	f.ApplyBatch([]*raft.Log{logOf(t, 7, CmdClusterLevel, ClusterLevel{Level: MaxLevel})})
	same("after a raise to MaxLevel", MaxLevel)
	high := backup(t, f)

	// A Restore installs the backup's level, lower or higher.
	restore(t, f, low)
	same("after restoring a level-1 backup", 1)
	refused("after restoring a level-1 backup", probeCredit(t, f, 1, "wtx_4"), 1)
	restore(t, f, high)
	same("after restoring a MaxLevel backup", MaxLevel)
	if err := probeCredit(t, f, 1, "wtx_5"); err != nil {
		t.Fatalf("level-2 command after restoring a MaxLevel backup: %v", err)
	}
	if b := balance(t, f, "acc_1"); b != 300 {
		t.Fatalf("balance %d, want 300 (wtx_2, wtx_3, wtx_5)", b)
	}
}
