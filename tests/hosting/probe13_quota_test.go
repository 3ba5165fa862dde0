package hosting

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
	"github.com/hostplane/hostplane/tests/framework/hostenv"
)

// probe13LoopBtrfs mounts a fresh 320 MiB btrfs with quotas enabled (a loop
// device on a sparse file in the test's temp dir) as the node's sites/,
// before its agent starts. When the test ends, the node's nginx and PHP-FPM
// (their sockets are in the sites) are stopped, then it is unmounted and
// the loop device detached.
func probe13LoopBtrfs(t *testing.T, env *hostenv.Env) {
	t.Helper()
	hostenv.LoopBtrfs(t, filepath.Join(env.Root, "sites"), true)
	// Registered after the mount's: runs before its unmount.
	t.Cleanup(func() { hostenv.StopDaemons(env.Root) })
}

// TestProbe13FullDiskAllowance (outside-in, three coordinator processes,
// the real node with its sites on btrfs with quotas): a customer buys a
// plan of 16 MiB disk (POST /v1/hosting), sees quota.enforced true and
// disk_mib 16, and fills the site over SFTP. What the customer sees: the
// upload fails past the allowance (an SFTP write or close error), the site
// still serves its PHP, GET /v1/hosting/{id} shows the usage near the
// allowance within the usage interval; deleting the file over SFTP works
// on the full site (a btrfs qgroup at its limit must still let the
// customer free space), after which an upload fits again and the usage
// falls. Deleting the account removes its site (subvolumes included) and
// everything else of it from the node.
func TestProbe13FullDiskAllowance(t *testing.T) {
	w := newWorldWith(t, worldOptions{
		coordinatorArgs: func(*hostenv.Env) []string { return []string{"--hosting-usage-interval=1s"} },
		prepare:         probe13LoopBtrfs,
	})
	ctx := hostenv.Ctx(t)
	site := newTinySite(t, w, "p13", w.env.Prefix+"f", "full-"+w.env.Prefix+".test", api.ScopeHostingRead, api.ScopeHostingWrite,
		api.ScopeHostingDestroy, api.ScopeOrdersWrite)
	cl, ord, id, user, domain := site.cl, site.ord, site.ord.Hosting.ID, site.user, site.domain
	view := func(what string, ok func(api.HostingAccount) bool) api.HostingAccount {
		t.Helper()
		return framework.PollFor(t, what, 30*time.Second, 200*time.Millisecond, func(ctx context.Context) (api.HostingAccount, error) {
			return cl.HostingAccount(ctx, id)
		}, ok)
	}
	h := view("the allowance enforced", func(h api.HostingAccount) bool { return h.Quota.Enforced != nil })
	if !*h.Quota.Enforced || h.Quota.DiskMiB != 16 {
		t.Fatalf("quota of a 16 MiB plan on btrfs with quotas: %+v (enforced %v)", h.Quota, *h.Quota.Enforced)
	}

	hostenv.PutProbe(t, w.env.SSHAddr, user, ord.SFTPPassword, "sftp")
	sc, err := hostenv.SFTP(w.env.SSHAddr, user, ord.SFTPPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	// upload writes mib MiB to /private/name; the first error it met.
	upload := func(name string, mib int) error {
		f, err := sc.Create("/private/" + name)
		if err != nil {
			return err
		}
		buf := make([]byte, 1<<20)
		for i := 0; i < mib; i++ {
			if _, err := f.Write(buf); err != nil {
				f.Close()
				return err
			}
		}
		return f.Close()
	}
	err = upload("big.bin", 32)
	if err == nil {
		t.Fatal("32 MiB uploaded over SFTP on a 16 MiB allowance")
	}
	t.Logf("the customer's SFTP upload past the allowance: %v", err)
	hostenv.WantSite(t, w.env.HTTPAddr, domain, user, "the full site")
	view("usage near the allowance", func(h api.HostingAccount) bool {
		return h.Quota.DiskUsedBytes >= 12<<20 && h.Quota.DiskUsedBytes <= 17<<20
	})

	// The customer frees space on the full site and uploads again.
	if err := sc.Remove("/private/big.bin"); err != nil {
		t.Fatalf("removing a file over SFTP from the full site: %v", err)
	}
	if err := upload("small.bin", 4); err != nil {
		t.Fatalf("a 4 MiB upload once space was freed: %v", err)
	}
	view("usage down once the file was removed", func(h api.HostingAccount) bool {
		return h.Quota.DiskUsedBytes >= 4<<20 && h.Quota.DiskUsedBytes < 8<<20
	})
	sc.Close()

	del, err := cl.DeleteHosting(ctx, id, "")
	if err != nil {
		t.Fatal(err)
	}
	framework.WaitActionSuccess(t, cl, del.Action.ID, 60*time.Second)
	assertGone(t, w, user, domain)
	if out := hostenv.Run(t, "btrfs", "subvolume", "list", filepath.Join(w.env.Root, "sites")); strings.Contains(out, user) {
		t.Fatalf("a subvolume of the deleted account is left:\n%s", out)
	}
}
