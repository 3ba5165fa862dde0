package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/hostplane/hostplane/pkg/api"
)

// p64In is one operation on a domain's child name server: a read of the
// domain (addr "" and del false), a PUT of addr, or a DELETE.
type p64In struct {
	addr string
	del  bool
}

func (in p64In) read() bool { return in.addr == "" && !in.del }

// What a write's answer and the change it opened say happened.
const (
	p64Applied  = "applied"  // a 202 whose change ended applied
	p64Failed   = "failed"   // a 202 whose change ended failed: nothing changed
	p64Same     = "same"     // a 200: the host has these addresses already
	p64Absent   = "absent"   // a DELETE's 404: the domain has no such host
	p64Pending  = "pending"  // a 409 change_pending: another change is open
	p64Unknown  = "unknown"  // no definite answer: it may or may not have applied
	p64Readback = "readback" // a read: what the domain lists
)

// p64Out is an operation's outcome (one of the kinds above) and, for a
// read, the host's addresses ("" absent).
type p64Out struct {
	kind, addr string
}

// p64HostModel is one child name server: absent ("") or its address,
// init at first (what the run began with). A PUT
// whose change applied sets it, a DELETE's clears it (a host it had); a 200
// says it already had the address, a 404 that it was absent; a 409 or a
// failed change changes nothing; an outcome unknown may have applied or
// not; a read returns it.
func p64HostModel(init string) porcupine.NondeterministicModel {
	return porcupine.NondeterministicModel{
		Init: func() []any { return []any{init} },
		Step: func(state, input, output any) []any {
			st, in, out := state.(string), input.(p64In), output.(p64Out)
			next := in.addr // a PUT's, or a DELETE's ""
			switch {
			case in.read():
				if out.addr == st {
					return []any{st}
				}
			case out.kind == p64Applied && (!in.del || st != ""):
				return []any{next}
			case out.kind == p64Same && !in.del && st == in.addr, out.kind == p64Absent && in.del && st == "",
				out.kind == p64Failed, out.kind == p64Pending:
				return []any{st}
			case out.kind == p64Unknown:
				return []any{st, next}
			}
			return nil
		},
		DescribeOperation: func(input, output any) string {
			in, out := input.(p64In), output.(p64Out)
			switch {
			case in.read():
				return fmt.Sprintf("read() -> %q", out.addr)
			case in.del:
				return "delete() -> " + out.kind
			}
			return fmt.Sprintf("put(%s) -> %s", in.addr, out.kind)
		},
		DescribeState: func(state any) string { return fmt.Sprintf("%q", state) },
	}
}

// p64Lin is one run's history of a domain's host ns1 driven through the
// three coordinators.
type p64Lin struct {
	r      *rig
	t      *testing.T
	id     string // the domain
	host   string
	start  time.Time
	mu     sync.Mutex
	hist   []porcupine.Operation
	down   atomic.Int64 // the coordinator a fault has taken (-1 none)
	counts map[string]int
	hc     *http.Client
}

func (l *p64Lin) now() int64 { return int64(time.Since(l.start)) }

func (l *p64Lin) add(client int, in p64In, out p64Out, call, ret int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.hist = append(l.hist, porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call, Return: ret})
	if in.read() {
		l.counts["read"]++
	} else {
		l.counts[out.kind]++
	}
}

