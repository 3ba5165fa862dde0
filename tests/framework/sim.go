package framework

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hostplane/hostplane/tests/framework/simevent"
)

// Event is one JSON line a simulated agent prints on stdout.
type Event = simevent.Event

// Sim is a simulated agent process: the real agent session code (enrolment,
// mutual-TLS QUIC sessions, pings, renewal, reconnects) without libvirt, run
// from a binary such as AgentSim(t). It implements Agent.
type Sim struct {
	Events chan Event   // every event printed, in order
	Stdin  io.Writer    // the process's stdin (commands, for testagent)
	Stderr *SyncBuilder // the process's stderr so far
	code   int
	t      testing.TB
	cmd    *exec.Cmd
	done   chan struct{}
}

var _ Agent = (*Sim)(nil)

// StartSim starts bin with args; the process is killed when the test ends
// (printing its stderr if the test failed), and by the kernel when the test
// binary dies (startSim).
func StartSim(t testing.TB, bin string, args ...string) *Sim {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &Sim{t: t, cmd: cmd, Stdin: stdin, Events: make(chan Event, 100000), done: make(chan struct{}), Stderr: &SyncBuilder{}}
	cmd.Stderr = p.Stderr
	if err := startSim(cmd); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var e Event
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				p.Events <- e
			}
		}
		err := cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			p.code = ee.ExitCode()
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("simulated agent %s stderr:\n%s", bin, p.Stderr.String())
		}
	})
	return p
}

// Exited is closed when the process has exited.
func (p *Sim) Exited() <-chan struct{} { return p.done }

// Pid is the process id of the simulator.
func (p *Sim) Pid() int { return p.cmd.Process.Pid }

// Pause stops the process (SIGSTOP): alive but silent, as an agent waiting
// out a dead coordinator or a short network loss looks to the coordinators.
// It returns what resumes it (SIGCONT); only the first call resumes, and the
// test's end calls it too, so that the process never stays stopped.
func (p *Sim) Pause() (resume func()) {
	p.t.Helper()
	if err := syscall.Kill(p.Pid(), syscall.SIGSTOP); err != nil {
		p.t.Fatal(err)
	}
	resume = sync.OnceFunc(func() { _ = syscall.Kill(p.Pid(), syscall.SIGCONT) })
	p.t.Cleanup(resume)
	return resume
}

// Kill SIGKILLs the process and waits for it.
func (p *Sim) Kill() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.done
}

// Stop sends SIGTERM and waits, killing it after 15 s.
func (p *Sim) Stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.Kill()
	}
}

// Wait returns the next event of kind, skipping others; it fails the test when
// the process exits first (after reading what it printed) or after timeout.
func (p *Sim) Wait(kind string, timeout time.Duration) Event {
	p.t.Helper()
	return p.WaitID(kind, "", timeout)
}

// Hold has a scripted agent (StartTestAgent's testagent) hold every action
// it is sent from now on, none answered, not even accepted, until Release,
// and waits until it says it holds.
func (p *Sim) Hold(t testing.TB) {
	t.Helper()
	if _, err := io.WriteString(p.Stdin, "hold\n"); err != nil {
		t.Fatal(err)
	}
	p.Wait("holding", 10*time.Second)
}

// Release has a scripted agent that holds actions (Hold) handle them and
// stop holding; it returns how many it held.
func (p *Sim) Release(t testing.TB) int {
	t.Helper()
	if _, err := io.WriteString(p.Stdin, "release\n"); err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p.Wait("released", 10*time.Second).ID)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// WaitID is Wait for an event of kind with id (empty: any).
func (p *Sim) WaitID(kind, id string, timeout time.Duration) Event {
	p.t.Helper()
	match := func(e Event) bool { return e.Kind == kind && (id == "" || e.ID == id) }
	deadline := time.After(timeout)
	for {
		select {
		case e := <-p.Events:
			if match(e) {
				return e
			}
		case <-p.done:
			// Drain what was printed before exiting.
			for {
				select {
				case e := <-p.Events:
					if match(e) {
						return e
					}
				default:
					p.t.Fatalf("simulated agent exited (code %d) before %q; stderr:\n%s", p.code, kind, p.Stderr.String())
				}
			}
		case <-deadline:
			p.t.Fatalf("no %q event (id %q) within %s", kind, id, timeout)
		}
	}
}

// ExitCode waits for the process to exit by itself and returns its code.
func (p *Sim) ExitCode(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(timeout):
		p.t.Fatalf("simulated agent still running after %s", timeout)
		return -1
	}
}

// SyncBuilder is a strings.Builder safe for concurrent writes and reads.
type SyncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *SyncBuilder) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(b)
}

func (w *SyncBuilder) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// startSim starts cmd to be SIGKILLed by the kernel when the test binary
// dies (Pdeathsig, as StartInGroup's processes are): a test killed by go
// test's -timeout runs no cleanup, and the test agent does not end when its
// stdin closes, so it went on dialling the coordinators' ports (reused by
// later tests) until someone killed it. It stays in the test's process group
// (the sim is paused and resumed by its own pid).
func startSim(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd.Start()
}
