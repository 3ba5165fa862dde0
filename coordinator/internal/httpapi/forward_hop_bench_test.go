package httpapi

import (
	"bytes"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/internal/proccpu"
	"github.com/hostplane/hostplane/pkg/api"
)

// BenchmarkForwardedWrite isolates the hop of a write a client sends to a
// follower: clients in this process POST /v1/tickets over loopback TCP
// either to the leader's public handler ("direct") or to a follower's, which
// forwards it on its channel to the same leader ("forwarded"). Both
// coordinators are real APIs (their own single-node Raft and FSM; the
// follower's Raft view says another node leads): the leader authenticates the
// key, counts it, reads the body and records the use as for any write, but
// the route's handler is a stub answering 201 with a ticket's JSON instead of
// proposing (the apply is the same either way and would drown the hop).
// "apply" runs the real handler (a Raft commit per batch, bbolt included).
//
// cpu-us/op is the process's CPU (getrusage) per request, clients included:
// forwarded minus direct is what the hop costs, the figure hostplane-bench's
// spread phase pays per forwarded write on top of the leader phase's (~75-80
// µs there on 2 cores, server CPU only; here the clients' share of the
// difference is in it too, a longer round trip costs them some). The figures
// move with the machine's load: compare builds in interleaved runs.
// frames/write-follower is how many frames the follower's end of the channel
// wrote per system call since it was dialled (the warm-up and the earlier
// rounds of b.N included); frames/read-follower, frames/write-leader and
// frames/read-leader the same of both ends' other calls, since the process
// started. "stub/hop" sends b.N writes each way in turns of a
// few hundred, so that the load's changes fall on both alike, and reports
// hop-cpu-us/op, their difference (its allocs/op are both ways' together).
func BenchmarkForwardedWrite(b *testing.B) {
	for _, mode := range []string{"stub", "apply"} {
		if mode == "apply" && testing.Short() {
			continue
		}
		lead, key := hopLeader(b, mode == "stub")
		fol := hopFollower(b, lead)
		for _, via := range []struct {
			name string
			url  string
		}{{"direct", lead.srv.URL}, {"forwarded", fol.srv.URL}} {
			b.Run(mode+"/"+via.name, func(b *testing.B) {
				benchWrites(b, via.url, key)
				if via.name == "forwarded" {
					fol.a.fwd.mux.mu.Lock() // the channel's goroutines may redial
					c := fol.a.fwd.mux.cur
					fol.a.fwd.mux.mu.Unlock()
					if c != nil {
						f, w := c.w.counts()
						b.ReportMetric(float64(f)/float64(max(w, 1)), "frames/write-follower")
					}
					// Since the process started, both ends' other counts.
					per := func(f, n *atomic.Int64) float64 { return float64(f.Load()) / float64(max(n.Load(), 1)) }
					fc, lc := &fol.a.fwd.counts.follower, &lead.a.fwd.counts.leader
					b.ReportMetric(per(&fc.framesIn, &fc.reads), "frames/read-follower")
					b.ReportMetric(per(&lc.framesOut, &lc.writes), "frames/write-leader")
					b.ReportMetric(per(&lc.framesIn, &lc.reads), "frames/read-leader")
				}
			})
		}
		if mode == "stub" {
			b.Run("stub/hop", func(b *testing.B) { hopWrites(b, lead.srv.URL, fol.srv.URL, key) })
		}
	}
}

// hopClients is how many clients per core send the benchmark's writes.
const hopClients = 16

// hopTurn is how many writes go one way before the next go the other.
const hopTurn = 400

// hopWrites sends b.N writes to the leader (direct) and b.N through the
// follower, in turns of hopTurn with all clients on one way at a time, and
// reports each way's CPU per write and their difference.
func hopWrites(b *testing.B, direct, forwarded, key string) {
	clients := hopClients * runtime.GOMAXPROCS(0)
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	ways := [2]func() error{writer(client, direct, key), writer(client, forwarded, key)}
	turn := func(post func() error, n int) error {
		var left atomic.Int64
		left.Store(int64(n))
		errs := make(chan error, clients)
		for range clients {
			go func() {
				var err error
				for err == nil && left.Add(-1) >= 0 {
					err = post()
				}
				errs <- err
			}()
		}
		var first error
		for range clients {
			if err := <-errs; err != nil && first == nil {
				first = err
			}
		}
		return first
	}
	for _, post := range ways { // warm up, as benchWrites
		if err := turn(post, 4*hopTurn); err != nil {
			b.Fatal(err)
		}
	}
	var cpu [2]time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += hopTurn {
		n := min(hopTurn, b.N-done)
		for i, post := range ways {
			t0 := proccpu.Self()
			if err := turn(post, n); err != nil {
				b.Fatal(err)
			}
			cpu[i] += proccpu.Self() - t0
		}
	}
	b.StopTimer()
	per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 / float64(b.N) }
	b.ReportMetric(per(cpu[0]), "direct-cpu-us/op")
	b.ReportMetric(per(cpu[1]), "forwarded-cpu-us/op")
	b.ReportMetric(per(cpu[1]-cpu[0]), "hop-cpu-us/op")
}

