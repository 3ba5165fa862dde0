package fsm

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

var updateApplyOrderGolden = flag.Bool("update-apply-order-golden", false, "rewrite testdata/applyorder.golden")

// TestApplyOrderRecordsUnchanged applies a fixed log of server orders (with
// and without addresses, one with a label encoding/json escapes), ticket
// creations, each with an Idempotency-Key's request, in group commits and
// alone, a replay, a key reused for another request and a refused order,
// and compares every record of the database and every command's result
// with testdata/applyorder.golden, written by the code before the apply
// path's codecs were cut (go test -run TestApplyOrderRecordsUnchanged
// -update-apply-order-golden writes it again). A faster apply must write
// the same bytes: every replica, old and new, applies the same log. The
// log raises the state to the level before LevelOwnerIDs (9), as a log
// written before level 10 does: it must apply as it always did.
func TestApplyOrderRecordsUnchanged(t *testing.T) {
	got := applyOrderLog(t, LevelOwnerIDs-1)
	golden, want := readGolden(t, "applyorder.golden", *updateApplyOrderGolden, got)
	if line, g, w, same := firstDiff(got, want); !same {
		t.Fatalf("line %d of the records and results differs from %s:\n got %s\nwant %s", line, golden, g, w)
	}
}

var updateApplyOrder10Golden = flag.Bool("update-apply-order-level10-golden", false, "rewrite testdata/applyorder_level10.golden")

// TestApplyOrderRecordsUnchangedAtLevel10 is TestApplyOrderRecordsUnchanged
// on a state at LevelOwnerIDs (10): testdata/applyorder_level10.golden was
// written by the release whose newest level was 10, so a log applied at
// level 10 by a later release (one that applies level 11) writes the same
// bytes, answers the same and replays the same, as every replica of a
// cluster that has not raised its level yet must.
func TestApplyOrderRecordsUnchangedAtLevel10(t *testing.T) {
	got := applyOrderLog(t, LevelOwnerIDs)
	golden, want := readGolden(t, "applyorder_level10.golden", *updateApplyOrder10Golden, got)
	if line, g, w, same := firstDiff(got, want); !same {
		t.Fatalf("line %d of the level-10 records and results differs from %s:\n got %s\nwant %s", line, golden, g, w)
	}
}

