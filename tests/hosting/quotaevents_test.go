package hosting

import (
	"bytes"
	"context"
	"crypto/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/hostplane/hostplane/tests/framework"
	"github.com/hostplane/hostplane/tests/framework/hostenv"
)

// TestDiskQuotaEvents (outside-in: three coordinator processes, the real
// node, sshd and the usage reports every second): a customer with a 16 MiB
// plan subscribes a webhook and fills the site over SFTP. Past 90 % of the
// allowance one hosting.disk_quota_warning arrives, signed with the
// webhook's secret; past 100 % one hosting.disk_quota_exceeded; neither
// comes again on the usage reports that follow (the same figures, several
// times over). Once the files are removed and the usage is back under
// 90 %, filling it again sends a warning again. (The site is a plain
// directory: the allowance is reported, not enforced, so the upload can go
// past 100 %; the event comes from the reported figures either way.)
func TestDiskQuotaEvents(t *testing.T) {
	w := newWorldWith(t, worldOptions{coordinatorArgs: func(*hostenv.Env) []string {
		return []string{"--hosting-usage-interval=1s"}
	}})
	ctx := hostenv.Ctx(t)
	site := newTinySite(t, w, "qe", w.env.Prefix+"e", "quota-"+w.env.Prefix+".test", api.ScopeHostingRead, api.ScopeHostingWrite,
		api.ScopeHostingDestroy, api.ScopeOrdersWrite, api.ScopeWebhooksWrite, api.ScopeWebhooksRead)
	cl, ord, id, user, domain := site.cl, site.ord, site.ord.Hosting.ID, site.user, site.domain
	rcv := framework.NewWebhookReceiver(t)
	hook, err := cl.CreateWebhook(ctx, api.WebhookCreateRequest{URL: rcv.URL + "/hook",
		Events: []string{string(api.EventHostingDiskWarning), string(api.EventHostingDiskExceeded)}}, "")
	if err != nil {
		t.Fatal(err)
	}
	view := func(what string, ok func(api.HostingAccount) bool) api.HostingAccount {
		t.Helper()
		return framework.PollFor(t, what, 30*time.Second, 200*time.Millisecond, func(ctx context.Context) (api.HostingAccount, error) {
			return cl.HostingAccount(ctx, id)
		}, ok)
	}
	sc, err := hostenv.SFTP(w.env.SSHAddr, user, ord.SFTPPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	upload := func(name string, mib int) {
		t.Helper()
		f, err := sc.Create("/private/" + name)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1<<20)
		_, _ = rand.Read(buf) // not compressible, whatever the file system
		for i := 0; i < mib; i++ {
			if _, err := f.Write(buf); err != nil {
				t.Fatalf("upload %s: %v", name, err)
			}
		}
		if err := f.Close(); err != nil {
			t.Fatalf("upload %s: %v", name, err)
		}
	}
	// deliveries fails the test unless the receiver holds, of each type,
	// the number given, each for this account with a valid signature.
	deliveries := func(step string, warnings, exceeded int) {
		t.Helper()
		for typ, n := range map[api.WebhookEvent]int{api.EventHostingDiskWarning: warnings, api.EventHostingDiskExceeded: exceeded} {
			got := rcv.Deliveries(string(typ))
			if len(got) != n {
				t.Fatalf("%s: %d %s deliveries, want %d: %+v", step, len(got), typ, n, got)
			}
			for _, d := range got {
				if !framework.WebhookSignatureOK(hook.Secret, d.Header.Get("X-Sunucu-Signature"), d.Body, time.Minute) {
					t.Fatalf("%s: %s delivery not signed with the webhook's secret: %s %s", step, typ, d.Header.Get("X-Sunucu-Signature"), d.Body)
				}
				if d.Data["hostingId"] != id || d.Data["domain"] != domain || d.Data["diskMib"] != float64(16) {
					t.Fatalf("%s: %s data %v", step, typ, d.Data)
				}
			}
		}
	}
	// settle waits out several usage reports (every second) and their
	// deliveries: none of them may send an event again.
	settle := func() { time.Sleep(5 * time.Second) }

	upload("a.bin", 15) // 15 MiB of 16: over 90 %
	rcv.Wait(t, string(api.EventHostingDiskWarning), 30*time.Second, func(map[string]any) bool { return true })
	settle()
	deliveries("past 90 %", 1, 0)
	view("the usage past 90 %", func(h api.HostingAccount) bool { return h.Quota.DiskUsedBytes >= 15<<20 })

	upload("b.bin", 2) // 17 MiB
	rcv.Wait(t, string(api.EventHostingDiskExceeded), 30*time.Second, func(map[string]any) bool { return true })
	settle()
	deliveries("past 100 %", 1, 1)

	for _, f := range []string{"a.bin", "b.bin"} {
		if err := sc.Remove("/private/" + f); err != nil {
			t.Fatal(err)
		}
	}
	view("the usage back under 90 %", func(h api.HostingAccount) bool { return h.Quota.DiskUsedBytes < 1<<20 })
	settle()
	deliveries("back under 90 %", 1, 1)

	upload("c.bin", 15)
	framework.PollFor(t, "a second warning", 30*time.Second, 100*time.Millisecond, func(context.Context) (int, error) {
		return len(rcv.Deliveries(string(api.EventHostingDiskWarning))), nil
	}, func(n int) bool { return n == 2 })
	settle()
	deliveries("past 90 % again", 2, 1)
}

