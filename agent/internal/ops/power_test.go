package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/agent/internal/hypervisor"
	"github.com/hostplane/hostplane/agent/internal/hypervisor/hvfake"
	"github.com/hostplane/hostplane/agent/internal/journal"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// lostSignals is the fake hypervisor whose reboot watch never delivers the
// signals named: the guest still reboots on the ACPI request. With conn the
// watch's libvirt connection has ended (its Lost is closed). A watch opened
// afterwards (WatchReset, on the new connection) delivers both signals with
// rewatch, and fails as libvirt unreachable with down.
type lostSignals struct {
	*hvfake.HV
	event, reset, conn bool
	rewatch, down      bool
}

func (h lostSignals) RebootDomain(ctx context.Context, name string) (*hypervisor.RebootWatch, error) {
	w, err := h.HV.RebootDomain(ctx, name)
	if err != nil {
		return nil, err
	}
	out := *w
	if h.event {
		out.Event = make(chan struct{})
	}
	if h.reset {
		out.Reset = make(chan struct{})
	}
	if h.conn {
		lost := make(chan struct{})
		close(lost)
		out.Lost = lost
	}
	return &out, nil
}

func (h lostSignals) WatchReset(ctx context.Context, name string) (*hypervisor.RebootWatch, error) {
	if h.down {
		return nil, &hypervisor.Error{Op: "reboot", Resource: name, Kind: hypervisor.ErrUnavailable}
	}
	w, err := h.HV.WatchReset(ctx, name)
	if err != nil || !h.rewatch {
		return w, err
	}
	c := make(chan struct{})
	close(c)
	return &hypervisor.RebootWatch{Event: c, Reset: c, Stop: w.Stop}, nil
}

// TestRebootSeenThroughEitherSignal: a guest that rebooted on the ACPI request
// is reported as a guest reboot, without a forced reset, when only one of the
// watch's two signals comes (CI once lost libvirt's reboot event: the agent
// reset a guest that had already rebooted and said "reset"); the reset after
// the grace stays for when neither comes, and the result then says so.
func TestRebootSeenThroughEitherSignal(t *testing.T) {
	for _, tc := range []struct {
		name               string
		lostEvent, lostRst bool
		want               string
	}{
		{"libvirt's reboot event lost", true, false, api.NodeRebootGuest},
		{"QEMU's reset event lost", false, true, api.NodeRebootGuest},
		{"both lost", true, true, api.NodeRebootReset},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _, hv := newWithVM1(t)
			logs := &framework.SyncBuilder{}
			m.log = slog.New(slog.NewTextHandler(logs, nil))
			m.hv = lostSignals{HV: hv, event: tc.lostEvent, reset: tc.lostRst}
			op, err := m.Reboot(context.Background(), "vm1", api.NodeStopRequest{OpID: "r1"})
			if err != nil || op.State != api.NodeOpSucceeded {
				t.Fatalf("reboot: %+v %v", op, err)
			}
			resets := hv.Count("ResetDomain")
			switch tc.want {
			case api.NodeRebootGuest:
				if op.Result.RebootMethod != api.NodeRebootGuest || op.Result.PowerMethod != api.NodePowerGraceful || resets != 0 {
					t.Fatalf("a guest reboot with %s: reboot_method %q power_method %q, %d resets (%s)",
						tc.name, op.Result.RebootMethod, op.Result.PowerMethod, resets, op.Result.Message)
				}
			case api.NodeRebootReset:
				if op.Result.RebootMethod != api.NodeRebootReset || op.Result.PowerMethod != api.NodePowerForced || resets != 1 ||
					!strings.Contains(op.Result.Message, "did not restart within 1m0s") {
					t.Fatalf("no signal: reboot_method %q power_method %q, %d resets (%s)",
						op.Result.RebootMethod, op.Result.PowerMethod, resets, op.Result.Message)
				}
			}
			// The log says when the second signal is what recognised the reboot.
			if said := strings.Contains(logs.String(), "reboot event did not come"); said != (tc.lostEvent && !tc.lostRst) {
				t.Fatalf("log says the reboot event was missed: %v, want %v:\n%s", said, tc.lostEvent && !tc.lostRst, logs)
			}
		})
	}
}

