package domains

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestDomainTransferIn: a domain another registrar holds moves here with its
// auth code, through the coordinator's EPP client: a wrong code is refused
// by the registry and refunded, the right one makes the registry name this
// registrar the sponsor with a year added; the code is in no coordinator's
// Raft log or state in the clear.
func TestDomainTransferIn(t *testing.T) {
	r := newRig(t, map[string]string{"other-reg": "other-pw1"})
	r.reg.RegisterAs("other-reg", "other-pw1", "moving.test", "Tr4nsfer-Code")
	before := r.registry("moving.test")
	if before.ClID != "other-reg" {
		t.Fatalf("sponsor before: %+v", before)
	}
	r.credit(yearly)
	body := func(code string) string {
		return fmt.Sprintf(`{"name":"moving.test","auth_code":%q,%s}`, code, contact)
	}
	idem := map[string]string{"Idempotency-Key": "move-1"}
	rep := r.call(-1, "POST", "/v1/domains/transfer", body("wrong-code"), idem)
	if rep.Status != 409 || rep.Code() != "transfer_failed" || !strings.Contains(string(rep.Body), "refunded") {
		t.Fatalf("wrong auth code: %s", rep)
	}
	// Its Idempotency-Key replays that first answer (not the 202 its
	// command stored while the registry was asked), charging nothing.
	if again := r.call(-1, "POST", "/v1/domains/transfer", body("wrong-code"), idem); again.Status != 409 || again.Code() != "transfer_failed" || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay of the refused transfer: %s, want the first answer %s", again, rep)
	}
	if b := r.balance(); b != yearly {
		t.Fatalf("balance %d after the refused transfer", b)
	}
	rep = r.call(-1, "POST", "/v1/domains/transfer", body("Tr4nsfer-Code"), nil)
	if rep.Status != 201 {
		t.Fatalf("transfer: %s", rep)
	}
	var d api.Domain
	rep.Decode(t, &d)
	after := r.registry("moving.test")
	if after.ClID != framework.EPPDClientID || !after.ExDate.Equal(before.ExDate.AddDate(1, 0, 0)) || !d.ExpiresAt.Equal(after.ExDate) || d.Status != api.DomainActive {
		t.Fatalf("after the transfer: registry %+v (before %+v), ours %+v", after, before, d)
	}
	if b := r.balance(); b != 0 {
		t.Fatalf("balance %d after the transfer", b)
	}
	for _, p := range r.c.Nodes {
		// The Raft log is the WAL's files (segments and wal-meta.db) under raft-wal/.
		wal, err := filepath.Glob(filepath.Join(p.DataDir, "raft", "raft-wal", "*"))
		if err != nil || len(wal) == 0 {
			t.Fatalf("no Raft log files under raft-wal/ of %s: %v", p.ID, err)
		}
		for _, f := range append([]string{filepath.Join(p.DataDir, "raft", "fsm.db")}, wal...) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(raw), "Tr4nsfer-Code") || strings.Contains(string(raw), "wrong-code") {
				t.Fatalf("%s of %s holds an auth code in the clear", f, p.ID)
			}
		}
	}
}
