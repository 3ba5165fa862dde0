package hosting_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/agent/internal/hosting"
	"github.com/hostplane/hostplane/agent/internal/hosting/hostingtest"
	"github.com/hostplane/hostplane/tests/framework/hostenv"
)

func siteLimit(t *testing.T, e *hostingtest.Env, user string) (uint64, bool) {
	t.Helper()
	l, ok, err := e.Node.SiteLimit(hostenv.Ctx(t), user)
	if err != nil {
		t.Fatal(err)
	}
	return l, ok
}

// writeAs writes mib MiB into the site's private/name as the account's
// user, returning dd's output and error.
func writeAs(t *testing.T, e *hostingtest.Env, user, name string, mib int) (string, error) {
	t.Helper()
	p := filepath.Join(e.Node.L.Site(user), "private", name)
	return hostenv.RunAs(t, user, "dd if=/dev/zero of="+p+" bs=1M count="+strconv.Itoa(mib)+" conv=fsync")
}

// On btrfs with quotas, the plan's disk allowance holds: a write past it
// fails with "Disk quota exceeded" (as the account's user, and over SFTP),
// a suspension and unsuspension of the full account still work, a raised
// plan lets the write through, and delete removes the subvolumes. A create
// resumed after a crash between making the subvolume and limiting it sets
// the limit; an account whose site is a plain directory (made before
// quotas) is left so and reported as not enforced. Usage is still du's.
func TestDiskAllowanceEnforcedOnBtrfs(t *testing.T) {
	e := hostingtest.Config(t)
	sites := filepath.Join(e.Root, "sites")
	hostenv.LoopBtrfs(t, sites, true)
	e.Start(t)
	ctx := hostenv.Ctx(t)
	if q := e.Node.DiskQuota(); q.FS != "btrfs" || !q.Enforced || q.Why != "" {
		t.Fatalf("DiskQuota on btrfs with quotas: %+v", q)
	}

	a := newAcct(e, "a")
	in := a.input(t)
	in.Plan.DiskMiB = 8
	if err := e.Node.Precheck(ctx, in); err != nil {
		t.Fatal(err)
	}
	v, err := e.Node.Create(ctx, in, noStep)
	if err != nil {
		t.Fatal(err)
	}
	if !v.QuotaEnforced {
		t.Fatalf("created account on btrfs with quotas: %+v", v)
	}
	if l, ok := siteLimit(t, e, a.user); !ok || l != 8<<20 {
		t.Fatalf("site limit: %d %v, want %d", l, ok, 8<<20)
	}

	// Past the allowance: EDQUOT for the account's programs and SFTP.
	out, err := writeAs(t, e, a.user, "big", 16)
	if err == nil || !strings.Contains(out, "Disk quota exceeded") {
		t.Fatalf("16 MiB written on an 8 MiB allowance: %v %s", err, out)
	}
	c, err := hostenv.SFTP(e.SSHAddr, a.user, a.sftpPW)
	if err != nil {
		t.Fatal(err)
	}
	if err := hostenv.Put(c, "/public/up.bin", string(bytes.Repeat([]byte("x"), 4<<20))); err == nil {
		t.Fatal("a 4 MiB SFTP upload into a full account succeeded")
	}
	c.Close()

	// Usage is what du counts, on a subvolume too.
	site := e.Node.L.Site(a.user)
	got, err := hosting.SiteUsage(ctx, site)
	if err != nil {
		t.Fatal(err)
	}
	du := strings.Fields(hostenv.Run(t, "du", "-s", "-B1", site))[0]
	if strconv.FormatUint(got, 10) != du || got < 7<<20 {
		t.Fatalf("SiteUsage %d, du -s -B1 %s (about 8 MiB written)", got, du)
	}

	// A full account is still suspended (the marker is the agent's write)
	// and unsuspended (its pool's socket is outside the limit), with its
	// limit as before.
	if v, err := e.Node.Suspend(ctx, a.user, noStep); err != nil || !v.Suspended {
		t.Fatalf("suspend of a full account: %+v %v", v, err)
	}
	if code, _ := hostenv.Get(t, e.HTTPAddr, a.domain, "/"); code != 503 {
		t.Fatalf("suspended full account answers %d", code)
	}
	if v, err := e.Node.Unsuspend(ctx, a.user, noStep); err != nil || v.Suspended {
		t.Fatalf("unsuspend of a full account: %+v %v", v, err)
	}
	if _, err := os.Stat(e.Node.L.Socket(a.user)); err != nil {
		t.Fatalf("pool socket of the unsuspended full account: %v", err)
	}
	if l, ok := siteLimit(t, e, a.user); !ok || l != 8<<20 {
		t.Fatalf("site limit after suspend: %d %v", l, ok)
	}

	// A raised plan lets the write through.
	in.Plan.DiskMiB = 64
	if v, err := e.Node.SetPlan(ctx, a.user, in.Plan, noStep); err != nil || !v.QuotaEnforced || v.Plan.DiskMiB != 64 {
		t.Fatalf("SetPlan 64 MiB: %+v %v", v, err)
	}
	if l, ok := siteLimit(t, e, a.user); !ok || l != 64<<20 {
		t.Fatalf("site limit after SetPlan: %d %v", l, ok)
	}
	if out, err := writeAs(t, e, a.user, "big", 16); err != nil {
		t.Fatalf("16 MiB on a 64 MiB allowance: %v %s", err, out)
	}

	// A create resumed after a crash between the subvolume and its limit.
	b := newAcct(e, "b")
	hostenv.Run(t, "btrfs", "subvolume", "create", e.Node.L.Site(b.user))
	if l, ok := siteLimit(t, e, b.user); ok {
		t.Fatalf("a new subvolume has a limit: %d", l)
	}
	inB := b.input(t)
	inB.Plan.DiskMiB = 8
	if v, err := e.Node.Create(ctx, inB, noStep); err != nil || !v.QuotaEnforced {
		t.Fatalf("resumed create: %+v %v", v, err)
	}
	if l, ok := siteLimit(t, e, b.user); !ok || l != 8<<20 {
		t.Fatalf("site limit of the resumed create: %d %v", l, ok)
	}
	if out, err := writeAs(t, e, b.user, "big", 16); err == nil || !strings.Contains(out, "Disk quota exceeded") {
		t.Fatalf("16 MiB written on the resumed create's 8 MiB: %v %s", err, out)
	}

	// An account whose site is a plain directory (made before quotas).
	old := newAcct(e, "o")
	if err := os.Mkdir(e.Node.L.Site(old.user), 0o755); err != nil {
		t.Fatal(err)
	}
	inO := old.input(t)
	inO.Plan.DiskMiB = 8
	if v, err := e.Node.Create(ctx, inO, noStep); err != nil || v.QuotaEnforced {
		t.Fatalf("account on a plain directory: %+v %v", v, err)
	}
	if out, err := writeAs(t, e, old.user, "big", 16); err != nil {
		t.Fatalf("16 MiB on the plain directory: %v %s", err, out)
	}

	// Delete removes the subvolumes (and the plain directory).
	for _, x := range []acct{a, b, old} {
		if _, err := e.Node.Delete(ctx, x.user, noStep); err != nil {
			t.Fatalf("delete %s: %v", x.user, err)
		}
		if _, err := os.Lstat(e.Node.L.Site(x.user)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("site of deleted %s: %v", x.user, err)
		}
	}
	if out := hostenv.Run(t, "btrfs", "subvolume", "list", sites); strings.TrimSpace(out) != "" {
		t.Fatalf("subvolumes left after delete:\n%s", out)
	}
}

