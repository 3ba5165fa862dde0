package robustness

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// A domain's name servers as a register, checked from outside: a domain
// registered at a real EPP registry (tests/eppd), whose name servers
// clients change (PATCH /v1/domains/{id} {nameservers}, each change with its
// Idempotency-Key, sent again with it on an unknown outcome, possibly at
// another coordinator) and read (GET /v1/domains/{id}, default consistency)
// through all three coordinators while the leader is paused, then another
// leader killed. A change is a registry round trip between two Raft
// commands (recorded pending, then applied; README "PATCH /v1/domains/:id"),
// one at a time (409 change_pending), so this register's writes take the
// path the webhook's description (register_test.go) never does. Value N is
// the pair ns1.vN.example.net, ns2.vN.example.net; 0 the pair it was
// ordered with.

// domainNS is the name servers of register value n.
func domainNS(n int) []string {
	return []string{fmt.Sprintf("ns1.v%d.example.net", n), fmt.Sprintf("ns2.v%d.example.net", n)}
}

// domainValue is the register value name servers ns stand for; ok is false
// for a pair that is none of domainNS's.
func domainValue(ns []string) (int, bool) {
	if len(ns) != 2 {
		return 0, false
	}
	s := slices.Sorted(slices.Values(ns))
	v, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(s[0], "ns1.v"), ".example.net"))
	if err != nil || v < 0 || !slices.Equal(s, domainNS(v)) {
		return 0, false
	}
	return v, true
}

// domainStats describes a run: of the changes answered 202 (pending),
// those followed to their end applied (endApplied) or failed (endFailed).
type domainStats struct {
	reads, failedReads, writes, applied, pending, busy, failed int
	endApplied, endFailed                                      int
	// followed are the values of the changes answered 202 that a read
	// showed applied (endApplied of them).
	followed map[int]bool
	retryCounts
}

// domainRig is a cluster whose coordinators use a registry, and the
// domain lin-ns.test its account registered there.
type domainRig struct {
	*cluster
	reg    *framework.EPPD
	domain api.Domain
}

const domainRegName = "lin-ns.test"

// newDomainRig starts the registry, three coordinators using it, a .test
// product, and registers lin-ns.test (name servers domainNS(0)) for the
// cluster's account.
func newDomainRig(t *testing.T, name string) *domainRig {
	t.Helper()
	if testing.Short() {
		t.Skip("runs three coordinator processes and a registry")
	}
	reg := framework.StartEPPD(t, framework.EPPDOptions{TLDs: []string{"test"}})
	epp := reg.CoordinatorFlags()
	c := startCluster(t, name, clusterOptions{scopes: api.AllScopes, place: func(o *framework.ProcessOptions) {
		o.Extra = func(int, *framework.CoordinatorProcess) []string { return epp }
	}})
	r := &domainRig{cluster: c, reg: reg}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	if _, err := c.procs[0].Admin().CreateProduct(ctx, "test-lin", api.ProductRequest{Category: api.ProductDomain, NameEn: ".test",
		Tld: "test", RetailYearlyUsdCents: 1000}); err != nil {
		t.Fatal(err)
	}
	c.pc.Credit(ctx, c.account, 5000)
	ld := c.pc.WaitLeader(20 * time.Second)
	d, err := c.api(c.procs[ld]).RegisterDomain(ctx, api.DomainOrderRequest{Name: domainRegName, Years: 1, Nameservers: domainNS(0),
		Contact: api.DomainContact{Name: "Ada Lovelace", Street: []string{"1 Analytical St"}, City: "Istanbul", CC: "TR", Email: "ada@example.com"}}, "lin-ns-order")
	if err != nil {
		t.Fatal(err)
	}
	// Every coordinator serves the active domain with value 0 before the
	// clocks start.
	for _, p := range c.procs {
		r.domain = framework.PollFor(t, p.ID+" serving "+domainRegName, 30*time.Second, 50*time.Millisecond,
			func(ctx context.Context) (api.Domain, error) { return c.api(p).Domain(ctx, d.ID) },
			func(x api.Domain) bool {
				v, ok := domainValue(x.Nameservers)
				return x.Status == api.DomainActive && ok && v == 0
			})
	}
	return r
}

