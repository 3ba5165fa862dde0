package fsm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// logOf is the Raft entry idx holding command typ with payload at t0.
func logOf(t *testing.T, idx uint64, typ CommandType, payload any) *raft.Log {
	t.Helper()
	return logAt(t, idx, typ, t0, payload)
}

// logAt is the Raft entry idx holding command typ with payload, applied as
// of at (the command's time).
func logAt(t testing.TB, idx uint64, typ CommandType, at time.Time, payload any) *raft.Log {
	t.Helper()
	env, err := NewEnvelope(typ, at, payload)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := env.Encode()
	return &raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: b}
}

// readOne reads one value of f's state through get, failing t on an error.
func readOne[T any](t *testing.T, f *FSM, get func(r store.ReadTx) (T, error)) T {
	t.Helper()
	var v T
	if err := f.Read(func(r store.ReadTx) (err error) { v, err = get(r); return }); err != nil {
		t.Fatal(err)
	}
	return v
}

func balance(t *testing.T, f *FSM, acc string) int64 {
	t.Helper()
	var a api.Account
	if err := f.View(func(tx *bolt.Tx) error { return store.GetJSON(tx, store.BucketAccounts, []byte(acc), &a) }); err != nil {
		return -1
	}
	return a.BalanceUsdCents
}

func open(t testing.TB, path string) *FSM {
	t.Helper()
	f, err := Open(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// backup is f's backup: the stream a snapshot of it writes.
func backup(t testing.TB, f *FSM) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := f.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// restore restores the backup b into f.
func restore(t testing.TB, f *FSM, b []byte) {
	t.Helper()
	if err := f.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
		t.Fatal(err)
	}
}

// applied is a new FSM at path, closed when the test ends, with logs
// applied in one batch (their results unread).
func applied(t testing.TB, path string, logs ...*raft.Log) *FSM {
	t.Helper()
	f := open(t, path)
	t.Cleanup(func() { f.Close() })
	f.ApplyBatch(logs)
	return f
}

// restored is a new FSM at path, closed when the test ends, restored from
// the backup b.
func restored(t testing.TB, path string, b []byte) *FSM {
	t.Helper()
	f := open(t, path)
	t.Cleanup(func() { f.Close() })
	restore(t, f, b)
	return f
}

// TestReplayAfterCleanCloseIsSkipped: Raft replays entries the database already
// holds after a restart; they must not apply twice.
func TestReplayAfterCleanCloseIsSkipped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fsm.db")
	f := open(t, path)
	logs := []*raft.Log{
		logOf(t, 1, CmdAccountCreate, AccountCreate{ID: "acc_1", Email: "a@x.io", Name: "a", Country: "TR"}),
		logOf(t, 2, CmdWalletCredit, WalletCredit{TxID: "wtx_1", AccountID: "acc_1", AmountUsdCents: 100}),
		logOf(t, 3, CmdWalletCredit, WalletCredit{TxID: "wtx_2", AccountID: "acc_1", AmountUsdCents: 100}),
	}
	res := f.ApplyBatch(logs)
	if r := res[2].(*Result); r.Err != nil || balance(t, f, "acc_1") != 200 {
		t.Fatalf("apply: %+v balance %d", r, balance(t, f, "acc_1"))
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	f = open(t, path)
	defer f.Close()
	f.ApplyBatch(logs) // Raft's replay after restart
	f.ApplyBatch([]*raft.Log{logOf(t, 4, CmdWalletCredit, WalletCredit{TxID: "wtx_3", AccountID: "acc_1", AmountUsdCents: 50})})
	if b := balance(t, f, "acc_1"); b != 250 || f.AppliedIndex() != 4 {
		t.Fatalf("after replay: balance %d applied %d, want 250 and 4", b, f.AppliedIndex())
	}
}

// TestUncleanCloseDiscardsDatabase: the unsynced database of a run that did not
// close cleanly is dropped, to be rebuilt from the Raft snapshot and log.
func TestUncleanCloseDiscardsDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fsm.db")
	f := open(t, path)
	f.ApplyBatch([]*raft.Log{logOf(t, 1, CmdAccountCreate, AccountCreate{ID: "acc_1", Email: "a@x.io", Name: "a", Country: "TR"})})
	f.db.Close() // a crash: the open marker stays
	f = open(t, path)
	defer f.Close()
	if f.AppliedIndex() != 0 || balance(t, f, "acc_1") != -1 {
		t.Fatalf("unclean database was reused: applied %d", f.AppliedIndex())
	}
}

