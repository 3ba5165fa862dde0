package fsm

import (
	"io"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
)

// raftWrapper stands for the wrapper hashicorp/raft hands FSM.Restore (its
// countingReadCloser, a raft.ReadCloserWrapper).
type raftWrapper struct{ io.ReadCloser }

func (w raftWrapper) WrappedReadCloser() io.ReadCloser { return w.ReadCloser }

// A snapshot opened through IndexedSnapshots and restored at run time is
// recorded as applied at its Raft index and term, not at the copy's own
// applied index (2 here, as a backup of another cluster would carry), and
// the index persists across a reopen; a stream not opened through it is
// recorded at 0, as before, so that a restart restores it again.
func TestRestoreRecordsSnapshotIndex(t *testing.T) {
	dir := t.TempDir()
	snap := backup(t, applied(t, filepath.Join(dir, "a.db"),
		logOf(t, 1, CmdAccountCreate, AccountCreate{ID: "acc_1", Email: "a@x.io", Name: "a", Country: "TR"}),
		logOf(t, 2, CmdWalletCredit, WalletCredit{TxID: "wtx_1", AccountID: "acc_1", AmountUsdCents: 700})))
	bPath := filepath.Join(dir, "b.db")
	b := open(t, bPath)
	snapshotAtTerm(t, snap, 42, 7)(b)
	if got, term := b.AppliedIndex(), b.AppliedTerm(); got != 42 || term != 7 {
		t.Fatalf("after restoring the snapshot at 42 (term 7): applied index %d, term %d", got, term)
	}
	if bal := balance(t, b, "acc_1"); bal != 700 {
		t.Fatalf("restored balance %d, want 700", bal)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = open(t, bPath)
	if got := b.AppliedIndex(); got != 42 {
		t.Fatalf("reopened after the restore: applied index %d, want 42", got)
	}
	// Entries up to the snapshot's index are in it: replayed, they are skipped.
	b.ApplyBatch([]*raft.Log{logOf(t, 42, CmdWalletCredit, WalletCredit{TxID: "wtx_2", AccountID: "acc_1", AmountUsdCents: 1})})
	if bal := balance(t, b, "acc_1"); bal != 700 {
		t.Fatalf("an entry at the snapshot's index was applied again: balance %d", bal)
	}
	b.Close()

	if got := restored(t, filepath.Join(dir, "c.db"), snap).AppliedIndex(); got != 0 {
		t.Fatalf("a stream of no known snapshot restored at run time: applied index %d, want 0", got)
	}
}