// TestOwnerIDsAtLevel10: the log of TestApplyOrderRecordsUnchanged applied
// at LevelOwnerIDs answers every command the same and leaves every record
// the same, but for the id indexes: each server_ids and invoice_ids record
// the level before writes is, at level 10, an owner_ids record of the same
// account keyed by store.OwnerKey(id), and the two old buckets stay empty;
// each order's server and invoice index entries are next to each other.
// The ids resolve (a server by id, an invoice paid by id, a server created
// again with a taken id refused). Then the order pages: over a database
// of 300 orders at level 10, an order's commit writes fewer pages than at
// level 9 and no page of server_ids or invoice_ids.
func TestOwnerIDsAtLevel10(t *testing.T) {
	old, cur := applyOrderLog(t, LevelOwnerIDs-1), applyOrderLog(t, LevelOwnerIDs)
	var want, got []string
	var owners []string
	for _, l := range strings.Split(strings.TrimSuffix(string(old), "\n"), "\n") {
		bucket, rest, _ := strings.Cut(l, " ")
		if bucket != "server_ids" && bucket != "invoice_ids" {
			want = append(want, l)
			continue
		}
		var k, v string
		if _, err := fmt.Sscanf(rest, "%q %q", &k, &v); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		owners = append(owners, fmt.Sprintf("owner_ids %s %s", strconv.Quote(string(store.OwnerKey(k))), strconv.Quote(v)))
	}
	if len(owners) < 20 {
		t.Fatalf("the level-9 state holds %d server and invoice id records; the log places more", len(owners))
	}
	var gotOwners []string
	for _, l := range strings.Split(strings.TrimSuffix(string(cur), "\n"), "\n") {
		if strings.HasPrefix(l, "owner_ids ") {
			gotOwners = append(gotOwners, l)
		} else {
			got = append(got, l)
		}
	}
	if line, g, w, same := firstDiff([]byte(strings.Join(got, "\n")), []byte(strings.Join(want, "\n"))); !same {
		t.Fatalf("line %d of the level-10 records and results (owner_ids apart) differs from level 9's:\n got %s\nwant %s", line, g, w)
	}
	slices.Sort(owners) // bbolt's order: the keys' bytes
	if !slices.Equal(gotOwners, owners) {
		t.Fatalf("owner_ids at level 10:\n%s\nwant level 9's server_ids and invoice_ids rekeyed:\n%s", strings.Join(gotOwners, "\n"), strings.Join(owners, "\n"))
	}
	for i, l := range gotOwners {
		// The fixed ids: srv_000003 and inv_000003 of one order.
		if strings.HasPrefix(l, `owner_ids "`) && strings.Contains(l, `_inv"`) {
			if i+1 >= len(gotOwners) || gotOwners[i+1][:len(`owner_ids "000000`)] != l[:len(`owner_ids "000000`)] || !strings.Contains(gotOwners[i+1], `_srv"`) {
				t.Fatalf("an order's invoice and server index entries are not next to each other:\n%s", strings.Join(gotOwners, "\n"))
			}
		}
	}

	// The ids resolve at level 10, and a level-9 one still does after the
	// raise, on a replica restored from a backup a release before level 10
	// made (no owner_ids bucket).
	s := newApplyOrderStateOf(t, 8, true, LevelOwnerIDs-1)
	old9 := s.next("order")
	s.applyGroup([]*Envelope{old9})
	s.f = restoredWithout(t, s.f, store.BucketOwnerIDs)
	s.applyGroup([]*Envelope{cmd(CmdClusterLevel, ClusterLevel{Level: LevelOwnerIDs})})
	new10 := s.next("order")
	s.applyGroup([]*Envelope{new10})
	for _, e := range []*Envelope{old9, new10} {
		var o ServerOrder
		if err := json.Unmarshal(e.Data, &o); err != nil {
			t.Fatal(err)
		}
		srv := readOne(t, s.f, func(r store.ReadTx) (store.Server, error) { return r.Server(o.Create.Server.ID) })
		if srv.InvoiceID != o.InvoiceID || srv.AccountID != o.Create.Server.AccountID {
			t.Fatalf("server %s by id: %+v", o.Create.Server.ID, srv)
		}
		res := s.f.ApplyBatch([]*raft.Log{s.entry([]*Envelope{cmd(CmdInvoicePay, InvoicePay{InvoiceID: o.InvoiceID, PaymentID: "pay_again", TxID: "wtx_again"})})})[0].(*Result)
		if inv, ok := res.Value.(api.Invoice); res.Err != nil || !ok || inv.ID != o.InvoiceID || inv.Status != api.InvoicePaid {
			t.Fatalf("invoice %s paid again by id: %+v, %v", o.InvoiceID, res.Value, res.Err)
		}
		again := *e
		again.Idem = nil
		res = s.f.ApplyBatch([]*raft.Log{s.entry([]*Envelope{&again})})[0].(*Result)
		if !errors.Is(res.Err, ErrConflict) {
			t.Fatalf("server %s created again: %v, want a conflict", o.Create.Server.ID, res.Err)
		}
	}

	// Pages: an order's commit, each at its level, on 300 orders.
	pages := map[uint16]pageReport{}
	for _, level := range []uint16{LevelOwnerIDs - 1, LevelOwnerIDs} {
		s := newApplyOrderStateOf(t, 300, false, level)
		pages[level] = measureCommit(t, s.f, s.entry([]*Envelope{s.next("order")}))
		t.Logf("an order at level %d:\n%v", level, pages[level])
	}
	p9, p10 := pages[LevelOwnerIDs-1], pages[LevelOwnerIDs]
	if p10.pages["server_ids"]+p10.pages["invoice_ids"] != 0 || len(p10.keys["server_ids"])+len(p10.keys["invoice_ids"]) != 0 {
		t.Fatalf("an order at level 10 wrote server_ids or invoice_ids:\n%v", p10)
	}
	if len(p10.keys["owner_ids"]) != 2 || p10.total >= p9.total {
		t.Fatalf("an order at level 10 wrote %d pages (owner_ids keys %v), at level 9 %d", p10.total, p10.keys["owner_ids"], p9.total)
	}
}

// restoredWithout is a new FSM restored from f's backup with bucket
// deleted from it (a backup of a release before the bucket existed).
func restoredWithout(t *testing.T, f *FSM, bucket []byte) *FSM {
	t.Helper()
	path := filepath.Join(t.TempDir(), "old.db")
	if err := os.WriteFile(path, dbImage(t, f), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var snap bytes.Buffer
	if err := db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucket); err != nil {
			return err
		}
		return WriteSnapshot(tx, &snap)
	}); err != nil {
		t.Fatal(err)
	}
	return restored(t, filepath.Join(t.TempDir(), "restored.db"), snap.Bytes())
}