// TestSnapshotRestoreRoundTrip: a snapshot restored into an empty FSM gives the
// same state; business errors write nothing.
func TestSnapshotRestoreRoundTrip(t *testing.T) {
	dir := t.TempDir()
	a := open(t, filepath.Join(dir, "a.db"))
	defer a.Close()
	res := a.ApplyBatch([]*raft.Log{
		logOf(t, 1, CmdAccountCreate, AccountCreate{ID: "acc_1", Email: "a@x.io", Name: "a", Country: "TR"}),
		logOf(t, 2, CmdWalletCredit, WalletCredit{TxID: "wtx_1", AccountID: "acc_1", AmountUsdCents: 700}),
		logOf(t, 3, CmdInvoiceIssue, InvoiceIssue{ID: "inv_1", AccountID: "acc_1", PayFromWallet: true, PaymentID: "pay_1", TxID: "wtx_2",
			Lines: []InvoiceLineReq{{Description: "too much", Quantity: 1, UnitPriceUsdCents: 900}}}),
		logOf(t, 4, CmdAccountCreate, AccountCreate{ID: "acc_2", Email: "A@x.io", Name: "dup", Country: "TR"}),
	})
	if r := res[2].(*Result); r.Err == nil {
		t.Fatal("invoice over the balance was paid")
	}
	if r := res[3].(*Result); r.Err == nil {
		t.Fatal("duplicate email accepted")
	}
	b := restored(t, filepath.Join(dir, "b.db"), backup(t, a))
	if bal := balance(t, b, "acc_1"); bal != 700 {
		t.Fatalf("restored balance %d, want 700", bal)
	}
	var n int
	_ = b.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(store.BucketInvoices).Stats().KeyN
		return nil
	})
	if n != 0 {
		t.Fatalf("a failed invoice left %d records", n)
	}
	if err := b.Restore(io.NopCloser(bytes.NewReader([]byte("garbage")))); err == nil {
		t.Fatal("garbage restored")
	}
	if bal := balance(t, b, "acc_1"); bal != 700 {
		t.Fatalf("state changed by a failed restore: %d", bal)
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	env, _ := NewEnvelope(CmdTicketCreate, t0, TicketCreate{ID: "tkt_1"})
	good, _ := env.Encode()
	for _, s := range [][]byte{good, []byte(`{}`), []byte(`{"t":0}`), []byte(`{"t":99,"d":null}`), []byte(`[`)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEnvelope(b)
		if err == nil && e.Type == 0 {
			t.Fatal("accepted an envelope without a type")
		}
	})
}

