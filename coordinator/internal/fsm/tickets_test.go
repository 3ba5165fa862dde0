package fsm

import (
	"path/filepath"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestTicketNumbersPerAccount: two accounts each number their tickets 1, 2,
// 3 whatever the other opened in between, so a number tells a customer nothing
// about the provider's volume. Entries from before per-account numbers (the
// flag unset) replay with the provider-wide sequence, and an account that holds
// such tickets continues after its highest number, never reusing one.
func TestTicketNumbersPerAccount(t *testing.T) {
	f := open(t, filepath.Join(t.TempDir(), "f.db"))
	defer f.Close()
	idx := uint64(0)
	apply := func(typ CommandType, p any) *Result {
		t.Helper()
		idx++
		r, ok := f.Apply(logOf(t, idx, typ, p)).(*Result)
		if !ok || r.Err != nil {
			t.Fatalf("apply %d: %#v", typ, r)
		}
		return r
	}
	for _, acc := range []string{"acc_a", "acc_b", "acc_old"} {
		apply(CmdAccountCreate, AccountCreate{ID: acc, Email: acc + "@x.io", Name: acc, Country: "TR"})
	}
	n := 0
	create := func(acc string, perAccount bool) int64 {
		t.Helper()
		n++
		r := apply(CmdTicketCreate, TicketCreate{ID: "tkt_" + string(rune('a'+n)), AccountID: acc, MessageID: "msg_x",
			Subject: "s", Message: "m", Priority: "low", Department: "general", PerAccountNumber: perAccount})
		return r.Value.(api.Ticket).Number
	}
	// Before the change: one provider-wide sequence (old log entries keep it).
	if got := []int64{create("acc_old", false), create("acc_b", false), create("acc_old", false)}; got[0] != 1 || got[1] != 2 || got[2] != 3 {
		t.Fatalf("provider-wide numbers of old entries: %v", got)
	}
	// acc_b holds #2 from the old sequence: it continues at 3.
	var a, b []int64
	for i := 0; i < 3; i++ {
		a = append(a, create("acc_a", true))
		b = append(b, create("acc_b", true))
	}
	if a[0] != 1 || a[1] != 2 || a[2] != 3 {
		t.Fatalf("acc_a numbers %v, want 1 2 3", a)
	}
	if b[0] != 3 || b[1] != 4 || b[2] != 5 {
		t.Fatalf("acc_b (held #2) numbers %v, want 3 4 5", b)
	}
	if got := create("acc_old", true); got != 4 {
		t.Fatalf("acc_old (held #1 and #3) next number %d, want 4", got)
	}
}
