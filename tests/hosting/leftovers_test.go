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

// leftoverScript writes a secret (mode 0600) as hpaudit-NAME into the
// node's shared temporary directories when run with "w", and prints the
// uid it runs as and what it can read of those files.
const leftoverScript = `[ "$1" = w ] && { umask 077; for d in /tmp /var/tmp /dev/shm; do echo SECRET-OF-@NAME@ > $d/hpaudit-@NAME@; done; }
echo "uid=$(id -u)"
echo "read=$(cat /tmp/hpaudit-@NAME@ /var/tmp/hpaudit-@NAME@ /dev/shm/hpaudit-@NAME@ 2>/dev/null)"
`

// TestDeletedAccountLeavesNoFiles (outside-in): a program run as a hosting
// account can write files outside its home, in the node's shared temporary
// directories (/tmp, /var/tmp, /dev/shm). (The pools' PHP runs no programs
// and its open_basedir keeps it out of those directories; the test runs the
// program as the account itself, as a plan allowing programs would.) Deleting the account must remove
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
	script := strings.ReplaceAll(leftoverScript, "@NAME@", name)
	site := func(user, arg string) string {
		t.Helper()
		out, err := hostenv.RunAs(t, user, "set -- "+arg+"\n"+script)
		if err != nil {
			t.Fatalf("%s: %v: %s", user, err, out)
		}
		return out
	}

	userA, domA := name+"x", "x-"+name+".test"
	a := w.create(userA, domA)
	w.mustSucceed(a.Action.ID)
	outA := site(userA, "w")
	if !strings.Contains(outA, "read=SECRET-OF-"+name) {
		t.Fatalf("A's program did not write its files: %q", outA)
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
	outB := site(userB, "-")
	t.Logf("A had uid %s; B: %q", uidA, outB)
	if strings.Contains(outB, "SECRET-OF-"+name) {
		t.Errorf("the next account (%s) reads the deleted account's private files: %q", strings.Split(outB, "\n")[0], outB)
	}
	if len(left) > 0 {
		out, _ := exec.Command("ls", append([]string{"-ln"}, left...)...).CombinedOutput()
		t.Errorf("the deleted account's files are left:\n%s", out)
	}
}