// TestSFTPPastTheAllowanceSaysFailure (the real sshd and its sftp-server,
// the node's sites on btrfs with quotas, a 16 MiB plan): what an SFTP
// client is told when a write goes past the allowance. The file system says
// EDQUOT ("Disk quota exceeded"); OpenSSH's sftp-server has no SFTP status
// for it and answers SSH_FX_FAILURE, so the Go client reports
// `sftp: "Failure" (SSH_FX_FAILURE)` and OpenSSH's sftp client
// `write remote "/private/big.bin": Failure`: never the reason. (README,
// disk allowance webhooks.)
func TestSFTPPastTheAllowanceSaysFailure(t *testing.T) {
	hostenv.Need(t, "sftp", "sshpass")
	w := newWorldWith(t, worldOptions{prepare: probe13LoopBtrfs})
	site := newTinySite(t, w, "qf", w.env.Prefix+"x", "full-"+w.env.Prefix+".test", api.ScopeHostingRead, api.ScopeOrdersWrite)
	cl, ord, user := site.cl, site.ord, site.user
	h := framework.PollFor(t, "the allowance known", 30*time.Second, 200*time.Millisecond, func(ctx context.Context) (api.HostingAccount, error) {
		return cl.HostingAccount(ctx, ord.Hosting.ID)
	}, func(h api.HostingAccount) bool { return h.Quota.Enforced != nil })
	if !*h.Quota.Enforced {
		t.Fatal("the allowance is not enforced on btrfs with quotas")
	}

	// The Go client (github.com/pkg/sftp).
	sc, err := hostenv.SFTP(w.env.SSHAddr, user, ord.SFTPPassword)
	if err != nil {
		t.Fatal(err)
	}
	f, err := sc.Create("/private/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	_, _ = rand.Read(buf)
	var werr error
	for i := 0; i < 32 && werr == nil; i++ {
		_, werr = f.Write(buf)
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil || !strings.Contains(werr.Error(), `"Failure" (SSH_FX_FAILURE)`) {
		t.Fatalf("the Go SFTP client writing 32 MiB on a 16 MiB allowance: %v, want SSH_FX_FAILURE", werr)
	}
	t.Logf("Go sftp client: %v", werr)
	err = sc.Remove("/private/big.bin")
	sc.Close()
	if err != nil {
		t.Fatal(err)
	}

	// OpenSSH's sftp client, in batch mode.
	local := filepath.Join(t.TempDir(), "big.bin")
	if err := os.WriteFile(local, bytes.Repeat(buf, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	batch := filepath.Join(t.TempDir(), "batch")
	if err := os.WriteFile(batch, []byte("put "+local+" /private/big.bin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(w.env.SSHAddr)
	cmd := exec.Command("sshpass", "-e", "sftp", "-oStrictHostKeyChecking=no", "-oUserKnownHostsFile=/dev/null",
		"-oBatchMode=no", "-oPubkeyAuthentication=no", "-P", port, "-b", batch, user+"@"+host)
	cmd.Env = append(os.Environ(), "SSHPASS="+ord.SFTPPassword)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), `write remote "/private/big.bin": Failure`) || strings.Contains(string(out), "quota") {
		t.Fatalf("OpenSSH sftp putting 32 MiB on a 16 MiB allowance: %v\n%s", err, out)
	}
	t.Logf("OpenSSH sftp client: %v\n%s", err, out)
}

// tinyPlan is the hosting plan the disk allowance tests fill: 16 MiB.
var tinyPlan = api.HostingPlan{PHPWorkers: 2, PHPMemoryMiB: 64, MaxExecutionSeconds: 30, UploadMiB: 8, DiskMiB: 16}

// tinySite is a customer's hosting account on tinyPlan, bought through the
// API (newTinySite).
type tinySite struct {
	cl           *client.Client // the customer's, through coordinator 1
	ord          api.HostingOrder
	user, domain string
}

// newTinySite makes tinyPlan a product (slug tag-tiny), a customer
// (Prefix-tag@example.com) with the scopes and 100 of credit, and the
// customer's order of a site of user and domain on it (idempotency key
// tag-order); it returns once the order's action has succeeded.
func newTinySite(t *testing.T, w *world, tag, user, domain string, scopes ...string) tinySite {
	t.Helper()
	ctx := hostenv.Ctx(t)
	plan := tinyPlan
	if _, err := w.c.AnyAlive(nil).Admin().CreateProduct(ctx, tag+"-tiny", api.ProductRequest{Category: api.ProductHosting,
		NameEn: "Tiny", RetailMonthlyUsdCents: 100, Specs: api.ProductSpecs{Hosting: &plan}}); err != nil {
		t.Fatal(err)
	}
	acc, key, err := w.c.NewAccount(ctx, w.env.Prefix+"-"+tag+"@example.com", scopes...)
	if err != nil {
		t.Fatal(err)
	}
	w.c.Credit(ctx, acc.ID, 100)
	cl := w.client(1, key)
	ord, err := cl.OrderHosting(ctx, api.HostingOrderRequest{PlanSlug: tag + "-tiny", Domain: domain, Username: user}, tag+"-order")
	if err != nil {
		t.Fatal(err)
	}
	framework.WaitActionSuccess(t, cl, ord.Action.ID, 60*time.Second)
	return tinySite{cl: cl, ord: ord, user: user, domain: domain}
}
