package fsm

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

// dbImage is a consistent copy of f's database file (a snapshot's bytes).
func dbImage(t testing.TB, f *FSM) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := f.View(func(tx *bolt.Tx) error { _, err := tx.WriteTo(&buf); return err }); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// bucketPages reads a bbolt file image (bbolt 1.x's page layout) and
// returns the pages of each top-level bucket's tree, keyed by the bucket's
// name ("/" is the root bucket, whose leaves hold the buckets' headers and
// the inline buckets), each page with its bytes (overflow included).
func bucketPages(t testing.TB, img []byte) map[string]map[uint64][]byte {
	t.Helper()
	u16 := func(b []byte) int { return int(binary.LittleEndian.Uint16(b)) }
	u32 := func(b []byte) int { return int(binary.LittleEndian.Uint32(b)) }
	u64 := binary.LittleEndian.Uint64
	// Meta page 0: header (16 bytes), magic, version, page size, flags,
	// root bucket {root pgid, sequence}, freelist, pgid, txid, checksum.
	// WriteTo writes the reading transaction's meta into both meta pages.
	const hdr = 16
	pageSize := u32(img[hdr+8:])
	rootPgid := u64(img[hdr+16:])
	out := map[string]map[uint64][]byte{}
	var walk func(name string, id uint64)
	walk = func(name string, id uint64) {
		off := int(id) * pageSize
		p := img[off:]
		flags, count, overflow := u16(p[8:]), u16(p[10:]), u32(p[12:])
		if out[name] == nil {
			out[name] = map[uint64][]byte{}
		}
		out[name][id] = p[:(overflow+1)*pageSize]
		for i := 0; i < count; i++ {
			e := p[hdr+i*16:]
			switch flags {
			case 0x01: // branch: pos, ksize, pgid
				walk(name, u64(e[8:]))
			case 0x02: // leaf: flags, pos, ksize, vsize
				if name != "/" || u32(e)&0x01 == 0 {
					continue
				}
				pos, ksize := u32(e[4:]), u32(e[8:])
				kv := e[pos:]
				bname, broot := string(kv[:ksize]), u64(kv[ksize:])
				if broot == 0 {
					continue // inline: its bytes are in this root leaf
				}
				walk(bname, broot)
			default:
				t.Fatalf("page %d of %s: flags %#x", id, name, flags)
			}
		}
	}
	walk("/", rootPgid)
	return out
}

// dirtied is, per tree, how many of after's pages the commit between
// before and after wrote: those not in the tree before or whose bytes
// changed (bbolt writes a changed node to a page of its own).
func dirtied(before, after map[string]map[uint64][]byte) map[string]int {
	out := map[string]int{}
	for name, pages := range after {
		for id, b := range pages {
			if old, ok := before[name][id]; !ok || !bytes.Equal(old, b) {
				out[name]++
			}
		}
	}
	return out
}

// keyChanges lists, per bucket, the keys whose value a commit set, changed
// or deleted (+ new, ~ changed, - deleted), from two images.
func keyChanges(t testing.TB, before, after []byte) map[string][]string {
	t.Helper()
	dump := func(img []byte) map[string]map[string]string {
		path := filepath.Join(t.TempDir(), "img.db")
		if err := writeFileSync(path, bytes.NewReader(img)); err != nil {
			t.Fatal(err)
		}
		db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		out := map[string]map[string]string{}
		_ = db.View(func(tx *bolt.Tx) error {
			return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
				m := map[string]string{}
				out[string(name)] = m
				return b.ForEach(func(k, v []byte) error { m[string(k)] = string(v); return nil })
			})
		})
		return out
	}
	b, a := dump(before), dump(after)
	out := map[string][]string{}
	for name, m := range a {
		for k, v := range m {
			if old, ok := b[name][k]; !ok {
				out[name] = append(out[name], "+"+printableKey(k))
			} else if old != v {
				out[name] = append(out[name], "~"+printableKey(k))
			}
		}
		for k := range b[name] {
			if _, ok := m[k]; !ok {
				out[name] = append(out[name], "-"+printableKey(k))
			}
		}
		slices.Sort(out[name])
	}
	return out
}

func printableKey(k string) string {
	if strings.IndexFunc(k, func(r rune) bool { return r < 0x20 || r > 0x7e }) >= 0 {
		return fmt.Sprintf("%x", k)
	}
	return k
}

// pageReport is what one commit wrote: the pages of each tree (the meta
// page apart) and the keys of each bucket.
type pageReport struct {
	pages map[string]int
	keys  map[string][]string
	total int64 // tx.Stats' writes: the pages plus the meta page
}

