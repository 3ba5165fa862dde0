// Command hostplane-agent-sim runs one or many simulated agents: the real agent
// session code (enrolment, mutual-TLS QUIC sessions, pings, renewal, reconnects)
// without libvirt. Tests and the session benchmark use it; it prints one JSON
// line per session event on stdout.
//
// Exit codes: 0 stopped by a signal, 3 join token refused, 4 node refused by
// the coordinators, 1 anything else (only with -n 1).
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hostplane/hostplane/agent/internal/session"
	pb "github.com/hostplane/hostplane/proto"
	"github.com/hostplane/hostplane/tests/framework/simevent"
)

type skewClock struct{ skew time.Duration }

func (c skewClock) Now() time.Time                         { return time.Now().Add(c.skew) }
func (c skewClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

func main() {
	fs := flag.NewFlagSet("hostplane-agent-sim", flag.ExitOnError)
	coords := fs.String("coordinators", "", "comma-separated coordinator session addresses")
	token := fs.String("token", "", "join token (one node)")
	tokensFile := fs.String("tokens-file", "", "file with one join token per line (one per simulated node, with -n)")
	nodeID := fs.String("node-id", "sim", "node id; with -n > 1 a suffix -00001… is added")
	dir := fs.String("dir", "", "credentials directory (one subdirectory per node with -n > 1)")
	n := fs.Int("n", 1, "simulated nodes")
	skew := fs.Duration("clock-skew", 0, "pretend the clock is this far ahead (forces certificate renewal)")
	backoffMin := fs.Duration("backoff-min", 100*time.Millisecond, "first reconnect delay")
	backoffMax := fs.Duration("backoff-max", 2*time.Second, "longest reconnect delay")
	dialTimeout := fs.Duration("dial-timeout", time.Second, "per-coordinator dial timeout")
	quiet := fs.Bool("quiet", false, "print only connected/refused events")
	ramp := fs.Duration("ramp", 0, "start the simulated nodes evenly over this time instead of all at once")
	logLevel := fs.String("log-level", "error", "agent log level")
	bridges := fs.String("bridges", "", "comma-separated Linux bridges every simulated node reports (protocol 1.3)")
	answer := fs.Bool("answer-actions", false, "answer every action with success at once (no guest is run); print an \"action\" event with its id")
	_ = fs.Parse(os.Args[1:])
	if *coords == "" || *dir == "" {
		fmt.Fprintln(os.Stderr, "hostplane-agent-sim: -coordinators and -dir are required")
		os.Exit(2)
	}
	var tokens []string
	if *tokensFile != "" {
		f, err := os.Open(*tokensFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "hostplane-agent-sim:", err)
			os.Exit(2)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if t := strings.TrimSpace(sc.Text()); t != "" {
				tokens = append(tokens, t)
			}
		}
		f.Close()
	}
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(*logLevel))
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	out := simevent.NewPrinter(os.Stdout)
	print := func(node string, e session.Event) {
		if *quiet && e.Kind != "connected" && e.Kind != "refused" {
			return
		}
		rec := simevent.Event{Node: node, Kind: e.Kind, Coordinator: e.Coordinator}
		if e.Err != nil {
			rec.Err = e.Err.Error()
		}
		out.Print(rec)
	}
	var wg sync.WaitGroup
	errs := make([]error, *n)
	for i := 0; i < *n; i++ {
		id, d, tok := *nodeID, *dir, *token
		if *n > 1 {
			id = fmt.Sprintf("%s-%05d", *nodeID, i+1)
			d = filepath.Join(*dir, id)
		}
		if i < len(tokens) {
			tok = tokens[i]
		}
		a, err := session.New(session.Config{
			Coordinators: strings.Split(*coords, ","), JoinToken: tok, NodeID: id, Dir: d,
			Hello: func() *pb.Hello {
				h := &pb.Hello{Roles: []string{"kvm"}, SoftwareVersion: "sim", Hostname: id,
					Capacity: &pb.Capacity{Vcpus: 8, MemoryBytes: 16 << 30, DiskBytes: 200 << 30}}
				if *bridges != "" {
					h.Bridges = strings.Split(*bridges, ",")
				}
				return h
			},
			Handle:  answerActions(*answer, id, out),
			Backoff: session.Backoff{Min: *backoffMin, Max: *backoffMax}, DialTimeout: *dialTimeout,
			Clock: skewClock{*skew}, Log: log.With("node", id),
			OnEvent: func(e session.Event) { print(id, e) },
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "hostplane-agent-sim:", err)
			os.Exit(2)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if *ramp > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Duration(int64(*ramp) * int64(i) / int64(*n))):
				}
			}
			errs[i] = a.Run(ctx)
			if errors.Is(errs[i], session.ErrTokenRefused) {
				print(id, session.Event{Kind: "token_refused", Err: errs[i]})
			}
		}()
	}
	wg.Wait()
	if *n == 1 {
		switch err := errs[0]; {
		case errors.Is(err, session.ErrTokenRefused):
			os.Exit(3)
		case errors.Is(err, session.ErrRefused):
			os.Exit(4)
		case err != nil && ctx.Err() == nil:
			fmt.Fprintln(os.Stderr, "hostplane-agent-sim:", err)
			os.Exit(1)
		}
	}
}

// answerActions is the simulated nodes' stream handler: with answer set,
// every action succeeds at once (and is printed as an "action" event);
// without it, streams are refused as before.
func answerActions(answer bool, node string, out *simevent.Printer) func(ctx context.Context, req *pb.Envelope, send func(*pb.Envelope) error) {
	if !answer {
		return nil
	}
	return func(_ context.Context, req *pb.Envelope, send func(*pb.Envelope) error) {
		as, ok := req.Body.(*pb.Envelope_ActionAssign)
		if !ok {
			return
		}
		id := as.ActionAssign.ActionId
		out.Print(simevent.Event{Node: node, Kind: "action", ID: id})
		_ = send(&pb.Envelope{Seq: 1, ReplyTo: req.Seq, Body: &pb.Envelope_ActionResult{ActionResult: &pb.ActionResult{ActionId: id, Success: true}}})
	}
}