// do sends one request to coordinator i as A, with this probe's own
// client; err is a transport error (the coordinator is down or cut).
func (l *p64Lin) do(i int, method, path, idem, body string) (p58Reply, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(l.r.ctx, method, l.r.c.URL(i)+path, rd)
	if err != nil {
		return p58Reply{}, err
	}
	req.Header.Set("Authorization", "Bearer "+l.r.keyA)
	if idem != "" {
		req.Header.Set("Idempotency-Key", idem)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := l.hc.Do(req)
	if err != nil {
		return p58Reply{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return p58Reply{}, err
	}
	return p58Reply{status: resp.StatusCode, header: resp.Header, body: raw, what: method + " " + path}, nil
}

// read is a GET of the domain through coordinator i (default
// consistency); ok false when it has no answer to record.
func (l *p64Lin) read(client, i int) (p64Out, bool) {
	rep, err := l.do(i, "GET", "/v1/domains/"+l.id, "", "")
	if err != nil || rep.status == 503 {
		return p64Out{}, false
	}
	var d api.Domain
	if rep.status != 200 || json.Unmarshal(rep.body, &d) != nil {
		l.t.Errorf("client %d: %s", client, rep)
		return p64Out{}, false
	}
	return p64Out{kind: p64Readback, addr: strings.Join(p64HostsOf(d)[l.host], ",")}, true
}

// write sends a PUT of addr (or a DELETE) with one Idempotency-Key, to
// coordinator i and, while the answer is not definite (a transport error,
// a 503, a 409 idempotency_key_in_flight), again to the next one, for up
// to 30 s; a 202's change is then followed (GETs through any live
// coordinator) until it ends. The operation returns when its outcome is
// known.
func (l *p64Lin) write(client, i int, in p64In, idem string) {
	call := l.now()
	method, body := "PUT", fmt.Sprintf(`{"addresses":[%q]}`, in.addr)
	if in.del {
		method, body = "DELETE", ""
	}
	path := "/v1/domains/" + l.id + "/hosts/" + l.host
	var rep p58Reply
	definite := false
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); i = (i + 1) % l.r.c.Len() {
		var err error
		rep, err = l.do(i, method, path, idem, body)
		if err == nil && rep.status != 503 && rep.code() != "idempotency_key_in_flight" {
			definite = true
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	out := p64Out{kind: p64Unknown}
	switch {
	case !definite:
	case rep.status == 200:
		out.kind = p64Same
	case rep.status == 404 && in.del:
		out.kind = p64Absent
	case rep.status == 409 && rep.code() == "change_pending":
		out.kind = p64Pending
	case rep.status == 202:
		var d api.Domain
		if json.Unmarshal(rep.body, &d) != nil || d.Change == nil {
			l.t.Errorf("client %d: a 202 without its change: %s", client, rep)
			break
		}
		var ended bool
		out.kind, ended = l.follow(d.Change.ID)
		definite = ended
	default:
		l.t.Errorf("client %d: %s", client, rep)
		return
	}
	ret := l.now()
	if !definite {
		ret = 1 << 62 // it may apply at any time after
	}
	l.add(client, in, out, call, ret)
}

// follow reads the domain until the change op has ended (ended): applied
// or failed, or unknown when another change has replaced it first (which
// of the two it was, a read no longer tells; but it had ended before the
// other was opened: one change at a time). ended false: the change did
// not end within a minute.
func (l *p64Lin) follow(op string) (kind string, ended bool) {
	for end, i := time.Now().Add(60*time.Second), 0; time.Now().Before(end); i++ {
		rep, err := l.do(i%l.r.c.Len(), "GET", "/v1/domains/"+l.id, "", "")
		var d api.Domain
		if err != nil || rep.status != 200 || json.Unmarshal(rep.body, &d) != nil || d.Change == nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		switch {
		case d.Change.ID != op:
			return p64Unknown, true
		case d.Change.Status == api.ChangeApplied:
			return p64Applied, true
		case d.Change.Status == api.ChangeFailed:
			l.t.Logf("change %s failed: %s", op, d.Change.Reason)
			return p64Failed, true
		}
		time.Sleep(20 * time.Millisecond)
	}
	l.t.Errorf("change %s did not end within a minute", op)
	return p64Unknown, false
}

// p64RunHostHistory drives 6 clients (two a coordinator; one of each pair
// writes: PUT of an address of its own, or DELETE, each with an
// Idempotency-Key; the other reads) on A's domain's ns1 for dur while
// fault is applied to the leader 3 s in and undone 4 s later, then checks
// the history with porcupine. It returns the history and the host's
// address it began with.
func p64RunHostHistory(t *testing.T, r *rig, id, host string, fault string, dur time.Duration) ([]porcupine.Operation, string) {
	l := &p64Lin{r: r, t: t, id: id, host: host, start: time.Now(), counts: map[string]int{},
		hc: &http.Client{Timeout: 5 * time.Second}}
	init := strings.Join(p64HostsOf(p64Ended(t, r, 0, r.keyA, id))[host], ",")
	l.down.Store(-1)
	defer l.hc.CloseIdleConnections()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				i := c % r.c.Len()
				if d := int(l.down.Load()); d == i {
					i = (i + 1) % r.c.Len()
				}
				if c >= 3 {
					call := l.now()
					if out, ok := l.read(c, i); ok {
						l.add(c, p64In{}, out, call, l.now())
					}
					time.Sleep(30 * time.Millisecond)
					continue
				}
				in := p64In{addr: fmt.Sprintf("8.8.%d.%d", c+1, 1+n%250)}
				if n%3 == 2 {
					in = p64In{del: true}
				}
				l.write(c, i, in, fmt.Sprintf("p64-lin-%s-%d-%d", fault, c, n))
				time.Sleep(100 * time.Millisecond)
			}
		}()
	}
	time.Sleep(3 * time.Second)
	ld, err := r.c.LeaderIndex(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	l.down.Store(int64(ld))
	t.Logf("%s of coordinator %d (the leader) at %v", fault, ld, time.Duration(l.now()))
	switch fault {
	case "kill":
		r.c.Kill(ld)
		time.Sleep(4 * time.Second)
		r.c.Restart(ld)
		r.c.WaitReady(ld, 30*time.Second)
	case "pause":
		resume := r.pauseLeader(ld)
		time.Sleep(4 * time.Second)
		resume()
	}
	l.down.Store(-1)
	t.Logf("coordinator %d back at %v", ld, time.Duration(l.now()))
	time.Sleep(time.Until(l.start.Add(dur)))
	close(stop)
	wg.Wait()
	// A last read through each coordinator.
	for i := range r.c.Len() {
		call := l.now()
		if out, ok := l.read(10+i, i); ok {
			l.add(10+i, p64In{}, out, call, l.now())
		}
	}
	t.Logf("%s: %d operations: %v", fault, len(l.hist), l.counts)
	if l.counts[p64Applied] < 3 || l.counts["read"] < 20 {
		t.Errorf("%s: too few applied writes or reads to judge: %v", fault, l.counts)
	}
	return l.hist, init
}

// p64Check says whether porcupine finds hist linearizable against
// p64HostModel(init); when that is not want, it writes the visualization
// and the history (by call) to $HOSTPLANE_TEST_ARTIFACTS (or the temporary
// directory), as tests/robustness does, and names them.
func p64Check(t *testing.T, name, init string, hist []porcupine.Operation, want bool) bool {
	t.Helper()
	nm := p64HostModel(init)
	model := nm.ToModel()
	res, info := porcupine.CheckOperationsVerbose(model, hist, time.Minute)
	if got := res == porcupine.Ok; got == want {
		return got
	}
	dir := os.Getenv("HOSTPLANE_TEST_ARTIFACTS")
	if dir == "" {
		dir = os.TempDir()
	}
	path := filepath.Join(dir, fmt.Sprintf("hostplane-probe64-%s-%d", name, time.Now().Unix()))
	if err := porcupine.VisualizePath(model, info, path+".html"); err != nil {
		t.Logf("visualization: %v", err)
	}
	var lines []string
	for _, op := range slices.SortedFunc(slices.Values(hist), func(a, b porcupine.Operation) int { return int(a.Call - b.Call) }) {
		lines = append(lines, fmt.Sprintf("%12.6f %12.6f c%-2d %s", float64(op.Call)/1e9, float64(op.Return)/1e9, op.ClientId, model.DescribeOperation(op.Input, op.Output)))
	}
	_ = os.WriteFile(path+".txt", []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	t.Logf("%s: porcupine says %v; visualization: %s.html, history: %s.txt", name, res, path, path)
	return res == porcupine.Ok
}

// p64Corrupt is hist with one stale read: the last read that began after
// two PUTs had applied one after the other (the second sent after the
// first's change ended) is made to show the first one's address, which the
// second had overwritten before the read was sent.
func p64Corrupt(hist []porcupine.Operation) ([]porcupine.Operation, error) {
	out := slices.Clone(hist)
	var puts []porcupine.Operation
	for _, op := range out {
		if in := op.Input.(p64In); !in.read() && !in.del && op.Output.(p64Out).kind == p64Applied {
			puts = append(puts, op)
		}
	}
	for k := len(out) - 1; k >= 0; k-- {
		if !out[k].Input.(p64In).read() {
			continue
		}
		for _, w1 := range puts {
			for _, w2 := range puts {
				if w2.Call > w1.Return && w2.Return < out[k].Call && w1.Input.(p64In).addr != out[k].Output.(p64Out).addr {
					o := out[k].Output.(p64Out)
					o.addr = w1.Input.(p64In).addr
					out[k].Output = o
					return out, nil
				}
			}
		}
	}
	return nil, errors.New("no read began after two PUTs applied one after the other")
}

// TestProbe64HostSetLinearizableAcrossLeaderFaults: one domain's child
// name server, PUT (each client its own addresses), DELETEd and read
// (GET /v1/domains/:id, default consistency) by six clients through all
// three coordinators, while the leader is SIGKILLed and restarted (one run)
// and SIGSTOPped and resumed (another): a write is an operation from its
// first send to the end of the change its 202 opened (followed by reads),
// a 200 says the host had the address, a DELETE's 404 that it had none, a
// 409 change_pending changes nothing, and one with no definite answer may
// have applied at any time after it began. Porcupine finds a
// linearization of each history; the same history with one read changed
// to an address a later applied PUT had overwritten before it was sent is
// not linearizable (the check bites). After each run the registry's host
// (host:info over EPP) is what the domain lists.
func TestProbe64HostSetLinearizableAcrossLeaderFaults(t *testing.T) {
	r := newRig(t, "--registrar-epp-host-objects", "--rate-limit", "100000", "--ip-rate-limit", "1000000")
	r.c.Credit(r.ctx, r.accA.ID, 10*domainPrice)
	const dom = "p64-lin.test"
	id := p64Order(t, r, r.keyA, dom)
	host := "ns1." + dom
	for _, fault := range []string{"kill", "pause"} {
		hist, init := p64RunHostHistory(t, r, id, host, fault, 16*time.Second)
		if !p64Check(t, fault, init, hist, true) {
			t.Errorf("%s: the history of %s is not linearizable", fault, host)
		}
		if bad, err := p64Corrupt(hist); err != nil {
			t.Errorf("%s: %v", fault, err)
		} else if p64Check(t, fault+"-corrupted", init, bad, false) {
			t.Errorf("%s: a history with a stale read passes the check", fault)
		}
		d := p64Ended(t, r, 0, r.keyA, id)
		if mine, glue := p64HostsOf(d)[host], p64Glue(t, r.reg, host); !slices.Equal(mine, glue) {
			t.Errorf("%s: the API says %s has %v, the registry %v", fault, host, mine, glue)
		}
	}
}
