package ipam

import (
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func mustNew(t testing.TB, p Pool) *Allocator {
	t.Helper()
	a, err := New(p, State{})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func allocAll(t *testing.T, a *Allocator, now time.Time) []string {
	t.Helper()
	var got []string
	for {
		u, err := a.Allocate(now)
		if errors.Is(err, ErrExhausted) {
			return got
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, u.String())
	}
}

func TestAllocateSkipsAndExhausts(t *testing.T) {
	cases := []struct {
		name string
		pool Pool
		want []string
	}{
		{"v4 /29 with excludes", Pool{Name: "a", CIDR: "198.51.100.0/29", Gateway: "198.51.100.1",
			Exclude: []string{"198.51.100.3", "198.51.100.4/31"}},
			[]string{"198.51.100.2/32", "198.51.100.6/32"}},
		{"v4 gateway last host", Pool{Name: "a", CIDR: "198.51.100.0/30", Gateway: "198.51.100.2"},
			[]string{"198.51.100.1/32"}},
		{"v4 all excluded", Pool{Name: "a", CIDR: "198.51.100.0/30", Gateway: "198.51.100.2",
			Exclude: []string{"198.51.100.0/30"}}, nil},
		{"v6 /62 of /64s, gateway in first", Pool{Name: "a", CIDR: "2001:db8::/62", Gateway: "2001:db8::1",
			Exclude: []string{"2001:db8:0:2::5"}},
			[]string{"2001:db8:0:1::/64", "2001:db8:0:3::/64"}},
		{"v6 link-local gateway", Pool{Name: "a", CIDR: "2001:db8::/63", Gateway: "fe80::1"},
			[]string{"2001:db8::/64", "2001:db8:0:1::/64"}},
		{"v6 /128s", Pool{Name: "a", CIDR: "2001:db8::/126", Gateway: "2001:db8::", PrefixLen: 128},
			[]string{"2001:db8::1/128", "2001:db8::2/128", "2001:db8::3/128"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := mustNew(t, c.pool)
			got := allocAll(t, a, t0)
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
			u := a.Usage(t0)
			if u.Total != uint64(len(c.want)) || u.Used != u.Total || u.Free != 0 {
				t.Fatalf("usage %+v", u)
			}
		})
	}
}

func TestQuarantine(t *testing.T) {
	a := mustNew(t, Pool{Name: "a", CIDR: "198.51.100.0/29", Gateway: "198.51.100.1"})
	x, _ := a.Allocate(t0) // .2
	y, _ := a.Allocate(t0) // .3
	if err := a.Release(x.Addr(), t0, 0); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(x.Addr(), t0, 0); !errors.Is(err, ErrNotAllocated) {
		t.Fatalf("double release: %v", err)
	}
	if err := a.Release(y.Addr(), t0, time.Hour); err != nil {
		t.Fatal(err)
	}
	if u := a.Usage(t0); u != (Usage{Total: 5, Used: 0, Quarantined: 2, Free: 3}) {
		t.Fatalf("usage %+v", u)
	}
	// Before either quarantine ends the released ones are skipped.
	got := allocAll(t, a, t0.Add(59*time.Minute))
	if want := []string{"198.51.100.4/32", "198.51.100.5/32", "198.51.100.6/32"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("inside quarantine: got %v, want %v", got, want)
	}
	if err := a.Reserve(y.Addr(), t0); !errors.Is(err, ErrQuarantined) {
		t.Fatalf("reserve of quarantined: %v", err)
	}
	// y's hour is over (exactly at its end); x's default 24 h is not.
	got = allocAll(t, a, t0.Add(time.Hour))
	if want := []string{"198.51.100.3/32"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after 1h: got %v, want %v", got, want)
	}
	got = allocAll(t, a, t0.Add(DefaultQuarantine-time.Second))
	if len(got) != 0 {
		t.Fatalf("before 24h: got %v", got)
	}
	got = allocAll(t, a, t0.Add(DefaultQuarantine))
	if want := []string{"198.51.100.2/32"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after 24h: got %v, want %v", got, want)
	}
	// A negative quarantine frees at once.
	if err := a.Release(ip("198.51.100.5"), t0, -1); err != nil {
		t.Fatal(err)
	}
	if u, _ := a.Allocate(t0); u.String() != "198.51.100.5/32" {
		t.Fatalf("immediate reuse: got %s", u)
	}
}

func TestReserveUnreserve(t *testing.T) {
	a := mustNew(t, Pool{Name: "a", CIDR: "198.51.100.0/28", Gateway: "198.51.100.1", Exclude: []string{"198.51.100.8"}})
	cases := []struct {
		op   string
		addr string
		want error
	}{
		{"reserve", "198.51.100.2", nil},
		{"reserve", "198.51.100.2", ErrInUse},
		{"reserve", "198.51.100.0", ErrUnavailable},
		{"reserve", "198.51.100.1", ErrUnavailable},
		{"reserve", "198.51.100.15", ErrUnavailable},
		{"reserve", "198.51.100.8", ErrUnavailable},
		{"reserve", "198.51.101.2", ErrNotInPool},
		{"reserve", "2001:db8::1", ErrNotInPool},
		{"reserve", "198.51.100.4", nil},
		{"unreserve", "198.51.100.3", ErrNotAllocated},
		{"unreserve", "198.51.100.8", ErrNotAllocated},
		{"unreserve", "198.51.101.3", ErrNotInPool},
		{"unreserve", "198.51.100.4", nil},
		{"unreserve", "198.51.100.4", ErrNotAllocated},
		{"release", "198.51.100.9", ErrNotAllocated},
	}
	for _, c := range cases {
		var err error
		switch c.op {
		case "reserve":
			err = a.Reserve(ip(c.addr), t0)
		case "unreserve":
			err = a.Unreserve(ip(c.addr))
		case "release":
			err = a.Release(ip(c.addr), t0, 0)
		}
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Fatalf("%s %s: got %v, want %v", c.op, c.addr, err, c.want)
		}
	}
	// .2 reserved, .3 the lowest free.
	if u, _ := a.Allocate(t0); u.String() != "198.51.100.3/32" {
		t.Fatalf("got %s", u)
	}
	// Unreserve lifts a quarantine.
	if err := a.Release(ip("198.51.100.3"), t0, 0); err != nil {
		t.Fatal(err)
	}
	if err := a.Unreserve(ip("198.51.100.3")); err != nil {
		t.Fatal(err)
	}
	if u, _ := a.Allocate(t0); u.String() != "198.51.100.3/32" {
		t.Fatalf("after unreserve of quarantined: got %s", u)
	}
	if u := a.Usage(t0); u != (Usage{Total: 12, Used: 2, Quarantined: 0, Free: 10}) {
		t.Fatalf("usage %+v", u)
	}
}

func TestIPv6PrefixesDistinctInside(t *testing.T) {
	p := Pool{Name: "v6", CIDR: "2001:db8:100::/48", Gateway: "fe80::1", Exclude: []string{"2001:db8:100:2::/63"}}
	a := mustNew(t, p)
	parent := netip.MustParsePrefix(p.CIDR)
	seen := map[netip.Prefix]bool{}
	for i := 0; i < 5000; i++ {
		u, err := a.Allocate(t0)
		if err != nil {
			t.Fatal(err)
		}
		if u.Bits() != 64 || u.Masked() != u || !parent.Contains(u.Addr()) {
			t.Fatalf("%s is not a /64 inside %s", u, parent)
		}
		if seen[u] { // all are /64s: distinct means disjoint
			t.Fatalf("%s handed out twice", u)
		}
		if u.Overlaps(netip.MustParsePrefix("2001:db8:100:2::/63")) {
			t.Fatalf("%s is excluded", u)
		}
		seen[u] = true
	}
	// Any address inside a prefix identifies it.
	if err := a.Release(ip("2001:db8:100:1:dead:beef::1"), t0, -1); err != nil {
		t.Fatal(err)
	}
	if u, _ := a.Allocate(t0); u.String() != "2001:db8:100:1::/64" {
		t.Fatalf("got %s", u)
	}
	if u := a.Usage(t0); u.Total != 65536-2 || u.Used != 5000 {
		t.Fatalf("usage %+v", u)
	}
}

func TestStateRoundTrip(t *testing.T) {
	for _, p := range []Pool{
		{Name: "v4", CIDR: "198.51.100.0/24", Gateway: "198.51.100.1", Exclude: []string{"198.51.100.64/26"}},
		{Name: "v6", CIDR: "2001:db8::/48", Gateway: "2001:db8::1", PrefixLen: 56},
	} {
		a := mustNew(t, p)
		var units []netip.Prefix
		for i := 0; i < 40; i++ {
			u, err := a.Allocate(t0)
			if err != nil {
				t.Fatal(err)
			}
			units = append(units, u)
		}
		for i, u := range units {
			if i%3 == 0 {
				if err := a.Release(u.Addr(), t0.Add(time.Duration(i)*time.Minute), 0); err != nil {
					t.Fatal(err)
				}
			}
		}
		data, err := json.Marshal(a.State())
		if err != nil {
			t.Fatal(err)
		}
		var st State
		if err := json.Unmarshal(data, &st); err != nil {
			t.Fatal(err)
		}
		b, err := New(p, st)
		if err != nil {
			t.Fatal(err)
		}
		data2, _ := json.Marshal(b.State())
		if string(data) != string(data2) {
			t.Fatalf("state changed:\n%s\n%s", data, data2)
		}
		// Both allocators go on identically, including quarantine ends.
		for _, now := range []time.Time{t0, t0.Add(DefaultQuarantine + 10*time.Minute), t0.Add(48 * time.Hour)} {
			for i := 0; i < 20; i++ {
				x, err1 := a.Allocate(now)
				y, err2 := b.Allocate(now)
				if x != y || (err1 == nil) != (err2 == nil) {
					t.Fatalf("diverged at %v: %s %v / %s %v", now, x, err1, y, err2)
				}
			}
			if a.Usage(now) != b.Usage(now) {
				t.Fatalf("usage diverged: %+v %+v", a.Usage(now), b.Usage(now))
			}
		}
	}
}

func TestStateRefused(t *testing.T) {
	p := Pool{Name: "v4", CIDR: "198.51.100.0/24", Gateway: "198.51.100.1", Exclude: []string{"198.51.100.9"}}
	pf := netip.MustParsePrefix
	for _, st := range []State{
		{Used: []netip.Prefix{pf("198.51.101.2/32")}},
		{Used: []netip.Prefix{pf("198.51.100.0/31")}},
		{Used: []netip.Prefix{pf("198.51.100.1/32")}},
		{Used: []netip.Prefix{pf("198.51.100.9/32")}},
		{Used: []netip.Prefix{pf("198.51.100.5/32"), pf("198.51.100.5/32")}},
		{Used: []netip.Prefix{pf("198.51.100.5/32")}, Quarantined: []Quarantined{{Prefix: pf("198.51.100.5/32"), Until: t0}}},
		{Quarantined: []Quarantined{{Until: t0}}},
	} {
		if _, err := New(p, st); err == nil {
			t.Errorf("state %+v accepted", st)
		}
	}
}

// TestNeverTwice is a property test: whatever the interleaving of
// allocations, releases (with and without quarantine), reservations and
// time, no unit is ever held twice, and Usage agrees with a naive model.
func TestNeverTwice(t *testing.T) {
	for _, p := range []Pool{
		{Name: "v4", CIDR: "198.51.100.0/25", Gateway: "198.51.100.1", Exclude: []string{"198.51.100.16/28", "198.51.100.77"}},
		{Name: "v6", CIDR: "2001:db8::/57", Gateway: "2001:db8:0:10::1"},
	} {
		a := mustNew(t, p)
		held := map[netip.Prefix]bool{}
		quar := map[netip.Prefix]time.Time{}
		seed := uint64(12345)
		rnd := func(n int) int { // deterministic LCG, no math/rand
			seed = seed*6364136223846793005 + 1442695040888963407
			return int(seed>>33) % n
		}
		now := t0
		var snap *Snapshot
		for step := 0; step < 20000; step++ {
			now = now.Add(time.Duration(rnd(600)) * time.Second)
			switch r := rnd(10); {
			case r < 6:
				u, err := a.Allocate(now)
				if errors.Is(err, ErrExhausted) {
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				if held[u] {
					t.Fatalf("step %d: %s allocated twice", step, u)
				}
				if until, ok := quar[u]; ok && until.After(now) {
					t.Fatalf("step %d: %s reused in quarantine (until %v, now %v)", step, u, until, now)
				}
				delete(quar, u)
				held[u] = true
			case len(held) > 0:
				var victim netip.Prefix
				k := rnd(len(held))
				for _, u := range a.State().Used { // sorted: deterministic pick
					if k == 0 {
						victim = u
						break
					}
					k--
				}
				q := time.Duration(rnd(3)-1) * time.Hour // -1h (at once), 0 (24h), 1h
				if err := a.Release(victim.Addr(), now, q); err != nil {
					t.Fatal(err)
				}
				delete(held, victim)
				switch {
				case q == 0:
					quar[victim] = now.Add(DefaultQuarantine)
				case q > 0:
					quar[victim] = now.Add(q)
				}
			}
			// A snapshot (made now, or lent the previous one's quarantines)
			// counts the same free units as Usage, now and later.
			snap = a.Snapshot(snap)
			for _, later := range []time.Duration{0, time.Hour, 25 * time.Hour} {
				if got, want := snap.Free(now.Add(later)), a.Usage(now.Add(later)).Free; got != want {
					t.Fatalf("step %d: snapshot counts %d free at +%v, Usage %d", step, got, later, want)
				}
			}
			if step%1000 == 0 {
				var nq uint64
				for _, until := range quar {
					if until.After(now) {
						nq++
					}
				}
				if u := a.Usage(now); u.Used != uint64(len(held)) || u.Quarantined != nq {
					t.Fatalf("step %d: usage %+v, model used %d quarantined %d", step, u, len(held), nq)
				}
			}
		}
	}
}