// runDomain drives 12 clients for dur, 4 of which also change the name
// servers, while f happens; after dur every client finishes the change it
// has begun (retrying for up to 20 s), then every coordinator reads the
// domain once more.
func runDomain(t *testing.T, r *domainRig, f faults, dur time.Duration) ([]porcupine.Operation, domainStats) {
	const clients, writers = 12, 4
	run := newLinRun()
	s := domainStats{followed: map[int]bool{}}
	// The first three changes' registry answers are held 4 s, longer than a
	// client's patience (3 s): their clients hang up and send the key
	// again, and from level 15 the send whose client went away closes the
	// key's answer window at once, so every run has changes answered 202
	// and followed to their end (without it 1-4 were answered 202 per run,
	// not always one followed to its end applied).
	r.reg.DelayNextOn("domain:update", 3, 4*time.Second)
	read := func(ctx context.Context, p *framework.CoordinatorProcess, client int, meta string) error {
		call := run.now()
		d, err := r.api(p).Domain(ctx, r.domain.ID)
		ret := run.now()
		if err != nil {
			return err
		}
		v, ok := domainValue(d.Nameservers)
		if !ok || d.Status != api.DomainActive {
			t.Errorf("%s answered %s %s with name servers %v", p.ID, d.Name, d.Status, d.Nameservers)
			return nil
		}
		run.add(porcupine.Operation{ClientId: client, Input: regInput{}, Call: call, Output: v, Return: ret, Metadata: meta})
		return nil
	}
	s.reads, s.failedReads = run.drive(t, r.cluster, f, clients, dur, func(ctx context.Context, i int, rng *rand.Rand, p *framework.CoordinatorProcess) {
		if i >= writers || rng.IntN(2) != 0 {
			run.reads.read(ctx, read, p, i)
			return
		}
		v := int(run.next.Add(1))
		key := fmt.Sprintf("lin-ns-%d", v)
		var applied, busy, failed, pending bool
		var chID string // the change a 202 answered pending
		var last string // the last attempt's answer, for a change whose outcome stays unknown
		call, ret, attempts := r.untilDefinite(run.recorder, rng, r.index(p), run.giveUp, func(ctx context.Context, p *framework.CoordinatorProcess) try {
			d, err := r.api(p).UpdateDomain(ctx, r.domain.ID, api.DomainUpdateRequest{Nameservers: domainNS(v)}, key)
			if err == nil {
				last = fmt.Sprintf("%s: 2xx with change %+v", p.ID, d.Change)
				if d.Change == nil || d.Change.Status == api.ChangePending {
					// 202: recorded, the registry not answered before the
					// key's answer was decided (the first send's wait ran
					// out, or its client hung up): every replay answers
					// the same 202, and the change may still apply, or
					// fail, at any time: the client follows it to its end.
					pending = true
					if d.Change != nil {
						chID = d.Change.ID
					}
					return try{done: true}
				}
				if d.Change.Status != api.ChangeApplied || !slices.Equal(d.Change.Nameservers, domainNS(v)) {
					t.Errorf("change %s via %s answered 200 with %+v", key, p.ID, d.Change)
				}
				applied = true
				return try{done: true}
			}
			st, code := statusOf(err)
			last = fmt.Sprintf("%s: %v", p.ID, err)
			switch {
			case st == 409 && code == "change_pending":
				busy = true // another change in flight: nothing changed
				return try{done: true}
			case st == 409 && code == "change_failed":
				failed = true // the registry refused: set back, nothing changed
				return try{done: true}
			case unknownOutcome(st, code):
				return try{status: st}
			}
			t.Errorf("change %s via %s: %v", key, p.ID, err)
			return try{done: true, status: st}
		})
		var endApplied, endFailed bool
		if pending {
			// The change took effect, if it did, between its call and
			// the read that first showed it ended: that read's return is
			// its return. A change whose end no read saw stays of unknown
			// outcome; one the registry refused changed nothing.
			ret = pendingForever
			if at, ok, seen := r.follow(run.recorder, r.index(p)+1, chID, domainNS(v), run.giveUp); seen {
				endApplied, endFailed, ret = ok, !ok, at
			}
		}
		run.addWrite(i, regInput{write: true, value: v}, 0, applied || endApplied, call, ret, p, attempts)
		if ret == pendingForever && !pending {
			t.Logf("change %s: outcome unknown after %d attempts from %.1fs; the last answered %s", key, attempts, time.Duration(call).Seconds(), last)
		}
		run.count(func() {
			s.writes++
			s.count(ret, attempts)
			switch {
			case applied:
				s.applied++
			case pending:
				s.pending++
				if endApplied {
					s.endApplied++
					s.followed[v] = true
				} else if endFailed {
					s.endFailed++
				}
			case busy:
				s.busy++
			case failed:
				s.failed++
			}
		})
	}, read)
	return run.history(), s
}

