// Command testagent runs the real agent session with scripted hooks, for the
// coordinator's session tests (which cannot import agent packages). It prints
// one JSON event per line on stdout and reads commands on stdin:
//
//	inv <name>=<state> ...   set the inventory's VMs and call InventoryChanged
//	hold                     hold every action that arrives from now on before
//	                         it is handled (nothing answered, not even its
//	                         accepted progress); prints {"kind":"holding"}
//	release                  handle the held actions and stop holding; prints
//	                         {"kind":"released","id":"<actions held>"}
//
// (hold and release are for tests/orders BenchmarkOrderCPU's
// ORDERS_AGENT=hold mode: the agent connected, but running no action
// while the orders are measured.)
//
// With -kvm the node reports the kvm role and some capacity (-kvm-scale
// times 16 vCPUs, 32 GiB and 1 TiB), so the coordinator places servers on
// it (their actions all succeed). With
// -hosting it also reports the hosting role and PHP 8.2, so hosting accounts
// are placed on it; a hosting.create for a domain starting with "fail-"
// fails, one for "slow-" succeeds after a second, the others succeed at once.
// A server.provision for a hostname starting with "fail-" fails as the real
// agent's does when its template is gone (its undo leaves nothing), and a
// server.terminate of that VM then answers not_found, as the real agent's
// does for a VM it does not hold. A server.provision for a "stuck-" hostname
// fails the same way, but the first two server.terminate of that VM fail
// (a node that cannot remove it for a while) before it answers not_found;
// for a "stuck1-" hostname only the first one fails.
//
// Handle: command "echo" answers a progress frame then a result carrying the
// params; "block" answers a progress frame, then waits for its context to end
// and prints {"kind":"cancelled","id":…}; a StatsRequest streams samples,
// one per requested interval (every 20 ms when it names none).
package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hostplane/hostplane/agent/internal/session"
	pb "github.com/hostplane/hostplane/proto"
	"github.com/hostplane/hostplane/tests/framework/simevent"
)

var out = simevent.NewPrinter(os.Stdout)

// event prints one event line; id names the action or stream (may be empty).
func event(kind, id string) { out.Print(simevent.Event{Kind: kind, ID: id}) }