// writer is a client's ticket creation at base with key: an error unless 201.
func writer(client *http.Client, base, key string) func() error {
	body := []byte(`{"subject":"bench","message":"benchmark ticket body","priority":"low"}`)
	return func() error {
		req, _ := http.NewRequest("POST", base+"/v1/tickets", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		got, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusCreated {
			return &hopError{resp.StatusCode, got}
		}
		return nil
	}
}

// hopLeader is the leader of BenchmarkForwardedWrite with a ticket key
// (stub: POST /v1/tickets answers without proposing).
func hopLeader(b testing.TB, stub bool) (*whAPI, string) {
	lead := newWHAPIWith(b, Config{NodeID: "n1", ClusterSecret: "hop-secret", Timeouts: DefaultTimeouts()})
	acc := lead.newAccount()
	_, key := lead.addKey(acc, fsm.KeyCreate{Scopes: []string{api.ScopeTicketsWrite}, RateLimitPerMin: 100_000_000})
	if stub {
		answer := rawJSON(`{"id":"tkt_0123456789abcdef","account_id":"` + acc + `","number":1,"subject":"bench","status":"open","priority":"low","department":"support","created_at":"2026-12-01T21:00:00Z","updated_at":"2026-12-01T21:00:00Z","messages":[{"id":"msg_0123456789abcdef","author":"customer","body":"benchmark ticket body","created_at":"2026-12-01T21:00:00Z"}]}` + "\n")
		for i, rt := range lead.a.routes {
			if rt.Method == "POST" && rt.Path == "/v1/tickets" {
				lead.a.routes[i].handler = func(rq *request) (int, any, error) {
					if _, err := DecodeTicketCreate(rq.body); err != nil {
						return 0, nil, err
					}
					return http.StatusCreated, answer, nil
				}
			}
		}
		// The server newWHAPIWith started serves the routes as they were.
		lead.srv.Config.Handler = lead.a.Handler(nil)
	}
	return lead, key
}

// hopFollower is a coordinator that forwards to lead: its own store names
// lead's API address for the node its Raft view says leads.
func hopFollower(b testing.TB, lead *whAPI) *whAPI {
	fol := newWHAPIWith(b, Config{NodeID: "n1", ClusterSecret: "hop-secret", Timeouts: DefaultTimeouts()})
	fol.apply(fsm.CmdNodeRegister, fsm.NodeRegister{ID: fol.a.raft.LeaderID(), APIAddr: strings.TrimPrefix(lead.srv.URL, "http://")})
	fol.a.raft = followerView{fol.a.raft, new(atomic.Bool)}
	b.Cleanup(func() { fol.a.CloseForwarding(b.Context()) })
	return fol
}

// benchWrites sends b.N ticket creations to base from hopClients clients
// per core, each with a kept-alive connection, and reports the process's CPU
// per request.
func benchWrites(b *testing.B, base, key string) {
	clients := hopClients * runtime.GOMAXPROCS(0)
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	post := writer(&http.Client{Transport: tr}, base, key)
	// Warm up: connections open, the follower's channel dialled (requests
	// that find it being dialled are proxied), goroutines and pools grown.
	warm := time.Now().Add(time.Second)
	for time.Now().Before(warm) {
		if err := post(); err != nil {
			b.Fatal(err)
		}
	}
	var failed atomic.Pointer[error]
	cpu0 := proccpu.Self()
	b.ReportAllocs()
	b.ResetTimer()
	b.SetParallelism(hopClients)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := post(); err != nil {
				failed.CompareAndSwap(nil, &err)
				return
			}
		}
	})
	b.StopTimer()
	cpu := proccpu.Self() - cpu0
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(b.N), "cpu-us/op")
}

type hopError struct {
	status int
	body   []byte
}

func (e *hopError) Error() string { return http.StatusText(e.status) + ": " + string(e.body) }
