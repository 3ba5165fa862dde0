package fsm

import (
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestKeysVersionMovesAfterCommit: the API's key cache trusts a key it read
// while KeysVersion still equals the version it loaded before the read. A
// reader that runs while a revocation's batch is applying (loads the
// version, then reads the key in its own read transaction, which sees the
// state before the uncommitted batch) must therefore hold a version that the
// revocation moves past afterwards; otherwise it caches the key unrevoked
// under the current version and the revoked key keeps authenticating until
// some later key change.
func TestKeysVersionMovesAfterCommit(t *testing.T) {
	f := open(t, filepath.Join(t.TempDir(), "f.db"))
	defer f.Close()
	const probe CommandType = 65000
	type seen struct {
		version uint64
		key     store.Key
		err     error
	}
	var mid seen
	handlers[probe] = func(c *applyCtx) (any, error) {
		// A reader on another goroutine, as an API request would be.
		done := make(chan struct{})
		go func() {
			defer close(done)
			mid.version = f.KeysVersion()
			mid.err = f.Read(func(r store.ReadTx) (err error) { mid.key, err = r.KeyByHash("h1"); return })
		}()
		<-done
		return nil, nil
	}
	defer delete(handlers, probe)

	if r := f.ApplyBatch([]*raft.Log{
		logAt(t, 1, CmdAccountCreate, t0, AccountCreate{ID: "acc_a", Email: "a@x.io", Name: "a", Country: "TR"}),
		logAt(t, 2, CmdKeyCreate, t0, KeyCreate{ID: "key_1", AccountID: "acc_a", Hash: "h1", Prefix: "snc_1", Scopes: []string{api.ScopeServersRead}}),
	}); r[1].(*Result).Err != nil {
		t.Fatal(r[1].(*Result).Err)
	}
	// The revocation and the concurrent reader in one batch (one transaction).
	out := f.ApplyBatch([]*raft.Log{
		logAt(t, 3, CmdKeyRevoke, t0, KeyRevoke{ID: "key_1"}),
		logAt(t, 4, probe, t0, struct{}{}),
	})
	if r := out[0].(*Result); r.Err != nil {
		t.Fatal(r.Err)
	}
	if mid.err != nil {
		t.Fatal(mid.err)
	}
	if mid.key.RevokedAt != nil {
		t.Fatal("a read transaction saw the revocation before its batch committed (the test's premise is wrong)")
	}
	if mid.version == f.KeysVersion() {
		t.Fatalf("keys version %d was already current while the revocation was uncommitted: a cache filled then keeps the revoked key", mid.version)
	}
	var after store.Key
	if err := f.Read(func(r store.ReadTx) (err error) { after, err = r.KeyByHash("h1"); return }); err != nil || after.RevokedAt == nil {
		t.Fatalf("after the batch the key reads %+v, %v: want revoked", after, err)
	}
}
