package hosting

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// writeFull writes n bytes of data (every block allocated).
func writeFull(t *testing.T, path string, n int) {
	t.Helper()
	if err := os.WriteFile(path, bytes.Repeat([]byte{'x'}, n), 0o644); err != nil {
		t.Fatal(err)
	}
}

// duBlocks is what du counts for dir (allocated bytes, each inode once, no
// other file system), or -1 without du.
func duBlocks(t *testing.T, dir string) int64 {
	t.Helper()
	out, err := exec.Command("du", "-s", "-B1", "-x", dir).Output()
	if err != nil {
		return -1
	}
	n, err := strconv.ParseInt(strings.Fields(string(out))[0], 10, 64)
	if err != nil {
		t.Fatalf("du: %q", out)
	}
	return n
}

// TestSiteUsageCountsBlocks measures a real site directory: what a customer
// uploads counts as the blocks it takes (du's figure, checked against du),
// a sparse file its allocated blocks, not its length, a hard-linked file
// once, and a symbolic link out of the site (to a large file or a
// directory) nothing of what it points to.
func TestSiteUsageCountsBlocks(t *testing.T) {
	root := t.TempDir()
	site := filepath.Join(root, "site")
	outside := filepath.Join(root, "outside")
	for _, d := range []string{filepath.Join(site, "public", "media"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	empty, err := SiteUsage(context.Background(), site)
	if err != nil {
		t.Fatal(err)
	}
	writeFull(t, filepath.Join(site, "public", "media", "photo.jpg"), 3<<20)
	writeFull(t, filepath.Join(site, "public", "index.php"), 10) // a whole block
	one, err := SiteUsage(context.Background(), site)
	if err != nil {
		t.Fatal(err)
	}
	if one < empty+3<<20+4096 || one > empty+3<<20+64<<10 {
		t.Fatalf("site with 3 MiB + 10 bytes: %d bytes (empty: %d)", one, empty)
	}
	// A hard link to the photo, a sparse 1 GiB file with 8 KiB written,
	// links out of the site to a large file and to a directory.
	if err := os.Link(filepath.Join(site, "public", "media", "photo.jpg"), filepath.Join(site, "public", "copy.jpg")); err != nil {
		t.Fatal(err)
	}
	sp, err := os.Create(filepath.Join(site, "public", "sparse.img"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sp.WriteAt(bytes.Repeat([]byte{'s'}, 8<<10), 512<<20); err != nil {
		t.Fatal(err)
	}
	if err := sp.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	sp.Close()
	writeFull(t, filepath.Join(outside, "big.bin"), 8<<20)
	for name, target := range map[string]string{"big.bin": filepath.Join(outside, "big.bin"), "out": outside, "etc": "/etc"} {
		if err := os.Symlink(target, filepath.Join(site, "public", name)); err != nil {
			t.Fatal(err)
		}
	}
	all, err := SiteUsage(context.Background(), site)
	if err != nil {
		t.Fatal(err)
	}
	if all < one+8<<10 || all > one+64<<10 {
		t.Fatalf("with a hard link, a sparse 1 GiB file of 8 KiB and links out: %d bytes, want %d + the sparse file's blocks (≈8 KiB)", all, one)
	}
	if du := duBlocks(t, site); du >= 0 && uint64(du) != all {
		t.Fatalf("SiteUsage %d bytes, du -s -B1 -x %d", all, du)
	}
	// The site itself may not be a link.
	link := filepath.Join(root, "link")
	if err := os.Symlink(site, link); err != nil {
		t.Fatal(err)
	}
	if _, err := SiteUsage(context.Background(), link); err == nil {
		t.Fatal("a site that is a symbolic link was measured")
	}
	// A walk that runs out of time gives no figure.
	for i := range 600 {
		writeFull(t, filepath.Join(site, "public", "f"+strconv.Itoa(i)), 1)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n, err := SiteUsage(ctx, site); !errors.Is(err, context.Canceled) || n != 0 {
		t.Fatalf("cancelled walk: %d, %v", n, err)
	}
}

// TestNodeUsage: the node measures the accounts it holds (an account
// record), leaves out one it does not hold or a name that is not a
// username, gives an action's result the last whole figure when a walk
// fails, and a request waiting past its budget gives up.
func TestNodeUsage(t *testing.T) {
	n := newRootedNode(t)
	for _, u := range []string{"ada", "bob"} {
		if err := os.MkdirAll(filepath.Join(n.L.Site(u), "public"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(n.L.Account("ada")), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.L.Account("ada"), []byte(`{"username":"ada"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	writeFull(t, filepath.Join(n.L.Site("ada"), "public", "up.bin"), 2<<20)
	got, err := n.Usage(context.Background(), []string{"ada", "bob", "../ada", ""}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got["ada"] < 2<<20 || got["ada"] > 2<<20+64<<10 {
		t.Fatalf("usage: %v, want ada alone at 2 MiB and a few blocks", got)
	}
	// An action's result whose walk fails gives the last whole figure, not
	// a partial one or 0.
	if err := os.Rename(n.L.Site("ada"), n.L.Site("ada")+".moved"); err != nil {
		t.Fatal(err)
	}
	if b := n.siteBytes("ada"); b != got["ada"] {
		t.Fatalf("a failed walk for an action's result: %d, want the last figure %d", b, got["ada"])
	}
	// A second request waits while one walks; past its budget it gives up.
	n.usage <- struct{}{}
	if _, err := n.Usage(context.Background(), []string{"ada"}, 50*time.Millisecond); !errors.Is(err, ErrUsageBusy) {
		t.Fatalf("while another request walks: %v", err)
	}
	<-n.usage
}

// newRootedNode is a hosting node of the default configuration with its
// root in a fresh temporary directory, not started (no nginx): what the
// usage tests measure needs only its layout and records.
func newRootedNode(t *testing.T) *Node {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Root = t.TempDir()
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