func main() {
	coord := flag.String("coordinator", "", "session address (comma-separated: several coordinators, tried in turn)")
	token := flag.String("token", "", "join token")
	node := flag.String("node", "node-1", "node id")
	dir := flag.String("dir", "", "credentials directory")
	proto := flag.Uint("protocol", 0, "protocol version to claim")
	invEvery := flag.Duration("inventory-interval", 200*time.Millisecond, "inventory check interval")
	kvm := flag.Bool("kvm", false, "report the kvm role with room for a few servers, so placement picks this node (every action succeeds)")
	kvmScale := flag.Int("kvm-scale", 1, "with -kvm, report this many times the capacity (16 vCPUs, 32 GiB, 1 TiB)")
	hosting := flag.Bool("hosting", false, "also report the hosting role with PHP 8.2; a hosting.create for a domain starting with fail- fails (php_missing), one for slow- takes a second")
	templates := flag.String("templates", "base", "comma-separated OS templates to report")
	consoleURL := flag.String("console-url", "", "the browser console base URL to announce in Hello (none served)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var (
		invMu sync.Mutex
		inv   = &pb.Inventory{Templates: strings.Split(*templates, ",")}
	)
	var (
		failedMu sync.Mutex
		failed   = map[string]bool{} // VMs whose provisioning failed
		stuck    = map[string]int{}  // VMs whose terminate fails this many more times
	)
	var gate actionGate
	var a *session.Agent
	a, err := session.New(session.Config{
		Coordinators: strings.Split(*coord, ","), JoinToken: *token, NodeID: *node, Dir: *dir,
		PingInterval: 200 * time.Millisecond, DialTimeout: 2 * time.Second,
		// On stderr, which a failed test prints: why a session ended.
		Log:             slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})),
		ProtocolVersion: uint32(*proto), InventoryInterval: *invEvery,
		Backoff: session.Backoff{Min: 50 * time.Millisecond, Max: 200 * time.Millisecond},
		OnEvent: func(e session.Event) { event(e.Kind, "") },
		// The console keys a HelloAck told, hex-encoded, before "connected".
		OnConsoleKey:     func(k []byte) { event("console_key", hex.EncodeToString(k)) },
		OnConsoleSealKey: func(k []byte) { event("console_seal_key", hex.EncodeToString(k)) },
		Hello: func() *pb.Hello {
			h := &pb.Hello{}
			if *kvm {
				h = &pb.Hello{Roles: []string{"kvm"}, Capacity: &pb.Capacity{Vcpus: 16 * uint32(*kvmScale), MemoryBytes: uint64(*kvmScale) * 32 << 30, DiskBytes: uint64(*kvmScale) << 40}}
			}
			if *hosting {
				h.Roles = append(h.Roles, "hosting")
			}
			h.ConsoleUrl = *consoleURL
			return h
		},
		Inventory: func(context.Context) (*pb.Inventory, error) {
			invMu.Lock()
			defer invMu.Unlock()
			c := &pb.Inventory{Templates: inv.Templates, TakenAtUnixMs: time.Now().UnixMilli()}
			if *hosting {
				c.PhpVersions = []string{"8.2"}
			}
			c.Vms = append(c.Vms, inv.Vms...)
			event("inventory_collected", "")
			return c, nil
		},
		Handle: func(ctx context.Context, req *pb.Envelope, send func(*pb.Envelope) error) {
			switch b := req.Body.(type) {
			case *pb.Envelope_ActionAssign:
				if !gate.wait(ctx) {
					return // the stream was abandoned while held: the action stays open
				}
				as := b.ActionAssign
				_ = send(&pb.Envelope{Seq: 1, ReplyTo: req.Seq, Body: &pb.Envelope_ActionProgress{ActionProgress: &pb.ActionProgress{ActionId: as.ActionId, Step: "accepted"}}})
				switch as.Command {
				case "block":
					event("blocking", as.ActionId)
					<-ctx.Done()
					event("cancelled", as.ActionId)
				case "hosting.create":
					var p struct {
						Domain string `json:"domain"`
					}
					_ = json.Unmarshal(as.Params, &p)
					res := &pb.ActionResult{ActionId: as.ActionId, Success: true, Result: as.Params}
					if strings.HasPrefix(p.Domain, "fail-") {
						res = &pb.ActionResult{ActionId: as.ActionId, ErrorCode: "php_missing", ErrorMessage: "PHP-FPM 8.2 is not installed on this node"}
					}
					event("hosting_create", as.ActionId)
					if strings.HasPrefix(p.Domain, "slow-") {
						time.Sleep(time.Second)
					}
					_ = send(&pb.Envelope{Seq: 2, ReplyTo: req.Seq, Body: &pb.Envelope_ActionResult{ActionResult: res}})
				case "server.provision", "server.terminate":
					var p struct {
						Hostname string `json:"hostname"`
					}
					_ = json.Unmarshal(as.Params, &p)
					res := &pb.ActionResult{ActionId: as.ActionId, Success: true, Result: as.Params}
					failedMu.Lock()
					switch {
					case as.Command == "server.provision" && strings.HasPrefix(p.Hostname, "fail-"):
						failed[as.Target] = true
						res = &pb.ActionResult{ActionId: as.ActionId, ErrorCode: "not_found", ErrorMessage: "provision " + as.Target + ": unknown template base"}
					case as.Command == "server.provision" && strings.HasPrefix(p.Hostname, "stuck1-"):
						failed[as.Target], stuck[as.Target] = true, 1
						res = &pb.ActionResult{ActionId: as.ActionId, ErrorCode: "not_found", ErrorMessage: "provision " + as.Target + ": unknown template base"}
					case as.Command == "server.provision" && strings.HasPrefix(p.Hostname, "stuck-"):
						failed[as.Target], stuck[as.Target] = true, 2
						res = &pb.ActionResult{ActionId: as.ActionId, ErrorCode: "not_found", ErrorMessage: "provision " + as.Target + ": unknown template base"}
					case as.Command == "server.terminate" && stuck[as.Target] > 0:
						stuck[as.Target]--
						res = &pb.ActionResult{ActionId: as.ActionId, ErrorCode: "failed", ErrorMessage: "undefine " + as.Target + ": device or resource busy"}
						event("terminate_failed", as.ActionId)
					case as.Command == "server.terminate" && failed[as.Target]:
						res = &pb.ActionResult{ActionId: as.ActionId, ErrorCode: "not_found", ErrorMessage: "vm " + as.Target + " not found"}
					}
					failedMu.Unlock()
					_ = send(&pb.Envelope{Seq: 2, ReplyTo: req.Seq, Body: &pb.Envelope_ActionResult{ActionResult: res}})
				default:
					_ = send(&pb.Envelope{Seq: 2, ReplyTo: req.Seq, Body: &pb.Envelope_ActionResult{ActionResult: &pb.ActionResult{ActionId: as.ActionId, Success: true, Result: as.Params}}})
				}
			case *pb.Envelope_StatsRequest:
				every := 20 * time.Millisecond
				if ms := b.StatsRequest.IntervalMs; ms > 0 {
					every = time.Duration(ms) * time.Millisecond
				}
				for i := 0; ; i++ {
					if err := send(&pb.Envelope{Seq: uint64(i + 1), ReplyTo: req.Seq, Body: &pb.Envelope_StatsSample{StatsSample: &pb.StatsSample{Target: b.StatsRequest.Target, CpuPercent: float64(i)}}}); err != nil {
						// The context may have ended while the next sample
						// was due (under load the select below picks either).
						if ctx.Err() != nil {
							event("cancelled", "stats")
						}
						return
					}
					select {
					case <-ctx.Done():
						event("cancelled", "stats")
						return
					case <-time.After(every):
					}
				}
			}
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 0 {
				continue
			}
			switch f[0] {
			case "hold":
				gate.hold()
				event("holding", "")
				continue
			case "release":
				event("released", strconv.Itoa(gate.release()))
				continue
			case "inv":
			default:
				continue
			}
			var vms []*pb.VM
			for _, kv := range f[1:] {
				n, st, _ := strings.Cut(kv, "=")
				vms = append(vms, &pb.VM{Name: n, State: st})
			}
			invMu.Lock()
			inv = &pb.Inventory{Templates: inv.Templates, Vms: vms}
			invMu.Unlock()
			a.InventoryChanged()
		}
	}()
	if err := a.Run(ctx); err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// actionGate holds actions between hold and release.
type actionGate struct {
	mu   sync.Mutex
	open chan struct{} // closed by release; nil while not holding
	held int           // actions held since hold
}

// hold holds every action wait sees from now on, until release.
func (g *actionGate) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open == nil {
		g.open, g.held = make(chan struct{}), 0
	}
}

// release lets the held actions go on, stops holding, and returns how many
// were held.
func (g *actionGate) release() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open != nil {
		close(g.open)
		g.open = nil
	}
	return g.held
}

// wait returns at once when not holding; otherwise once released (true)
// or once ctx ends (false).
func (g *actionGate) wait(ctx context.Context) bool {
	g.mu.Lock()
	open := g.open
	if open != nil {
		g.held++
	}
	g.mu.Unlock()
	if open == nil {
		return true
	}
	select {
	case <-open:
		return true
	case <-ctx.Done():
		return false
	}
}
