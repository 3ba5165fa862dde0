package fsm

import (
	"fmt"
	"path/filepath"
	"runtime"
	"sort"
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
// replay-cpu-µs is the CPU (this thread's) of a layout's puts and commits
// per command: the whole recorded series is replayed into a fresh database
// of each layout orderLayoutReplays times, the layouts in turn (each first
// as often), and the median pass is reported, so that a layout's figure is
// not one pass's luck on a shared machine. What the FSM does besides the
// writes (reads, decoding, building the records) is the same in every
// layout and is not in it.
//
//	go test ./coordinator/internal/fsm -run '^$' -bench OrderLayouts -benchtime 1x
func BenchmarkOrderLayouts(b *testing.B) {
	if b.N > 1 {
		b.Fatal("run with -benchtime 1x: the figures are counts, not times")
	}
	index4 := foldInto("index", "owner_ids", "node_servers", "open_actions", "account_actions")
	layouts := []orderLayout{
		{"store", func(bk, k string) (string, string) { return bk, k }},
		// owner_ids, node_servers, open_actions and account_actions in one
		// bucket, each under a prefix of its own.
		{"index4", index4},
		{"index3", foldInto("index", "owner_ids", "node_servers", "account_actions")},
		{"open-in-actions", foldInto("actions", "open_actions")},
		// index4, and the wallet transactions with the invoices.
		{"index4-billing", then(index4, foldInto("invoices", "invoices", "wallet_tx"))},
		// Every bucket an order writes but accounts and the idempotency
		// records (and the outbox, which tickets write too) in one: the
		// most folding can save.
		{"one-tree", foldInto("order", "owner_ids", "node_servers", "open_actions", "account_actions", "actions", "servers", "invoices", "wallet_tx")},
		// Not a layout: the four index buckets not written at all, the
		// bound of any plan deriving them on read instead.
		{"no-index4", leaveOut("owner_ids", "node_servers", "open_actions", "account_actions")},
	}
	// One account, as the cluster benchmark's (its accounts bucket is
	// small enough to live inline in the root's page).
	s := newApplyOrderStateFor(b, 0, false, MaxLevel, 1)
	s.oneCustomer = true
	prev := dumpStore(b, s.f)
	setup := changes(nil, prev)
	// The series: each entry's kind and key changes, and the FSM's pages.
	type entry struct {
		kind string
		ops  []keyChange
	}
	var series []entry
	fsmPages := map[string]int64{}
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
				fsmPages[kind] += pagesWritten(s.f) - w0
				cur := dumpStore(b, s.f)
				series = append(series, entry{kind, changes(prev, cur)})
				prev = cur
			}
		}
	}
	// pages[kind][i] is layout i's (the same in every pass); cpu[kind][i]
	// its passes' CPU.
	pages := map[string][]int64{"order": make([]int64, len(layouts)), "ticket": make([]int64, len(layouts))}
	cpu := map[string][][]time.Duration{"order": make([][]time.Duration, len(layouts)), "ticket": make([][]time.Duration, len(layouts))}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for pass := 0; pass < orderLayoutReplays; pass++ {
		for n := range layouts {
			i := (n + pass) % len(layouts)
			r := newLayoutReplay(b, layouts[i])
			r.apply(b, setup)
			c := map[string]time.Duration{}
			p := map[string]int64{}
			for _, e := range series {
				p0, c0 := r.pages(), threadCPU()
				r.apply(b, e.ops)
				c[e.kind] += threadCPU() - c0
				p[e.kind] += r.pages() - p0
			}
			if err := r.db.Close(); err != nil {
				b.Fatal(err)
			}
			for kind := range pages {
				pages[kind][i] = p[kind]
				cpu[kind][i] = append(cpu[kind][i], c[kind])
			}
		}
	}
	per := func(n int64) float64 { return float64(n) / 960 }
	b.ReportMetric(per(fsmPages["order"]), "fsm-pages/order")
	b.ReportMetric(per(fsmPages["ticket"]), "fsm-pages/ticket")
	for i, l := range layouts {
		for _, kind := range []string{"order", "ticket"} {
			b.ReportMetric(per(pages[kind][i]), l.name+"-pages/"+kind)
			b.ReportMetric(float64(medianDuration(cpu[kind][i]).Nanoseconds())/960/1e3, l.name+"-replay-cpu-µs/"+kind)
		}
	}
	for _, kind := range []string{"order", "ticket"} {
		if f, r := per(fsmPages[kind]), per(pages[kind][0]); r < 0.95*f || r > 1.05*f {
			b.Fatalf("the replay of the store's layout wrote %.2f pages per %s, the FSM %.2f: the replay is not faithful", r, kind, f)
		}
	}
}

// orderLayoutReplays is how many times BenchmarkOrderLayouts replays the
// series into each layout.
const orderLayoutReplays = 7

// medianDuration is the median of ds (the upper one of an even count).
func medianDuration(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
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

// leaveOut places the keys of buckets nowhere (the replay skips them); the
// rest as they are.
func leaveOut(buckets ...string) func(bucket, key string) (string, string) {
	out := map[string]bool{}
	for _, b := range buckets {
		out[b] = true
	}
	return func(bucket, key string) (string, string) {
		if out[bucket] {
			return "", ""
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
	// them all), placed (leaveOut's not made).
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range store.AllBuckets {
			placed, _ := l.place(string(b), "")
			if placed == "" {
				continue
			}
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
			if name == "" {
				continue // leaveOut's
			}
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
