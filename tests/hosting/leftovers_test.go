package hosting

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
	"github.com/hostplane/hostplane/tests/framework/hostenv"
)

// leftoverPHP prints the account's uid and what it can read of the files
// named hpaudit-NAME in the node's shared temporary directories; with ?w=1
// it first writes a secret there (mode 0600), as any PHP site can.
const leftoverPHP = `<?php
header('Content-Type: text/plain');
if (isset($_GET['w'])) { shell_exec('umask 077; for d in /tmp /var/tmp /dev/shm; do echo SECRET-OF-@NAME@ > $d/hpaudit-@NAME@; done'); }
echo "uid=", trim(shell_exec('id -u')), "\n";
echo "read=", shell_exec('cat /tmp/hpaudit-@NAME@ /var/tmp/hpaudit-@NAME@ /dev/shm/hpaudit-@NAME@ 2>/dev/null'), "\n";
`

// TestDeletedAccountLeavesNoFiles (outside-in): a hosting account's PHP
// can write files outside its home, in the node's shared temporary
// directories (/tmp, /var/tmp, /dev/shm). Deleting the account must remove
// them: the next account made on the node gets the freed uid, and would
// own (and read) the deleted customer's private files.
func TestDeletedAccountLeavesNoFiles(t *testing.T) {
	w := newWorld(t)
	ctx := hostenv.Ctx(t)
	name := w.env.Prefix
	var paths []string
	for _, d := range []string{"/tmp", "/var/tmp", "/dev/shm"} {
		paths = append(paths, filepath.Join(d, "hpaudit-"+name))
	}
	t.Cleanup(func() {
		for _, p := range paths {
			_ = os.Remove(p)
		}
	})
	php := strings.ReplaceAll(leftoverPHP, "@NAME@", name)
	site := func(user, pw, domain, query string) string {
		t.Helper()
		c, err := hostenv.SFTP(w.env.SSHAddr, user, pw)
		if err != nil {
			t.Fatal(err)
		}
		if err := hostenv.Put(c, "/public/index.php", php); err != nil {
			t.Fatal(err)
		}
		c.Close()
		code, body := hostenv.Get(t, w.env.HTTPAddr, domain, "/index.php"+query)
		if code != 200 {
			t.Fatalf("%s: %d %q", domain, code, body)
		}
		return body
	}

	userA, domA := name+"x", "x-"+name+".test"
	a := w.create(userA, domA)
	w.mustSucceed(a.Action.ID)
	outA := site(userA, a.SFTPPassword, domA, "?w=1")
	if !strings.Contains(outA, "read=SECRET-OF-"+name) {
		t.Fatalf("A's PHP did not write its files: %q", outA)
	}
	uidA := strings.TrimPrefix(strings.Split(outA, "\n")[0], "uid=")
	// A key with the hosting scopes only deletes it and follows the action
	// (SPEC: GET /actions/:id with the scope that reads its resource).
	hk, err := w.c.AnyAlive(nil).Admin().CreateKey(ctx, w.acct, api.KeyCreateRequest{Name: "hosting only",
		Scopes: []string{api.ScopeHostingRead, api.ScopeHostingWrite, api.ScopeHostingDestroy}})
	if err != nil {
		t.Fatal(err)
	}
	del, err := w.client(0, hk.Key).DeleteHosting(ctx, a.Hosting.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	framework.WaitActionSuccess(t, w.client(1, hk.Key), del.Action.ID, 60*time.Second)

	var left []string
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			left = append(left, p)
		}
	}
	userB, domB := name+"y", "y-"+name+".test"
	b := w.create(userB, domB)
	w.mustSucceed(b.Action.ID)
	outB := site(userB, b.SFTPPassword, domB, "")
	t.Logf("A had uid %s; B: %q", uidA, outB)
	if strings.Contains(outB, "SECRET-OF-"+name) {
		t.Errorf("the next account (%s) reads the deleted account's private files: %q", strings.Split(outB, "\n")[0], outB)
	}
	if len(left) > 0 {
		out, _ := exec.Command("ls", append([]string{"-ln"}, left...)...).CombinedOutput()
		t.Errorf("the deleted account's files are left:\n%s", out)
	}
}