// TestRebootConnectionLost: when the agent's libvirt connection ends while
// a reboot waits for the guest's reset (libvirtd restarted), neither signal
// can come on it any more. The reboot watches on on a new connection: a
// reset seen there is the guest's reboot; none by the end of the grace, the
// guest is reset, as when the connection stays, and the result says the
// connection was lost and that a restart while it was down would make this
// one a second. Before, the reboot failed at once without a reset, and a
// guest that had not heard the button kept libvirt's fake-reboot flag: its
// next shutdown restarted it (the fake's RebootPending;
// libvirttest.TestRebootConnectionLostLeavesNoRebootPending on the real
// libvirtd). When libvirtd stays unreachable until the grace ends, the
// reboot fails, saying the request may still be pending. A signal delivered
// before the connection ended still counts.
func TestRebootConnectionLost(t *testing.T) {
	pending := func(hv *hvfake.HV) bool {
		hv.Mu.Lock()
		defer hv.Mu.Unlock()
		return hv.Doms["vm1"].RebootPending
	}
	t.Run("no signal on either connection", func(t *testing.T) {
		m, _, hv := newWithVM1(t)
		hv.ACPIPoll = -1 // the guest does not hear the button: libvirt's flag stays set
		m.hv = lostSignals{HV: hv, event: true, reset: true, conn: true}
		op, err := m.Reboot(context.Background(), "vm1", api.NodeStopRequest{OpID: "r1", GraceSeconds: 30})
		if err != nil || op.State != api.NodeOpSucceeded || op.Result.RebootMethod != api.NodeRebootReset || op.Result.PowerMethod != api.NodePowerForced {
			t.Fatalf("reboot on a lost connection: %+v %+v %v", op, op.Error, err)
		}
		for _, want := range []string{"forced reset", "grace 30s", "connection to libvirtd was lost", "restarted twice"} {
			if !strings.Contains(op.Result.Message, want) {
				t.Errorf("message %q does not say %q", op.Result.Message, want)
			}
		}
		if n := hv.Count("ResetDomain"); n != 1 {
			t.Errorf("%d resets, want 1", n)
		}
		if hv.Count("WatchReset") == 0 {
			t.Error("no watch on a new connection")
		}
		if pending(hv) {
			t.Error("the reboot request is left pending in libvirt")
		}
	})
	t.Run("reset seen on the new connection", func(t *testing.T) {
		m, _, hv := newWithVM1(t)
		m.hv = lostSignals{HV: hv, event: true, reset: true, conn: true, rewatch: true}
		op, err := m.Reboot(context.Background(), "vm1", api.NodeStopRequest{OpID: "r1", GraceSeconds: 600})
		if err != nil || op.State != api.NodeOpSucceeded || op.Result.RebootMethod != api.NodeRebootGuest ||
			!strings.Contains(op.Result.Message, "connection to libvirtd was lost") {
			t.Fatalf("reboot seen on the new connection: %+v %+v %v", op, op.Result, err)
		}
		if n := hv.Count("ResetDomain"); n != 0 {
			t.Errorf("%d resets", n)
		}
	})
	t.Run("libvirtd unreachable", func(t *testing.T) {
		m, _, hv := newWithVM1(t)
		m.hv = lostSignals{HV: hv, event: true, reset: true, conn: true, down: true}
		op, err := m.Reboot(context.Background(), "vm1", api.NodeStopRequest{OpID: "r1", GraceSeconds: 30})
		if err != nil || op.State != api.NodeOpFailed || op.Error == nil || op.Error.Code != api.NodeErrUnavailable {
			t.Fatalf("reboot with libvirtd unreachable: %+v %v", op, err)
		}
		for _, want := range []string{"not known", "not reset", "may still be pending", "retry"} {
			if !strings.Contains(op.Error.Message, want) {
				t.Errorf("error %q does not say %q", op.Error.Message, want)
			}
		}
		if n := hv.Count("ResetDomain"); n != 0 {
			t.Errorf("%d resets with libvirtd unreachable", n)
		}
	})
	t.Run("reboot event before", func(t *testing.T) {
		m, _, hv := newWithVM1(t)
		m.hv = lostSignals{HV: hv, conn: true}
		// The watch's signals and Lost are all closed: every try, whichever
		// the select sees first, is a guest reboot.
		for i := range 20 {
			op, err := m.Reboot(context.Background(), "vm1", api.NodeStopRequest{OpID: fmt.Sprintf("r%d", i)})
			if err != nil || op.State != api.NodeOpSucceeded || op.Result.RebootMethod != api.NodeRebootGuest {
				t.Fatalf("try %d: a guest reboot seen before the connection was lost: %+v %+v %v", i, op, op.Error, err)
			}
		}
		if n := hv.Count("ResetDomain"); n != 0 {
			t.Errorf("%d resets", n)
		}
	})
}

