package hosting

import (
	"strings"
	"testing"

	"github.com/hostplane/hostplane/tests/framework/hostenv"
)

// TestOtherTenantsLogsAreNotReadable (outside-in): a program run as a
// customer's account reads what the account may (the pools disable PHP's
// program functions, a plan allowing them may come; the test runs the
// program as the account), so nothing on the node another customer's
// traffic writes may be readable by it: not nginx's access and
// error logs (every site's request lines with their query strings, every
// site's PHP messages), nor PHP-FPM's.
func TestOtherTenantsLogsAreNotReadable(t *testing.T) {
	w := newWorld(t)
	name := w.env.Prefix
	put := func(user, pw, content string) {
		t.Helper()
		c, err := hostenv.SFTP(w.env.SSHAddr, user, pw)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := hostenv.Put(c, "/public/index.php", content); err != nil {
			t.Fatal(err)
		}
	}
	userA, domA, userB, domB := name+"r", "r-"+name+".test", name+"v", "v-"+name+".test"
	a := w.create(userA, domA)
	b := w.create(userB, domB)
	w.mustSucceed(a.Action.ID)
	w.mustSucceed(b.Action.ID)

	// B's visitors: a request with a secret in its query string, and B's
	// PHP logging a message with another.
	put(userB, b.SFTPPassword, `<?php error_log("B-PHP-SECRET-`+name+`"); echo "ok";`)
	if code, body := hostenv.Get(t, w.env.HTTPAddr, domB, "/index.php?token=B-QUERY-SECRET-"+name); code != 200 || body != "ok" {
		t.Fatalf("B's site: %d %q", code, body)
	}
	root := w.env.Root
	// A program A runs (the pools' PHP runs none: the test runs it as A).
	out, _ := hostenv.RunAs(t, userA, "cat "+root+"/nginx/logs/* "+root+"/fpm/*/*.log 2>&1")
	if !strings.Contains(out, "Permission denied") && !strings.Contains(out, "B-QUERY-SECRET-"+name) {
		t.Fatalf("A's command did not run: %q", out)
	}
	for _, secret := range []string{"B-QUERY-SECRET-" + name, "B-PHP-SECRET-" + name} {
		if strings.Contains(out, secret) {
			t.Errorf("a program of account A reads %s of account B's traffic in the node's logs", secret)
		}
	}
	if t.Failed() {
		t.Logf("what A read (first 2000 bytes):\n%.2000s", out)
	}
}
