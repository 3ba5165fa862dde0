package hosting

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// The btrfs command is handed sites/<user> and sites/<user>/run only: a
// name that is no hosting username (a path, "..", upper case) is refused
// before any command runs.
func TestQuotaPathStaysInSites(t *testing.T) {
	root := t.TempDir()
	n, err := New(Config{Root: root, SFTPGroup: "sftp", WebUser: "www-data", MailSpool: "/var/mail"})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"", "..", "../etc", "a/b", "/etc", "Root", "a b", "a\n"} {
		if p, err := n.quotaPath(u, false); err == nil {
			t.Errorf("quotaPath(%q) = %s", u, p)
		}
		if p, err := n.quotaPath(u, true); err == nil {
			t.Errorf("quotaPath(%q, run) = %s", u, p)
		}
		if err := n.removeSite(context.Background(), u); err == nil {
			t.Errorf("removeSite(%q) accepted", u)
		}
	}
	p, err := n.quotaPath("examplecom", false)
	if err != nil || p != filepath.Join(root, "sites", "examplecom") {
		t.Fatalf("quotaPath(examplecom) = %s %v", p, err)
	}
	p, err = n.quotaPath("examplecom", true)
	if err != nil || p != filepath.Join(root, "sites", "examplecom", "run") {
		t.Fatalf("quotaPath(examplecom, run) = %s %v", p, err)
	}
	// A plain directory is no subvolume: no limit, and it is removed as
	// a directory.
	if err := os.MkdirAll(filepath.Join(root, "sites", "examplecom", "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	if l, ok, err := n.SiteLimit(context.Background(), "examplecom"); err != nil || ok {
		t.Fatalf("SiteLimit of a plain directory: %d %v %v", l, ok, err)
	}
	if err := n.removeSite(context.Background(), "examplecom"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(root, "sites", "examplecom")); !os.IsNotExist(err) {
		t.Fatalf("plain site left: %v", err)
	}
}