// TestRecoverRebootLeavesNoRebootPending: the agent stopped while a reboot
// waited for a guest that had not acted on the ACPI request, leaving
// libvirt's fake-reboot flag set (the fake's RebootPending): the guest's next
// shutdown would restart it. Before, the restart marked the reboot
// interrupted and left the flag; now it watches out the rest of the grace
// and resets the guest, and the reboot's result says so. A forced reboot and
// a reboot of a VM no longer running stay interrupted, without a reset.
func TestRecoverRebootLeavesNoRebootPending(t *testing.T) {
	ctx := context.Background()
	begin := func(t *testing.T, j *journal.DB, id string, req api.NodeStopRequest) {
		t.Helper()
		in, _ := json.Marshal(req)
		if _, _, err := j.Begin(journal.Record{ID: id, Kind: api.NodeOpReboot, Target: "vm1", InputHash: "h", Input: in, StartedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("request pending", func(t *testing.T) {
		m, j, hv := newWithVM1(t)
		hv.ACPIPoll = -1
		if _, err := hv.RebootDomain(ctx, "vm1"); err != nil { // the request the stopped agent made
			t.Fatal(err)
		}
		begin(t, j, "r1", api.NodeStopRequest{OpID: "r1", GraceSeconds: 30})
		if err := m.Recover(ctx); err != nil {
			t.Fatal(err)
		}
		op, err := m.Operation("r1")
		if err != nil || op.State != api.NodeOpSucceeded || op.Result.RebootMethod != api.NodeRebootReset {
			t.Fatalf("recovered reboot: %+v %+v %v", op, op.Error, err)
		}
		for _, want := range []string{"resumed after an agent restart", "forced reset", "the agent restarted while waiting", "restarted twice"} {
			if !strings.Contains(op.Result.Message, want) {
				t.Errorf("message %q does not say %q", op.Result.Message, want)
			}
		}
		n := hv.Count("ResetDomain")
		hv.Mu.Lock()
		pending := hv.Doms["vm1"].RebootPending
		hv.Mu.Unlock()
		if n != 1 || pending {
			t.Fatalf("%d resets, request pending %v", n, pending)
		}
	})
	t.Run("forced, or not running", func(t *testing.T) {
		m, j, hv := newWithVM1(t)
		begin(t, j, "r1", api.NodeStopRequest{OpID: "r1", Force: true})
		if err := m.Recover(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Stop(ctx, "vm1", api.NodeStopRequest{OpID: "s1", Force: true}); err != nil {
			t.Fatal(err)
		}
		begin(t, j, "r2", api.NodeStopRequest{OpID: "r2"})
		if err := m.Recover(ctx); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"r1", "r2"} {
			op, err := m.Operation(id)
			if err != nil || op.State != api.NodeOpFailed || op.Error.Code != api.NodeErrInterrupted {
				t.Fatalf("%s: %+v %v", id, op, err)
			}
		}
		if n := hv.Count("ResetDomain"); n != 0 {
			t.Fatalf("%d resets", n)
		}
	})
}

// TestRebootAgentStopLeavesItForRecover: the agent stops while a reboot
// waits for a guest that has not acted on the ACPI request. The reboot is
// not marked finished with the request left pending in libvirt: it stays
// running in the journal, and the next start's Recover resets the guest.
func TestRebootAgentStopLeavesItForRecover(t *testing.T) {
	m, j, hv := newWithVM1(t)
	hv.ACPIPoll = -1
	base, stop := context.WithCancel(context.Background())
	m.base = base
	type answer struct {
		op  *api.NodeOperation
		err error
	}
	done := make(chan answer, 1)
	go func() {
		op, err := m.Reboot(context.Background(), "vm1", api.NodeStopRequest{OpID: "r1", GraceSeconds: 3600})
		done <- answer{op, err}
	}()
	for hv.Count("RebootDomain") == 0 {
		time.Sleep(time.Millisecond)
	}
	stop()
	a := <-done
	var ne *api.NodeError
	if !errors.As(a.err, &ne) || ne.Code != api.NodeErrInterrupted || a.op != nil {
		t.Fatalf("reboot when the agent stops: %+v %v", a.op, a.err)
	}
	if rec, err := j.Get("r1"); err != nil || rec.State != api.NodeOpRunning {
		t.Fatalf("journal: %+v %v", rec, err)
	}
	if n := hv.Count("ResetDomain"); n != 0 {
		t.Fatalf("%d resets while stopping", n)
	}
	m.base = context.Background() // the next start
	if err := m.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	op, err := m.Operation("r1")
	if err != nil || op.State != api.NodeOpSucceeded || op.Result.RebootMethod != api.NodeRebootReset || hv.Count("ResetDomain") != 1 {
		t.Fatalf("recovered: %+v %+v %v", op, op.Error, err)
	}
	hv.Mu.Lock()
	defer hv.Mu.Unlock()
	if hv.Doms["vm1"].RebootPending {
		t.Fatal("the reboot request is left pending")
	}
}
