package actions

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hostplane/hostplane/agent/internal/hosting"
	pb "github.com/hostplane/hostplane/proto"
)

// The usage report says, of each account measured, whether its allowance
// is enforced where the node could tell it (true or false), and nothing
// where it could not (hosting.Node.QuotasEnforced left it out: the btrfs
// command failed): unset reads as not known at the coordinator, which
// keeps what it knew. A false there would tell the customer the allowance
// is not enforced when it may be.
func TestUsageReportCarriesQuotaEnforcedWhereKnown(t *testing.T) {
	at := time.UnixMilli(1_700_000_000_123)
	rep := usageReport(at, map[string]uint64{"cy": 0, "ada": 4096, "bo": 8192},
		map[string]bool{"ada": true, "bo": false, "gone": true})
	if rep.TakenAtUnixMs != at.UnixMilli() {
		t.Fatalf("taken at %d, want %d", rep.TakenAtUnixMs, at.UnixMilli())
	}
	type row struct {
		user     string
		bytes    uint64
		enforced string // "true", "false", "unset"
	}
	var got []row
	for _, a := range rep.Accounts {
		r := row{a.Username, a.DiskBytes, "unset"}
		if a.QuotaEnforced != nil {
			r.enforced = map[bool]string{true: "true", false: "false"}[*a.QuotaEnforced]
		}
		got = append(got, r)
	}
	want := []row{{"ada", 4096, "true"}, {"bo", 8192, "false"}, {"cy", 0, "unset"}}
	if len(got) != len(want) {
		t.Fatalf("report %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("report %v, want %v", got, want)
		}
	}
}

// Through the executor: a node whose sites are not on btrfs with quotas
// enforces no allowance, and its usage report says false for every
// account it measured (none for a name that is not its account).
func TestUsageReportOfANodeThatDoesNotEnforce(t *testing.T) {
	e := newEnv(t)
	cfg := hosting.DefaultConfig()
	cfg.Root = t.TempDir()
	h, err := hosting.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"ada", "bob"} {
		for _, p := range []string{h.L.Site(u), filepath.Dir(h.L.Account(u))} {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(h.L.Account(u), []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(h.L.Site(u), "index.html"), make([]byte, 8192), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if q := h.DiskQuota(); q.Enforced {
		t.Fatalf("DiskQuota of a temp dir: %+v, want not enforced", q)
	}
	e.m.SetHosting(h)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	frames := e.call(t, ctx, &pb.Envelope{Seq: 9, Body: &pb.Envelope_HostingUsageRequest{HostingUsageRequest: &pb.HostingUsageRequest{
		Usernames: []string{"bob", "ada", "nobody"}, BudgetMs: 10_000}}})
	if len(frames) != 1 || frames[0].ReplyTo != 9 || frames[0].GetHostingUsageReport() == nil {
		t.Fatalf("frames %v, want one usage report", frames)
	}
	accts := frames[0].GetHostingUsageReport().Accounts
	if len(accts) != 2 {
		t.Fatalf("accounts %v, want ada and bob", accts)
	}
	for i, u := range []string{"ada", "bob"} {
		a := accts[i]
		if a.Username != u || a.DiskBytes < 8192 || a.QuotaEnforced == nil || *a.QuotaEnforced {
			t.Fatalf("account %d: %v, want %s, ≥ 8192 bytes, quota_enforced false", i, a, u)
		}
	}
}