func (r pageReport) String() string {
	names := map[string]bool{}
	for n := range r.pages {
		names[n] = true
	}
	for n := range r.keys {
		names[n] = true
	}
	var sorted []string
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	var b strings.Builder
	fmt.Fprintf(&b, "%d pages written (meta page included)\n", r.total)
	for _, n := range sorted {
		fmt.Fprintf(&b, "  %-16s %2d pages  %s\n", n, r.pages[n], strings.Join(r.keys[n], " "))
	}
	return b.String()
}

// measureCommit applies logs in one batch (one transaction) and reports
// the pages it wrote per tree and the keys it changed per bucket. It
// checks that the trees' pages and the meta page add up to what bbolt
// counted.
func measureCommit(t testing.TB, f *FSM, logs ...*raft.Log) pageReport {
	t.Helper()
	img0 := dbImage(t, f)
	w0 := pagesWritten(f)
	for i, r := range f.ApplyBatch(logs) {
		if res, ok := r.(*Result); ok && res.Err != nil {
			t.Fatalf("entry %d: %v", i, res.Err)
		}
	}
	img1 := dbImage(t, f)
	rep := pageReport{pages: dirtied(bucketPages(t, img0), bucketPages(t, img1)), keys: keyChanges(t, img0, img1), total: pagesWritten(f) - w0}
	sum := 1 // the meta page
	for _, n := range rep.pages {
		sum += n
	}
	if int64(sum) != rep.total {
		t.Fatalf("the trees' dirtied pages + meta = %d, bbolt wrote %d:\n%v", sum, rep.total, rep)
	}
	return rep
}

// orderRig is an FSM with benchOrderSetup applied and held orders placed
// before, ids made as the API makes them (time-ordered).
type orderRig struct {
	t   testing.TB
	f   *FSM
	at  time.Time
	idx uint64
}

func newOrderRig(t testing.TB, held int) *orderRig {
	r := &orderRig{t: t, f: open(t, filepath.Join(t.TempDir(), "fsm.db")), at: time.Date(2026, 6, 3, 10, 0, 0, 0, time.UTC)}
	t.Cleanup(func() { r.f.Close() })
	for _, c := range benchOrderSetup(r.at, 1_000_000_000) {
		r.f.ApplyBatch([]*raft.Log{r.entry(c.typ, c.p)})
	}
	for i := 0; i < held; i++ {
		o := r.order()
		r.apply(r.entry(CmdServerOrder, o))
		r.apply(r.entry(CmdActionFinish, r.finish(o)))
		r.apply(r.entry(CmdTicketCreate, r.ticket()))
	}
	return r
}

func (r *orderRig) entry(typ CommandType, p any) *raft.Log {
	r.at = r.at.Add(time.Millisecond)
	r.idx++
	return logAt(r.t, r.idx, typ, r.at, p)
}

func (r *orderRig) apply(logs ...*raft.Log) {
	r.t.Helper()
	for i, res := range r.f.ApplyBatch(logs) {
		if err := res.(*Result).Err; err != nil {
			r.t.Fatalf("entry %d of %d: %v", i, len(logs), err)
		}
	}
}

func (r *orderRig) order() ServerOrder {
	o := testOrder(0, "vps-1")
	s, a := &o.Create.Server, &o.Create.Action
	s.ID, a.ID, o.InvoiceID = ids.New("srv", r.at), ids.New("act", r.at), ids.New("inv", r.at)
	o.PaymentID, o.TxID = ids.New("pay", r.at), ids.New("wtx", r.at)
	s.VMName, a.Target, a.ResourceID = "hp-"+s.ID, "hp-"+s.ID, s.ID
	o.Create.CPUOvercommit = 4
	return o
}

func (r *orderRig) finish(o ServerOrder) ActionFinish {
	return ActionFinish{ID: o.Create.Action.ID, Success: true, Result: json.RawMessage(`{"template":"debian-12"}`)}
}

func (r *orderRig) ticket() TicketCreate {
	return TicketCreate{ID: ids.New("tkt", r.at), AccountID: "acc_1", MessageID: ids.New("msg", r.at),
		Subject: "s", Message: "m", Department: "technical", Priority: "low", PerAccountNumber: true}
}