// Where sites/ is not btrfs with quotas, allowances are reported only,
// and the node says so: on the test machine's file system (a full
// account), and on btrfs without quotas (detection only).
func TestDiskAllowanceNotEnforcedElsewhere(t *testing.T) {
	t.Run("plain", func(t *testing.T) {
		e := hostingtest.NewNode(t)
		ctx := hostenv.Ctx(t)
		q := e.Node.DiskQuota()
		if q.Enforced || q.FS == "btrfs" || q.FS == "" || !strings.Contains(q.Why, "only btrfs qgroups") {
			t.Fatalf("DiskQuota on %s: %+v", e.Root, q)
		}
		a := newAcct(e, "a")
		in := a.input(t)
		in.Plan.DiskMiB = 8
		v, err := e.Node.Create(ctx, in, noStep)
		if err != nil || v.QuotaEnforced {
			t.Fatalf("create: %+v %v", v, err)
		}
		if out, err := writeAs(t, e, a.user, "big", 16); err != nil {
			t.Fatalf("16 MiB on an 8 MiB plan without quotas: %v %s", err, out)
		}
		if _, err := e.Node.Delete(ctx, a.user, noStep); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("btrfs-without-quotas", func(t *testing.T) {
		root, _ := hostenv.Root(t)
		hostenv.LoopBtrfs(t, filepath.Join(root, "sites"), false)
		cfg := hosting.DefaultConfig()
		cfg.Root = root
		n, err := hosting.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if q := n.DiskQuota(); q.FS != "btrfs" || q.Enforced || !strings.Contains(q.Why, "btrfs quota enable") {
			t.Fatalf("DiskQuota on btrfs without quotas: %+v", q)
		}
	})
}

// QuotasEnforced is what the agent's usage report says of each account
// (on btrfs with quotas): true for a site that is a subvolume with a limit,
// false for one without a limit and for a plain-directory site, and
// nothing for a site whose btrfs command failed. Left out reads as not
// known at the coordinator, which keeps what it knew: a false there would
// tell the customer an allowance that may be enforced is not.
func TestQuotasEnforcedLeavesOutWhatItCannotTell(t *testing.T) {
	root, _ := hostenv.Root(t)
	sites := filepath.Join(root, "sites")
	hostenv.LoopBtrfs(t, sites, true)
	// The btrfs command fails to show the qgroup of sites/broken.
	bin, _ := btrfsWrapper(t, "unused", func(real, _ string) string {
		return "#!/bin/sh\ncase \"$*\" in *'qgroup show'*/sites/broken) echo 'ERROR: cannot show qgroups' >&2; exit 1;; esac\nexec " + real + " \"$@\"\n"
	})
	cfg := hosting.DefaultConfig()
	cfg.Root, cfg.Btrfs = root, bin
	n, err := hosting.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if q := n.DiskQuota(); !q.Enforced {
		t.Fatalf("DiskQuota on btrfs with quotas: %+v", q)
	}
	for _, s := range []string{"limited", "unlimited", "broken"} {
		hostenv.Run(t, "btrfs", "subvolume", "create", filepath.Join(sites, s))
	}
	hostenv.Run(t, "btrfs", "qgroup", "limit", "8M", filepath.Join(sites, "limited"))
	hostenv.Run(t, "btrfs", "qgroup", "limit", "8M", filepath.Join(sites, "broken"))
	if err := os.Mkdir(filepath.Join(sites, "plainsite"), 0o755); err != nil {
		t.Fatal(err)
	}
	got := n.QuotasEnforced(hostenv.Ctx(t), []string{"limited", "unlimited", "plainsite", "broken"})
	want := map[string]bool{"limited": true, "unlimited": false, "plainsite": false}
	if len(got) != len(want) {
		t.Fatalf("QuotasEnforced: %v, want %v (broken left out)", got, want)
	}
	for u, v := range want {
		if e, ok := got[u]; !ok || e != v {
			t.Fatalf("QuotasEnforced: %v, want %v (broken left out)", got, want)
		}
	}
}
