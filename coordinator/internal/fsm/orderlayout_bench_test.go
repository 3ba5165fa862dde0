package fsm

import (
	"fmt"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	bolt "go.etcd.io/bbolt"
)

// BenchmarkOrderLayouts is the bbolt pages a follower's commits write per
// server order and per ticket in tests/orders BenchmarkOrderCPU's shape
// (one customer, one API key and that benchmark's Idempotency-Keys; 8
// rounds of 120 tickets then 120 orders; Raft entries of orderLayoutBatch
// commands, as its group commits hold under load), for the store's layout
// and for other layouts of the same records: each entry's key changes
// (set, changed, deleted: a diff of the database before and after it) are
// replayed into a database of the layout's own, one transaction per entry,
// its buckets packed as store.PackAppends packs them. A layout that moves a
// bucket's keys into another bucket under a prefix shows what folding it
// would save before anything is built (a semantics level). "store" is the
// replay of the store's own layout and must be within 5 % of the FSM's own
// count ("fsm"), or the replay is not faithful and the benchmark fails. It
// logs which keys and pages one entry of orders and one of tickets wrote,
// per bucket.
//
//	go test ./coordinator/internal/fsm -run '^$' -bench OrderLayouts -benchtime 1x
func BenchmarkOrderLayouts(b *testing.B) {
	if b.N > 1 {
		b.Fatal("run with -benchtime 1x: the figures are counts, not times")
	}
	layouts := []orderLayout{
		{"store", func(bk, k string) (string, string) { return bk, k }},
		// owner_ids, node_servers, open_actions and account_actions in one
		// bucket, each under a prefix of its own.
		{"index4", foldInto("index", "owner_ids", "node_servers", "open_actions", "account_actions")},
		{"index3", foldInto("index", "owner_ids", "node_servers", "account_actions")},
		{"open-in-actions", foldInto("actions", "open_actions")},
		// index4, and the wallet transactions with the invoices.
		{"index4-billing", then(foldInto("index", "owner_ids", "node_servers", "open_actions", "account_actions"), foldInto("invoices", "invoices", "wallet_tx"))},
		// Every bucket an order writes but accounts and the idempotency
		// records (and the outbox, which tickets write too) in one: the
		// most folding can save.
		{"one-tree", foldInto("order", "owner_ids", "node_servers", "open_actions", "account_actions", "actions", "servers", "invoices", "wallet_tx")},
	}
	// One account, as the cluster benchmark's (its accounts bucket is
	// small enough to live inline in the root's page).
	s := newApplyOrderStateFor(b, 0, false, MaxLevel, 1)
	s.oneCustomer = true
	reps := make([]*layoutReplay, len(layouts))
	prev := dumpStore(b, s.f)
	for i, l := range layouts {
		reps[i] = newLayoutReplay(b, l)
		reps[i].apply(b, changes(nil, prev))
	}
	// pages[kind][0] is the FSM's, pages[kind][1+i] layout i's; cpu[kind][i]
	// layout i's replay's CPU (its puts and commits: this thread's).
	pages := map[string][]int64{"order": make([]int64, 1+len(layouts)), "ticket": make([]int64, 1+len(layouts))}
	cpu := map[string][]time.Duration{"order": make([]time.Duration, len(layouts)), "ticket": make([]time.Duration, len(layouts))}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for round := 0; round < 8; round++ {
		for _, kind := range []string{"ticket", "order"} {
			for i := 0; i < 120; i += orderLayoutBatch {
				g := make([]*Envelope, orderLayoutBatch)
				for j := range g {
					g[j] = s.next(kind)
				}
				w0 := pagesWritten(s.f)
				if round == 7 && i == 60 {
					rep := measureCommit(b, s.f, s.entry(g))
					b.Logf("one entry of %d %ss:\n%v", orderLayoutBatch, kind, rep)
				} else {
					checkApplied(s.f.ApplyBatch([]*raft.Log{s.entry(g)})[0])
				}
				cur := dumpStore(b, s.f)
				ops := changes(prev, cur)
				prev = cur
				pages[kind][0] += pagesWritten(s.f) - w0
				for n := range reps {
					// The layouts in turn, each first as often.
					i := (n + int(s.idx)) % len(reps)
					r := reps[i]
					p0, c0 := r.pages(), threadCPU()
					r.apply(b, ops)
					cpu[kind][i] += threadCPU() - c0
					pages[kind][1+i] += r.pages() - p0
				}
			}
		}
	}
	per := func(kind string, i int) float64 { return float64(pages[kind][i]) / 960 }
	b.ReportMetric(per("order", 0), "fsm-pages/order")
	b.ReportMetric(per("ticket", 0), "fsm-pages/ticket")
	for i, l := range layouts {
		b.ReportMetric(per("order", 1+i), l.name+"-pages/order")
		b.ReportMetric(per("ticket", 1+i), l.name+"-pages/ticket")
		b.ReportMetric(float64(cpu["order"][i].Nanoseconds())/960/1e3, l.name+"-replay-cpu-µs/order")
		b.ReportMetric(float64(cpu["ticket"][i].Nanoseconds())/960/1e3, l.name+"-replay-cpu-µs/ticket")
	}
	for _, kind := range []string{"order", "ticket"} {
		if f, r := per(kind, 0), per(kind, 1); r < 0.95*f || r > 1.05*f {
			b.Fatalf("the replay of the store's layout wrote %.2f pages per %s, the FSM %.2f: the replay is not faithful", r, kind, f)
		}
	}
}

