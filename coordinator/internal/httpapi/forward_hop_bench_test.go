package httpapi

import (
	"bytes"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
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
// wrote per system call.
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
					if c := fol.a.fwd.mux.cur; c != nil {
						f, w := c.w.counts()
						b.ReportMetric(float64(f)/float64(max(w, 1)), "frames/write-follower")
					}
				}
			})
		}
	}
}

// hopLeader is the leader of BenchmarkForwardedWrite with a ticket key
// (stub: POST /v1/tickets answers without proposing).
func hopLeader(b *testing.B, stub bool) (*whAPI, string) {
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
func hopFollower(b *testing.B, lead *whAPI) *whAPI {
	fol := newWHAPIWith(b, Config{NodeID: "n1", ClusterSecret: "hop-secret", Timeouts: DefaultTimeouts()})
	fol.apply(fsm.CmdNodeRegister, fsm.NodeRegister{ID: fol.a.raft.LeaderID(), APIAddr: strings.TrimPrefix(lead.srv.URL, "http://")})
	fol.a.raft = followerView{fol.a.raft, new(atomic.Bool)}
	b.Cleanup(func() { fol.a.CloseForwarding(b.Context()) })
	return fol
}

// benchWrites sends b.N ticket creations to base from 16 clients per core,
// each with a kept-alive connection, and reports the process's CPU per request.
func benchWrites(b *testing.B, base, key string) {
	const perCore = 16
	tr := &http.Transport{MaxIdleConnsPerHost: perCore * runtime.GOMAXPROCS(0), MaxConnsPerHost: perCore * runtime.GOMAXPROCS(0)}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	body := []byte(`{"subject":"bench","message":"benchmark ticket body","priority":"low"}`)
	post := func() error {
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
	// Warm up: connections open, the follower's channel dialled (requests
	// that find it being dialled are proxied), goroutines and pools grown.
	warm := time.Now().Add(time.Second)
	for time.Now().Before(warm) {
		if err := post(); err != nil {
			b.Fatal(err)
		}
	}
	var failed atomic.Pointer[error]
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.ReportAllocs()
	b.ResetTimer()
	b.SetParallelism(perCore)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := post(); err != nil {
				failed.CompareAndSwap(nil, &err)
				return
			}
		}
	})
	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	cpu := time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()) - time.Duration(ru0.Utime.Nano()+ru0.Stime.Nano())
	b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(b.N), "cpu-us/op")
}

type hopError struct {
	status int
	body   []byte
}

func (e *hopError) Error() string { return http.StatusText(e.status) + ": " + string(e.body) }