// follow reads the domain (GET, default consistency) on each coordinator
// in turn from first until change chID (to name servers ns) has ended, or
// giveUp passes: seen when a read showed its end, applied (ok) or failed,
// at that read's return on rec's clock. Applied is a read showing ns, which
// no other change sets (the next change may already be pending; until it
// is applied the domain keeps ns); failed is a read showing chID failed. A
// read showing a newer change, and not ns, means chID ended unseen (one
// change at a time): its outcome stays unknown (seen false).
func (r *domainRig) follow(rec *recorder, first int, chID string, ns []string, giveUp time.Time) (at int64, ok, seen bool) {
	if chID == "" {
		return 0, false, false
	}
	for i := first; time.Now().Before(giveUp); i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		d, err := r.api(r.procs[i%len(r.procs)]).Domain(ctx, r.domain.ID)
		cancel()
		at := rec.now()
		switch {
		case err != nil || d.Change == nil:
		case slices.Equal(slices.Sorted(slices.Values(d.Nameservers)), ns):
			return at, true, true
		case d.Change.ID == chID && d.Change.Status == api.ChangeFailed:
			return at, false, true
		case d.Change.ID > chID:
			return 0, false, false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 0, false, false
}

// TestLinearizableDomainNameserversLeaderPausedAndKilled: a domain's name
// servers, changed and read through all three coordinators while the
// leader is SIGSTOPped for 6 s (and resumed), then the next leader
// SIGKILLed (and restarted 4 s later): the history must be linearizable for
// a register, every change acknowledged 200 seen by every read that began
// after it and none undone, and the registry must end holding what the API
// shows. A change answered 202 (pending) is followed by its client (GET on
// any coordinator) to its end, and checked as applied from its call to the
// read that saw it applied (or left out, refused). A copy of the history with one read made stale must be judged
// illegal (the checker bites), and so must a copy with a change answered
// 202 recorded as applied at its call (the follow path bites).
func TestLinearizableDomainNameserversLeaderPausedAndKilled(t *testing.T) {
	start := time.Now()
	r := newDomainRig(t, "domain-ns")
	t.Logf("cluster, registry and %s ready in %.1fs", domainRegName, time.Since(start).Seconds())
	load := time.Now()
	hist, s := runDomain(t, r, faultRounds{faultPause, faultKill}, 25*time.Second)
	t.Logf("%d operations in %.1fs: %d reads (%d failed), %d changes (%d applied, %d answered 202 pending (followed to their end: %d applied, %d failed), %d refused change_pending, %d change_failed, %d unknown, %d retried)",
		len(hist), time.Since(load).Seconds(), s.reads, s.failedReads, s.writes, s.applied, s.pending, s.endApplied, s.endFailed, s.busy, s.failed, s.unknown, s.retried)
	if s.reads < 100 || s.applied < 20 {
		t.Errorf("too little happened to check (%d reads, %d changes applied)", s.reads, s.applied)
	}
	checked, dropped := dropUnobserved(hist)
	t.Logf("%d changes of unknown outcome never observed, left out of the check", dropped)
	checkBites(t, registerModel, "domain-ns", checked, "a stale read", corrupt)
	// The follow path bites too: the same history with a change answered
	// 202 recorded as applied at its call, not at the read that first
	// showed it, is illegal (a read after its call still showed the value
	// before it, written by a change that had ended before its call).
	if s.endApplied == 0 {
		t.Errorf("no change answered 202 was followed to its end applied: the follow path went unchecked")
	} else if bad, ok := corruptFollowed(checked, s.followed); !ok {
		t.Errorf("no change answered 202 and followed to its end had a read of the value before it while pending")
	} else if res := porcupine.CheckOperationsTimeout(registerModel, bad, checkTimeout); res != porcupine.Illegal {
		t.Errorf("domain-ns: a history with a change answered 202 recorded as applied at its call was judged %s, want Illegal", res)
	}

	// Once no change is in flight, the registry holds the name servers the
	// API shows.
	ld := r.pc.WaitLeader(10 * time.Second)
	d := framework.PollFor(t, "no change of "+domainRegName+" in flight", 20*time.Second, 100*time.Millisecond,
		func(ctx context.Context) (api.Domain, error) { return r.api(r.procs[ld]).Domain(ctx, r.domain.ID) },
		func(d api.Domain) bool { return d.Change == nil || d.Change.Status != api.ChangePending })
	if rd := r.reg.Domain(domainRegName); rd == nil || !slices.Equal(slices.Sorted(slices.Values(rd.NS)), slices.Sorted(slices.Values(d.Nameservers))) {
		t.Errorf("the registry holds %+v, the API shows name servers %v", rd, d.Nameservers)
	}
	t.Logf("whole run %.1fs", time.Since(start).Seconds())
}

// corruptFollowed returns a copy of hist in which a change answered 202 and
// followed to its end applied (its value in followed) returns just after
// its call,
// as a client that took the 202 for "applied" would record it, where a read
// that began after that call, and ended before the change was seen
// applied, returned the value before it: written by a change that returned
// before the 202'd change's call (or the domain's first value, 0, which no
// change writes). That read follows the change and shows an older value
// that no write can have set again: illegal. ok is false if hist holds no
// such pair.
func corruptFollowed(hist []porcupine.Operation, followed map[int]bool) ([]porcupine.Operation, bool) {
	returned := map[int]int64{} // a change's value: its return
	for _, op := range hist {
		if in := op.Input.(regInput); in.write {
			returned[in.value] = op.Return
		}
	}
	for wi, w := range hist {
		in := w.Input.(regInput)
		if !in.write || !followed[in.value] {
			continue
		}
		for _, r := range hist {
			if r.Input.(regInput).write || r.Call <= w.Call+1 || r.Return >= w.Return {
				continue
			}
			u := r.Output.(int)
			if at, ok := returned[u]; u == in.value || u != 0 && (!ok || at >= w.Call) {
				continue
			}
			out := append([]porcupine.Operation(nil), hist...)
			out[wi].Return = w.Call + 1
			out[wi].Metadata = fmt.Sprintf("CORRUPTED: really seen applied at %d", w.Return)
			return out, true
		}
	}
	return nil, false
}