// orderLayoutBatch is the commands per Raft entry in BenchmarkOrderLayouts.
const orderLayoutBatch = 4

// orderLayout names a layout and places each key of the store's layout
// (bucket, key) in it.
type orderLayout struct {
	name  string
	place func(bucket, key string) (string, string)
}

// foldInto places the keys of buckets in bucket into, each under a prefix
// of its own (its index among buckets, then a NUL); the rest as they are.
func foldInto(into string, buckets ...string) func(bucket, key string) (string, string) {
	prefix := map[string]string{}
	for i, b := range buckets {
		prefix[b] = fmt.Sprintf("%c\x00", 'a'+i)
	}
	return func(bucket, key string) (string, string) {
		if p, ok := prefix[bucket]; ok {
			return into, p + key
		}
		return bucket, key
	}
}

// then is the layout of placing by first, then by second.
func then(first, second func(bucket, key string) (string, string)) func(bucket, key string) (string, string) {
	return func(bucket, key string) (string, string) { return second(first(bucket, key)) }
}

// keyChange is one key's change by a commit: set to val, or deleted.
type keyChange struct {
	bucket, key, val string
	del              bool
}

// storeDump is every key and value of a database, by bucket.
type storeDump map[string]map[string]string

func dumpStore(t testing.TB, f *FSM) storeDump {
	t.Helper()
	out := storeDump{}
	err := f.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			m := map[string]string{}
			out[string(name)] = m
			return b.ForEach(func(k, v []byte) error { m[string(k)] = string(v); return nil })
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// changes are the key changes from before to after.
func changes(before, after storeDump) []keyChange {
	var out []keyChange
	for name, m := range after {
		for k, v := range m {
			if old, ok := before[name][k]; !ok || old != v {
				out = append(out, keyChange{bucket: name, key: k, val: v})
			}
		}
		for k := range before[name] {
			if _, ok := m[k]; !ok {
				out = append(out, keyChange{bucket: name, key: k, del: true})
			}
		}
	}
	return out
}

// layoutReplay is a database holding the store's records in a layout.
type layoutReplay struct {
	db     *bolt.DB
	layout orderLayout
	packed map[string]bool // the buckets PackAppends packs, placed
}

func newLayoutReplay(t testing.TB, l orderLayout) *layoutReplay {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "layout.db"), 0o600, &bolt.Options{FreelistType: bolt.FreelistMapType, NoSync: true, NoFreelistSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	r := &layoutReplay{db: db, layout: l, packed: map[string]bool{}}
	// Every bucket the store makes, empty ones too (the root's page holds
	// them all), placed.
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range store.AllBuckets {
			placed, _ := l.place(string(b), "")
			if _, err := tx.CreateBucketIfNotExists([]byte(placed)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range append(append([][]byte{}, store.AppendOnlyBuckets...), store.AppendMostlyBuckets...) {
		placed, _ := l.place(string(b), "")
		r.packed[placed] = true
	}
	return r
}

// apply writes cs in one transaction, as the FSM wrote them in one commit.
func (r *layoutReplay) apply(t testing.TB, cs []keyChange) {
	t.Helper()
	err := r.db.Update(func(tx *bolt.Tx) error {
		for _, c := range cs {
			name, key := r.layout.place(c.bucket, c.key)
			b, err := tx.CreateBucketIfNotExists([]byte(name))
			if err != nil {
				return err
			}
			if r.packed[name] {
				b.FillPercent = 1.0
			}
			if c.del {
				err = b.Delete([]byte(key))
			} else {
				err = b.Put([]byte(key), []byte(c.val))
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// threadCPU is the CPU time of the calling thread (RUSAGE_THREAD).
func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1, &ru); err != nil { // RUSAGE_THREAD
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (r *layoutReplay) pages() int64 { st := r.db.Stats(); return st.TxStats.GetWrite() }