// applyOrderLog applies TestApplyOrderRecordsUnchanged's log on a state at
// level and returns every command's result and every record of the
// database after it, a line each (the level recorded written as MaxLevel).
func applyOrderLog(t *testing.T, level uint16) []byte {
	s := newApplyOrderStateOf(t, 8, true, level)
	var out bytes.Buffer
	results := func(what string, r any) {
		fmt.Fprintf(&out, "result %s:", what)
		rs, ok := r.(BatchResult)
		if !ok {
			rs = BatchResult{r.(*Result)}
		}
		for _, x := range rs {
			v, err := json.Marshal(x.Value)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&out, " {value %s err %v", v, x.Err)
			if x.Replayed != nil {
				fmt.Fprintf(&out, " replayed %d %s", x.Replayed.Status, x.Replayed.Body)
			}
			out.WriteString("}")
		}
		out.WriteString("\n")
	}
	apply := func(what string, envs ...*Envelope) {
		results(what, s.f.ApplyBatch([]*raft.Log{s.entry(envs)})[0])
	}
	var group []*Envelope
	for _, kind := range []string{"order", "ticket", "order-addr", "order", "ticket", "ticket", "order-addr", "order"} {
		group = append(group, s.next(kind))
	}
	apply("group", group...)
	apply("order alone", s.next("order"))
	apply("order with addresses alone", s.next("order-addr"))
	apply("ticket alone", s.next("ticket"))
	s.label = "ünï \u2028 \"x\" <b>"
	apply("order with an escaped label", s.next("order"), s.next("ticket"))
	apply("order with an escaped label alone", s.next("order"))
	s.label = "web"
	apply("replays", group[0], group[1], group[2])
	other := *group[3]
	idem := *other.Idem
	idem.ReqHash = "another request"
	other.Idem = &idem
	apply("key of another request", &other)
	refused := s.next("order")
	var o ServerOrder
	if err := json.Unmarshal(refused.Data, &o); err != nil {
		t.Fatal(err)
	}
	o.PlanSlug = "vps-404"
	if refused.Data, _ = json.Marshal(o); refused.Data == nil {
		t.Fatal("marshal")
	}
	apply("refused order", refused, s.next("ticket"))

	_ = s.f.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				val := strconv.Quote(string(v))
				if string(name) == "meta" && string(k) == "semantics_level" && bytes.Equal(v, binary.BigEndian.AppendUint16(nil, level)) {
					// The state is at the level the log's first
					// entry raised it to, written as MaxLevel (the
					// golden's word from when the log raised it to
					// the binary's newest level), so that a
					// release's new level, which need not touch an
					// order, leaves the golden as it is.
					val = "MaxLevel"
				}
				fmt.Fprintf(&out, "%s %s %s\n", name, strconv.Quote(string(k)), val)
				return nil
			})
		})
	})
	return out.Bytes()
}

// firstDiff is the first line (1-based) where got and want differ, with
// both lines, or same.
func firstDiff(got, want []byte) (line int, g, w []byte, same bool) {
	if bytes.Equal(got, want) {
		return 0, nil, nil, true
	}
	gl, wl := bytes.Split(got, []byte("\n")), bytes.Split(want, []byte("\n"))
	for i := range max(len(gl), len(wl)) {
		g, w = nil, nil
		if i < len(gl) {
			g = gl[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if !bytes.Equal(g, w) {
			return i + 1, g, w, false
		}
	}
	return 0, nil, nil, true
}

// readGolden returns testdata/name's path and bytes, first writing got
// there when update is set (the test's -update-… flag); the test compares
// and says what differs.
// dumpBuckets writes every key and value of f's buckets to w, a line each
// ("bucket key value", both quoted): what a golden file of a replayed log
// compares.
func dumpBuckets(w io.Writer, f *FSM, buckets ...[]byte) {
	for _, b := range buckets {
		_ = f.View(func(tx *bolt.Tx) error {
			return tx.Bucket(b).ForEach(func(k, v []byte) error {
				fmt.Fprintf(w, "%s %s %s\n", b, strconv.Quote(string(k)), strconv.Quote(string(v)))
				return nil
			})
		})
	}
}

func readGolden(t *testing.T, name string, update bool, got []byte) (string, []byte) {
	t.Helper()
	golden := filepath.Join("testdata", name)
	if update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	return golden, want
}