// TestOrderPagesTable logs, for an order's commands each in a transaction
// of its own (the order, its action's first progress, its end) and a
// ticket, on a database already holding 300 of each, the pages the commit
// wrote per bucket tree and the keys it changed; then the pages per order
// and per ticket over 100 transactions as a follower commits them under
// load (one per Raft entry: 4 orders and the ends of the 4 before them;
// 4 tickets):
//
//	go test ./coordinator/internal/fsm -run OrderPagesTable -v
func TestOrderPagesTable(t *testing.T) {
	r := newOrderRig(t, 300)
	o := r.order()
	t.Logf("order:\n%v", measureCommit(t, r.f, r.entry(CmdServerOrder, o)))
	t.Logf("action progress:\n%v", measureCommit(t, r.f, r.entry(CmdActionProgress, ActionProgress{ID: o.Create.Action.ID, At: r.at, Step: "accepted"})))
	t.Logf("action finish:\n%v", measureCommit(t, r.f, r.entry(CmdActionFinish, r.finish(o))))
	t.Logf("ticket:\n%v", measureCommit(t, r.f, r.entry(CmdTicketCreate, r.ticket())))

	const k, txs = 4, 100
	var prev []ServerOrder
	w0 := pagesWritten(r.f)
	for i := 0; i < txs; i++ {
		var logs []*raft.Log
		var cur []ServerOrder
		for j := 0; j < k; j++ {
			cur = append(cur, r.order())
			logs = append(logs, r.entry(CmdServerOrder, cur[j]))
		}
		for _, o := range prev {
			logs = append(logs, r.entry(CmdActionFinish, r.finish(o)))
		}
		if i == txs-1 {
			t.Logf("the last of %d transactions of %d orders and %d ends:\n%v", txs, k, len(prev), measureCommit(t, r.f, logs...))
		} else {
			r.apply(logs...)
		}
		prev = cur
	}
	orders := pagesWritten(r.f) - w0
	w0 = pagesWritten(r.f)
	for i := 0; i < txs; i++ {
		var logs []*raft.Log
		for j := 0; j < k; j++ {
			logs = append(logs, r.entry(CmdTicketCreate, r.ticket()))
		}
		r.apply(logs...)
	}
	tickets := pagesWritten(r.f) - w0
	t.Logf("%d transactions of %d: %.2f pages per order, %.2f per ticket", txs, k, float64(orders)/(txs*k), float64(tickets)/(txs*k))
}

// TestActionProgressWritesOnlyChanges: an action's first progress writes
// the action but not its record in the open actions (unchanged: it is
// open on the same node), and a progress that changes nothing (a repeat)
// writes neither; the result is the action as recorded.
func TestActionProgressWritesOnlyChanges(t *testing.T) {
	r := newOrderRig(t, 0)
	// Enough open actions that their bucket has a page of its own (a
	// small bucket lives in its parent's page).
	var placed []ServerOrder
	for i := 0; i < 40; i++ {
		placed = append(placed, r.order())
		r.apply(r.entry(CmdServerOrder, placed[i]))
	}
	a := placed[20].Create.Action.ID
	progress := ActionProgress{ID: a, At: r.at, Percent: 10, Step: "accepted"}
	first := measureCommit(t, r.f, r.entry(CmdActionProgress, progress))
	if first.pages["actions"] == 0 || len(first.keys["actions"]) != 1 {
		t.Fatalf("the first progress did not write its action:\n%v", first)
	}
	if first.pages["open_actions"] != 0 {
		t.Fatalf("the first progress rewrote the open actions:\n%v", first)
	}
	again := measureCommit(t, r.f, r.entry(CmdActionProgress, progress))
	if again.pages["actions"] != 0 || again.pages["open_actions"] != 0 {
		t.Fatalf("a repeated progress wrote:\n%v", again)
	}
	res := r.f.Apply(r.entry(CmdActionProgress, ActionProgress{ID: a, At: r.at, Percent: 5})).(*Result)
	got, ok := res.Value.(api.Action)
	if res.Err != nil || !ok || got.Status != api.ActionRunning || got.Progress != 10 || got.StartedAt == nil {
		t.Fatalf("a progress changing nothing answered %+v, %v", res.Value, res.Err)
	}
	stored := readOne(t, r.f, func(rd store.ReadTx) (store.Action, error) { return rd.Action(a) })
	if stored.Step != "accepted" || stored.Progress != 10 {
		t.Fatalf("stored action %+v", stored.Action)
	}
	if n := readOne(t, r.f, func(rd store.ReadTx) (int, error) { return rd.OpenActionCount(), nil }); n != 40 {
		t.Fatalf("%d open actions, want 40", n)
	}
}
