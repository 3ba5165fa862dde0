package fsm

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/hashicorp/raft"
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
// the same bytes: every replica, old and new, applies the same log.
func TestApplyOrderRecordsUnchanged(t *testing.T) {
	s := newApplyOrderStateOf(t, 8, true)
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
				if string(name) == "meta" && string(k) == "semantics_level" && bytes.Equal(v, binary.BigEndian.AppendUint16(nil, MaxLevel)) {
					// The state is at this binary's level (the log's
					// first entry): written as MaxLevel, so that a
					// release's new level, which need not touch an
					// order, leaves the golden as it is.
					val = "MaxLevel"
				}
				fmt.Fprintf(&out, "%s %s %s\n", name, strconv.Quote(string(k)), val)
				return nil
			})
		})
	})
	golden, want := readGolden(t, "applyorder.golden", *updateApplyOrderGolden, out.Bytes())
	if got := out.Bytes(); !bytes.Equal(got, want) {
		gl, wl := bytes.Split(got, []byte("\n")), bytes.Split(want, []byte("\n"))
		for i := range max(len(gl), len(wl)) {
			var g, w []byte
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if !bytes.Equal(g, w) {
				t.Fatalf("line %d of the records and results differs from %s:\n got %s\nwant %s", i+1, golden, g, w)
			}
		}
	}
}

// readGolden returns testdata/name's path and bytes, first writing got
// there when update is set (the test's -update-… flag); the test compares
// and says what differs.
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