// FuzzDecodeBatchFast: whatever the one-pass batch decoding accepts, the
// general path (entry, array, each command) decodes to the same commands, and a
// command it refuses is one the general path refuses too.
func FuzzDecodeBatchFast(f *testing.F) {
	a, _ := NewEnvelope(CmdTicketCreate, t0, TicketCreate{ID: "tkt_1", Subject: `quo"te`})
	a.Idem = &IdemRequest{Scope: "k/1", ReqHash: "h", Status: 201, ExpiresAt: t0}
	b, _ := NewEnvelope(CmdWalletCredit, t0.Add(time.Second), WalletCredit{TxID: "wtx_1", AccountID: "acc_1", AmountUsdCents: 5})
	ea, _ := a.Encode()
	eb, _ := b.Encode()
	for _, s := range [][]byte{
		EncodeBatch(t0, [][]byte{ea, eb}), EncodeBatch(t0, [][]byte{ea, []byte("null"), []byte(`{"t":0}`), []byte(`{"t":14,"d":[]}`)}),
		EncodeBatch(t0, nil), []byte(`{"t":14,"v":1,"d":null}`), []byte(`{"t":14,"v":1,"d":[],"t":8}`), []byte(`{"t":14,"v":1,"d":[5]}`), ea,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := decodeBatchFast(data)
		if !ok {
			return
		}
		env, err := DecodeEnvelope(data)
		if err != nil || env.Type != CmdBatch {
			t.Fatalf("fast path took an entry the general path reads as %+v, %v", env, err)
		}
		var subs []json.RawMessage
		if err := json.Unmarshal(env.Data, &subs); err != nil || len(subs) != len(fast) {
			t.Fatalf("general path: %d commands, %v; fast path %d", len(subs), err, len(fast))
		}
		for i, raw := range subs {
			sub, err := DecodeEnvelope(raw)
			if err != nil {
				if fast[i].Type != 0 {
					t.Fatalf("command %d: general path refuses it (%v), fast path has type %d", i, err, fast[i].Type)
				}
				continue
			}
			if !reflect.DeepEqual(*sub, fast[i]) {
				t.Fatalf("command %d: general %+v, fast %+v", i, *sub, fast[i])
			}
		}
	})
}

// FuzzApply feeds arbitrary command bytes through Apply: it must never panic, and
// an undecodable command must leave the state as it was.
func FuzzApply(f *testing.F) {
	for typ := CmdAccountCreate; typ <= CmdNodeRegister; typ++ {
		env, _ := NewEnvelope(typ, t0, map[string]any{"id": "x", "account_id": "acc_1", "amount_usd_cents": -5})
		b, _ := env.Encode()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fs := applied(t, filepath.Join(t.TempDir(), "f.db"), logOf(t, 1, CmdAccountCreate, AccountCreate{ID: "acc_1", Email: "a@x.io", Name: "a", Country: "TR"}))
		fs.ApplyBatch([]*raft.Log{{Index: 2, Type: raft.LogCommand, Data: b}})
		if bal := balance(t, fs, "acc_1"); bal < 0 {
			t.Fatalf("balance went negative: %d", bal)
		}
	})
}

