package domains

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/fsm/fsmtest"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/coordinator/internal/webhook"
)

// fsmState applies proposals to a real FSM (one replica), as Raft would.
type fsmState struct{ *fsmtest.Replica }

func (s *fsmState) ACMEAccount() (a store.ACMEAccount, err error) {
	err = s.FSM.Read(func(r store.ReadTx) error { a, err = r.ACMEAccount(); return err })
	return a, err
}

// TestClusterAccount: the cluster's ACME account key is made once, recorded
// sealed under the KEK (the state file never holds it in plain text), and
// every later call (another leader) opens the same key; a coordinator with
// another KEK cannot, and says why.
func TestClusterAccount(t *testing.T) {
	dir := t.TempDir()
	f, err := fsm.Open(filepath.Join(dir, "fsm.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st := &fsmState{&fsmtest.Replica{FSM: f}}
	sealer, _ := webhook.NewSealer(bytes.Repeat([]byte{7}, webhook.KEKSize))
	ctx := context.Background()
	a1, err := ClusterAccount(ctx, st, sealer, "https://acme.test/dir", "ops@hostplane.test")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(a1.KeyPEM), "PRIVATE KEY") {
		t.Fatal("no key")
	}
	a2, err := ClusterAccount(ctx, st, sealer, "https://acme.test/dir", "ops@hostplane.test")
	if err != nil || !bytes.Equal(a1.KeyPEM, a2.KeyPEM) {
		t.Fatalf("second call made another key: %v", err)
	}
	// A racing second record is refused; the first stays.
	if err := st.Propose(ctx, fsm.CmdACMEAccountInit, fsm.ACMEAccountInit{Directory: "https://acme.test/dir", SealedKey: "v1.other"}); err == nil {
		t.Fatal("a second account record was accepted")
	}
	if err := AccountRegistered(ctx, st, "https://acme.test/acct/1"); err != nil {
		t.Fatal(err)
	}
	if a3, _ := ClusterAccount(ctx, st, sealer, "https://acme.test/dir", ""); a3.URI != "https://acme.test/acct/1" {
		t.Fatalf("uri %q", a3.URI)
	}
	if _, err := ClusterAccount(ctx, st, sealer, "https://other.test/dir", ""); err == nil {
		t.Fatal("another directory used the account")
	}
	other, _ := webhook.NewSealer(bytes.Repeat([]byte{8}, webhook.KEKSize))
	if _, err := ClusterAccount(ctx, st, other, "https://acme.test/dir", ""); err == nil || !strings.Contains(err.Error(), "KEK") {
		t.Fatalf("another KEK: %v", err)
	}
	f.Close()
	// The key's body (base64 lines of the PEM) appears nowhere in the state.
	raw, _ := os.ReadFile(filepath.Join(dir, "fsm.db"))
	for _, line := range strings.Split(string(a1.KeyPEM), "\n") {
		if len(line) > 20 && bytes.Contains(raw, []byte(line)) {
			t.Fatal("the account key is in the state file in plain text")
		}
	}
}
