package certjob

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestTakeoverResumesTheOrder: leader A records the order (its URL and its
// sealed certificate key) and dies while the HTTP-01 challenge is pending;
// leader B takes the order over at once (another leadership's order), fetches
// it by its URL and finishes it: pebble issued exactly one certificate, for
// the key A recorded, from A's order. A recorded order that cannot be
// fetched is ordered anew, and the status says so while it runs.
func TestTakeoverResumesTheOrder(t *testing.T) {
	nd, pb, st, _ := rig(t, []string{"once.example.test. 60 IN A 127.0.0.1"}, "once")

	sealer, runner := runners(t, nd, pb, st)
	one := func(at time.Time, owner string) []Order {
		due, _ := DueFor(st.domains(t), at, owner)
		return due
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()

	// Leader A dies while the challenge is pending (its job's context ends).
	actx, kill := context.WithCancel(ctx)
	nd.onPresent = func() error { kill(); return actx.Err() }
	due := one(time.Now(), "lead_a")
	if len(due) != 1 || due[0].Reason != ReasonNew {
		t.Fatalf("due: %+v", due)
	}
	if err := runner("lead_a").Run(actx, due[0]); err == nil {
		t.Fatal("leader A's order ended although it died")
	}
	rec := st.domains(t)[0].Cert
	if rec == nil || rec.OrderID == "" || !strings.HasPrefix(rec.OrderURL, "https://") || rec.OrderKey == "" || strings.Contains(rec.OrderKey, "PRIVATE KEY") || rec.OrderOwner != "lead_a" {
		t.Fatalf("the dead leader's order is not recorded with its URL and sealed key: %+v", rec)
	}
	if c := st.domains(t)[0].Certificate; c == nil || c.Status != api.CertificatePending {
		t.Fatalf("status of the order in flight: %+v", c)
	}
	if due := one(time.Now(), "lead_a"); len(due) != 0 {
		t.Fatalf("an order is due for its own leadership before its end: %+v", due)
	}

	// Leader B takes it over at once and finishes that very order.
	due = one(time.Now(), "lead_b")
	if len(due) != 1 || due[0].Reason != ReasonTakeover {
		t.Fatalf("due for the next leader: %+v", due)
	}
	if err := runner("lead_b").Run(ctx, due[0]); err != nil {
		t.Fatal(err)
	}
	issued := pb.Issued(t)
	orderPath := rec.OrderURL[strings.LastIndex(rec.OrderURL, "/")+1:]
	if len(issued) != 1 || !strings.HasSuffix(strings.TrimSpace(issued[0]), "for order "+orderPath) {
		t.Fatalf("pebble issued %d certificates (want 1, from the recorded order %s): %q", len(issued), rec.OrderURL, issued)
	}
	d := st.domains(t)[0]
	if d.Certificate == nil || d.Certificate.Status != api.CertificateIssued || d.Cert.OrderID != "" || d.Cert.OrderURL != "" {
		t.Fatalf("after the takeover: %+v %+v", d.Certificate, d.Cert)
	}
	key, err := sealer.Open(SealID("once.example.test"), d.Cert.SealedKey)
	if err != nil {
		t.Fatal(err)
	}
	recKey, _ := sealer.Open(SealID("once.example.test"), rec.OrderKey)
	if key != recKey || string(nd.keys["once.example.test"]) != key {
		t.Fatal("the certificate's key is not the one the dead leader recorded with its order")
	}

	// A recorded order the server no longer knows is ordered anew, saying so.
	st.must(t, fsm.CmdCertRetry, fsm.CertRetry{HostingID: "hst_0", AccountID: "acc_1"})
	due = one(time.Now(), "lead_b")
	if len(due) != 1 || due[0].Reason != ReasonRenew {
		t.Fatalf("due after a retry: %+v", due)
	}
	bctx, killB := context.WithCancel(ctx)
	nd.onPresent = func() error { killB(); return bctx.Err() }
	if err := runner("lead_b").Run(bctx, due[0]); err == nil {
		t.Fatal("the renewal ended although its leader died")
	}
	rec = st.domains(t)[0].Cert
	bogus := rec.OrderURL[:strings.LastIndex(rec.OrderURL, "/")+1] + "no-such-order"
	st.must(t, fsm.CmdCertOrderStart, fsm.CertOrderStart{HostingID: "hst_0", Domain: "once.example.test", OrderID: rec.OrderID,
		Until: time.Now().Add(time.Minute), Owner: "lead_b", OrderURL: bogus})
	var during *api.CertificateStatus
	nd.onPresent = func() error { during = st.domains(t)[0].Certificate; return nil }
	due = one(time.Now(), "lead_c")
	if len(due) != 1 || due[0].Reason != ReasonTakeover {
		t.Fatalf("due for leader C: %+v", due)
	}
	if err := runner("lead_c").Run(ctx, due[0]); err != nil {
		t.Fatal(err)
	}
	if during == nil || during.Status != api.CertificatePending || !strings.Contains(during.Reason, "cannot be fetched") || !strings.Contains(during.Reason, "ordered anew") {
		t.Fatalf("status while ordering anew: %+v", during)
	}
	if n := len(pb.Issued(t)); n != 2 {
		t.Fatalf("pebble issued %d certificates after one renewal, want 2", n)
	}
}