// TestEnvelopeEncodeRoundTrip: the spliced encoding decodes to the same envelope,
// and a batch entry carries every sub-envelope with its own result.
func TestEnvelopeEncodeRoundTrip(t *testing.T) {
	env, _ := NewEnvelope(CmdTicketCreate, t0, TicketCreate{ID: "tkt_1", Subject: `quo"te`})
	env.Idem = &IdemRequest{Scope: "k/1", ReqHash: "h", Status: 201, ExpiresAt: t0}
	b, err := env.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeEnvelope(b)
	if err != nil || got.Type != env.Type || !got.At.Equal(env.At) || string(got.Data) != string(env.Data) || *got.Idem != *env.Idem {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	f := open(t, filepath.Join(t.TempDir(), "f.db"))
	defer f.Close()
	var encoded [][]byte
	for i, p := range []any{
		AccountCreate{ID: "acc_1", Email: "a@x.io", Name: "a", Country: "TR"},
		WalletCredit{TxID: "wtx_1", AccountID: "acc_1", AmountUsdCents: 100},
		WalletCredit{TxID: "wtx_2", AccountID: "acc_missing", AmountUsdCents: 100},
		TicketCreate{ID: "tkt_1", AccountID: "acc_1", Subject: "s", Message: "m", Priority: "low", Department: "general"},
	} {
		typ := []CommandType{CmdAccountCreate, CmdWalletCredit, CmdWalletCredit, CmdTicketCreate}[i]
		e, _ := NewEnvelope(typ, t0, p)
		raw, _ := e.Encode()
		encoded = append(encoded, raw)
	}
	res := f.ApplyBatch([]*raft.Log{{Index: 1, Type: raft.LogCommand, Data: EncodeBatch(t0, encoded)}})
	br, ok := res[0].(BatchResult)
	if !ok || len(br) != 4 || br[0].Err != nil || br[1].Err != nil || br[2].Err == nil || br[3].Err != nil {
		t.Fatalf("batch results: %#v", res[0])
	}
	if balance(t, f, "acc_1") != 100 {
		t.Fatalf("balance %d", balance(t, f, "acc_1"))
	}
	// Events of one batch entry get distinct outbox keys and ids.
	seen := map[string]bool{}
	_ = f.View(func(tx *bolt.Tx) error {
		return tx.Bucket(store.BucketOutbox).ForEach(func(k, v []byte) error {
			seen[string(v)] = true
			return nil
		})
	})
	if len(seen) != 2 { // wallet.deposit.received + ticket.created
		t.Fatalf("outbox holds %d events, want 2", len(seen))
	}
}

// TestIdempotencyRecordsExpire: a command with an idempotency request stores its
// response; the same key replays it; CmdIdemExpire (the leader's sweep) removes
// records whose TTL passed, after which the key is free again.
func TestIdempotencyRecordsExpire(t *testing.T) {
	f := applied(t, filepath.Join(t.TempDir(), "f.db"), logOf(t, 1, CmdAccountCreate, AccountCreate{ID: "acc_1", Email: "a@x.io", Name: "a", Country: "TR"}))
	credit := func(idx uint64, at time.Time) *Result {
		env, _ := NewEnvelope(CmdWalletCredit, at, WalletCredit{TxID: fmt.Sprint("wtx_", idx), AccountID: "acc_1", AmountUsdCents: 100})
		env.Idem = &IdemRequest{Scope: "key_1/k", ReqHash: "h1", Status: 201, ExpiresAt: t0.Add(24 * time.Hour)}
		b, _ := env.Encode()
		return f.ApplyBatch([]*raft.Log{{Index: idx, Type: raft.LogCommand, Data: b}})[0].(*Result)
	}
	if r := credit(2, t0); r.Err != nil || r.Replayed != nil {
		t.Fatalf("first: %+v", r)
	}
	if r := credit(3, t0.Add(time.Hour)); r.Replayed == nil || r.Replayed.Status != 201 || balance(t, f, "acc_1") != 100 {
		t.Fatalf("replay: %+v balance %d", r, balance(t, f, "acc_1"))
	}
	sweep := func(idx uint64, at time.Time) int {
		env, _ := NewEnvelope(CmdIdemExpire, at, IdemExpire{Limit: 100})
		b, _ := env.Encode()
		return f.ApplyBatch([]*raft.Log{{Index: idx, Type: raft.LogCommand, Data: b}})[0].(*Result).Value.(int)
	}
	// Past the TTL but not yet swept: the key is free (the command's time decides).
	if r := credit(40, t0.Add(24*time.Hour+time.Minute)); r.Replayed != nil || balance(t, f, "acc_1") != 200 {
		t.Fatalf("an expired record was replayed: %+v", r)
	}
	if n := sweep(4, t0.Add(23*time.Hour)); n != 0 {
		t.Fatalf("swept %d live records", n)
	}
	if n := sweep(5, t0.Add(24*time.Hour)); n != 1 {
		t.Fatalf("swept %d expired records, want 1", n)
	}
	if r := credit(6, t0.Add(25*time.Hour)); r.Err != nil || r.Replayed != nil || balance(t, f, "acc_1") != 300 {
		t.Fatalf("after expiry the key must be new: %+v balance %d", r, balance(t, f, "acc_1"))
	}
}
