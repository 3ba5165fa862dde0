package fsm

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

// ptrEvents are the data of the server.ptr.changed events in the outbox.
func ptrEvents(t *testing.T, f *FSM) []string {
	t.Helper()
	var out []string
	for _, e := range outboxEvents(t, f) {
		if e.Type == "server.ptr.changed" {
			if e.AccountID != "acc_1" {
				t.Errorf("event for account %q", e.AccountID)
			}
			out = append(out, string(e.Data))
		}
	}
	return out
}

// runningServer creates acc_1's server srv_1 (hp-srv-1 on hv-1) with the
// address ipv4 and finishes its provisioning, act_p.
func runningServer(h *whHarness, ipv4 string) {
	h.t.Helper()
	srv := store.Server{Server: api.Server{ID: "srv_1", Label: "web", OSTemplate: "debian-12", OS: "debian", IPv4: ipv4},
		AccountID: "acc_1", NodeID: "hv-1", VMName: "hp-srv-1"}
	prov := store.Action{Action: api.Action{ID: "act_p", Command: api.ActionServerProvision, ResourceID: "srv_1"},
		NodeID: "hv-1", Target: "hp-srv-1", Deadline: h.at.Add(time.Hour)}
	h.must(CmdServerCreate, ServerCreate{Server: srv, Action: prov})
	h.must(CmdActionFinish, ActionFinish{ID: "act_p", Success: true})
}

func TestServerPTR(t *testing.T) {
	h := newServerHarness(t)
	deadline := h.at.Add(time.Hour)
	runningServer(h, "203.0.113.7/24")

	get := func() (s store.Server) {
		_ = h.fsms[0].View(func(tx *bolt.Tx) (err error) { s, err = store.Read(tx).Server("srv_1"); return })
		return s
	}
	ptr := func(hostname string) api.ServerIP {
		t.Helper()
		return h.must(CmdServerPTR, ServerPTR{AccountID: "acc_1", ServerID: "srv_1", IP: "203.0.113.7", Hostname: hostname}).(api.ServerIP)
	}
	same := func(what string, f func()) {
		t.Helper()
		before := serverDump(h.fsms[0])
		f()
		if !bytes.Equal(before, serverDump(h.fsms[0])) {
			t.Fatalf("%s changed state", what)
		}
	}

	// Set: the view, the stored map and one event.
	if v := ptr("mail.example.com"); v.IP != "203.0.113.7" || v.Version != 4 || v.PTR == nil || *v.PTR != "mail.example.com" {
		t.Fatalf("set: %+v", v)
	}
	if s := get(); s.PTRs["203.0.113.7"] != "mail.example.com" || len(s.PTRs) != 1 {
		t.Fatalf("stored: %+v", s.PTRs)
	}
	// An idempotent repeat answers the same and writes nothing (no event).
	same("a repeated PTR", func() {
		if v := ptr("mail.example.com"); v.PTR == nil || *v.PTR != "mail.example.com" {
			t.Fatalf("repeat: %+v", v)
		}
	})
	// Change, then remove (ptr null), then remove again (a no-op).
	if v := ptr("smtp.example.org"); v.PTR == nil || *v.PTR != "smtp.example.org" {
		t.Fatalf("change: %+v", v)
	}
	if v := ptr(""); v.PTR != nil || v.IP != "203.0.113.7" {
		t.Fatalf("remove: %+v", v)
	}
	if s := get(); s.PTRs != nil {
		t.Fatalf("after remove: %+v", s.PTRs)
	}
	same("removing an absent PTR", func() {
		if v := ptr(""); v.PTR != nil {
			t.Fatalf("remove again: %+v", v)
		}
	})

	// Refusals commit nothing.
	same("refused PTR commands", func() {
		for _, c := range []struct {
			p    ServerPTR
			want error
		}{
			{ServerPTR{AccountID: "acc_2", ServerID: "srv_1", IP: "203.0.113.7", Hostname: "x.example.com"}, ErrNotFound},
			{ServerPTR{AccountID: "acc_1", ServerID: "srv_9", IP: "203.0.113.7", Hostname: "x.example.com"}, ErrNotFound},
			{ServerPTR{AccountID: "acc_1", ServerID: "srv_1", IP: "203.0.113.8", Hostname: "x.example.com"}, ErrNotFound},
			{ServerPTR{AccountID: "acc_1", ServerID: "srv_1", IP: "203.0.113.7/24", Hostname: "x.example.com"}, ErrNotFound},
			{ServerPTR{AccountID: "acc_1", ServerID: "srv_1", IP: "::ffff:203.0.113.7", Hostname: "x.example.com"}, ErrNotFound},
			{ServerPTR{AccountID: "acc_1", ServerID: "srv_1", IP: "203.0.113.7", Hostname: "a b.example.com"}, ErrInvalid},
		} {
			if _, err := h.apply(CmdServerPTR, c.p); !errors.Is(err, c.want) {
				t.Errorf("%+v: %v, want %v", c.p, err, c.want)
			}
		}
	})

	want := []string{
		`{"ip":"203.0.113.7","ptr":"mail.example.com","serverId":"srv_1"}`,
		`{"ip":"203.0.113.7","ptr":"smtp.example.org","serverId":"srv_1"}`,
		`{"ip":"203.0.113.7","ptr":null,"serverId":"srv_1"}`,
	}
	for i, f := range h.fsms {
		if got := ptrEvents(t, f); !slices.Equal(got, want) {
			t.Fatalf("fsm %d events:\n%q\nwant\n%q", i, got, want)
		}
	}

	// A terminated server takes no PTR.
	ptr("mail.example.com")
	h.must(CmdActionCreate, ActionCreate{Action: store.Action{Action: api.Action{ID: "act_t", Command: api.ActionServerTerminate, ResourceID: "srv_1"},
		AccountID: "acc_1", NodeID: "hv-1", Target: "hp-srv-1", Deadline: deadline, Mutating: true}})
	h.must(CmdActionFinish, ActionFinish{ID: "act_t", Success: true})
	// Terminating removes the name, and says so.
	if got := ptrEvents(t, h.fsms[0]); len(got) != 5 || got[4] != `{"ip":"203.0.113.7","ptr":null,"serverId":"srv_1"}` {
		t.Fatalf("events after terminate: %q", got)
	}
	same("a PTR on a terminated server", func() {
		for _, host := range []string{"mail.example.com", "other.example.com", ""} {
			if _, err := h.apply(CmdServerPTR, ServerPTR{AccountID: "acc_1", ServerID: "srv_1", IP: "203.0.113.7", Hostname: host}); !errors.Is(err, ErrConflict) {
				t.Fatalf("terminated %q: %v", host, err)
			}
		}
	})
	if len(ptrEvents(t, h.fsms[0])) != 5 {
		t.Fatal("events after termination")
	}
	// Nor a label.
	same("a label on a terminated server", func() {
		if _, err := h.apply(CmdServerLabel, ServerLabel{AccountID: "acc_1", ServerID: "srv_1", Label: "renamed"}); !errors.Is(err, ErrConflict) {
			t.Fatalf("a terminated server's label: %v; want a conflict", err)
		}
	})

	// The replicas agree.
	h.replicasSame(serverDump)
}

