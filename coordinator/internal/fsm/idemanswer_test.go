package fsm

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestIdemAnswerReplacesTheReplayedAnswer: CmdIdemAnswer replaces the status
// and body a key replays (its expiry kept); another request's hash, an
// unknown key or an expired record are ErrNotFound and change nothing.
func TestIdemAnswerReplacesTheReplayedAnswer(t *testing.T) {
	f := applied(t, filepath.Join(t.TempDir(), "f.db"), logOf(t, 1, CmdAccountCreate, AccountCreate{ID: "acc_1", Email: "a@x.io", Name: "a", Country: "TR"}))
	idx := uint64(1)
	apply := func(at time.Time, typ CommandType, p any, idem *IdemRequest) *Result {
		idx++
		env, _ := NewEnvelope(typ, at, p)
		env.Idem = idem
		b, _ := env.Encode()
		return f.ApplyBatch([]*raft.Log{{Index: idx, Type: raft.LogCommand, Data: b}})[0].(*Result)
	}
	idem := &IdemRequest{Scope: "key_1/k", ReqHash: "h1", Status: 202, ExpiresAt: t0.Add(24 * time.Hour)}
	credit := func(at time.Time) *Result {
		return apply(at, CmdWalletCredit, WalletCredit{TxID: "wtx_1", AccountID: "acc_1", AmountUsdCents: 100}, idem)
	}
	if r := credit(t0); r.Err != nil || r.Replayed != nil {
		t.Fatalf("first: %+v", r)
	}
	answer := func(at time.Time, a IdemAnswer) error { return apply(at, CmdIdemAnswer, a, nil).Err }
	for _, bad := range []IdemAnswer{
		{Scope: "key_1/k", ReqHash: "h2", Status: 201, Body: []byte(`{"x":2}`)},
		{Scope: "key_1/other", ReqHash: "h1", Status: 201, Body: []byte(`{"x":2}`)},
	} {
		if err := answer(t0.Add(time.Minute), bad); !errors.Is(err, ErrNotFound) {
			t.Fatalf("answer %+v: %v, want ErrNotFound", bad, err)
		}
	}
	if err := answer(t0.Add(time.Minute), IdemAnswer{Scope: "key_1/k", ReqHash: "h1", Status: 42, Body: []byte(`{}`)}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("status 42: %v, want ErrInvalid", err)
	}
	if r := credit(t0.Add(2 * time.Minute)); r.Replayed == nil || r.Replayed.Status != 202 {
		t.Fatalf("replay before the answer: %+v", r)
	}
	if err := answer(t0.Add(3*time.Minute), IdemAnswer{Scope: "key_1/k", ReqHash: "h1", Status: 201, Body: []byte(`{"x":1}`)}); err != nil {
		t.Fatal(err)
	}
	r := credit(t0.Add(4 * time.Minute))
	if r.Replayed == nil || r.Replayed.Status != 201 || string(r.Replayed.Body) != `{"x":1}` || !r.Replayed.ExpiresAt.Equal(idem.ExpiresAt) || balance(t, f, "acc_1") != 100 {
		t.Fatalf("replay after the answer: %+v, balance %d", r.Replayed, balance(t, f, "acc_1"))
	}
	if err := answer(t0.Add(25*time.Hour), IdemAnswer{Scope: "key_1/k", ReqHash: "h1", Status: 409, Body: []byte(`{}`)}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("answering an expired record: %v, want ErrNotFound", err)
	}
}