// TestSuspendedServerPTR: a suspended server's PTR change is refused
// (SuspendedError, nothing written) from semantics level 2; at level 1 (a
// coordinator of a release without the check still in the cluster) it is
// applied as that release does. Lifted, the change is applied again.
func TestSuspendedServerPTR(t *testing.T) {
	h := newServerHarness(t)
	runningServer(h, "203.0.113.7/24")
	ptr := func(hostname string) (any, error) {
		return h.apply(CmdServerPTR, ServerPTR{AccountID: "acc_1", ServerID: "srv_1", IP: "203.0.113.7", Hostname: hostname})
	}
	h.must(CmdServiceSuspend, ServiceSuspend{Ref: ServiceRef{AccountID: "acc_1", ServerID: "srv_1"}, Suspend: true, Reason: "abuse report 42"})
	if _, err := ptr("old.example.com"); err != nil {
		t.Fatalf("a suspended server's PTR at level 1: %v", err)
	}
	h.must(CmdClusterLevel, ClusterLevel{Level: 2})
	before := serverDump(h.fsms[0])
	for _, name := range []string{"new.example.com", ""} {
		var susp *SuspendedError
		if _, err := ptr(name); !errors.As(err, &susp) || susp.Reason != "abuse report 42" {
			t.Fatalf("PTR %q of a suspended server at level 2: %v, want SuspendedError", name, err)
		}
	}
	if !bytes.Equal(before, serverDump(h.fsms[0])) {
		t.Fatal("a refused PTR change changed the state")
	}
	h.must(CmdServiceSuspend, ServiceSuspend{Ref: ServiceRef{AccountID: "acc_1", ServerID: "srv_1"}})
	if v, err := ptr("new.example.com"); err != nil || v.(api.ServerIP).PTR == nil || *v.(api.ServerIP).PTR != "new.example.com" {
		t.Fatalf("PTR after the suspension was lifted: %+v %v", v, err)
	}
	h.replicasSame(serverDump)
}
