package hosting

import (
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/tests/framework/hostenv"
)

// TestSuspendEndsOpenSessions (outside-in): suspending an account ends what
// its owner already had open, not only new logins: an SFTP session stops
// working and a database query in progress is cut off; after unsuspend both
// log in again.
func TestSuspendEndsOpenSessions(t *testing.T) {
	w := newWorld(t)
	ctx := hostenv.Ctx(t)
	user, _, c := w.activeSite("s", "s")

	sess, err := hostenv.SFTP(w.env.SSHAddr, user, c.SFTPPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if _, err := sess.ReadDir("/public"); err != nil {
		t.Fatal(err)
	}
	type result struct {
		out string
		err error
		at  time.Time
	}
	query := make(chan result, 1)
	go func() {
		out, err := hostenv.DBLogin(w.env.DBPort, user, c.DBPassword, user, "SELECT SLEEP(40)")
		query <- result{out, err, time.Now()}
	}()
	// The query is running before the suspension starts.
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := hostenv.DBLogin(w.env.DBPort, user, c.DBPassword, user,
			"SELECT COUNT(*) FROM information_schema.processlist WHERE info LIKE 'SELECT SLEEP(40)%'")
		if out == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the long query did not start: %q", out)
		}
		time.Sleep(100 * time.Millisecond)
	}

	acc, err := w.client(0, w.key).SuspendHosting(ctx, c.Hosting.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	w.mustSucceed(acc.Action.ID)
	suspended := time.Now()
	if _, err := sess.ReadDir("/public"); err == nil {
		t.Error("the open SFTP session still works after the suspension")
	}
	select {
	case r := <-query:
		if r.err == nil || strings.TrimSpace(r.out) == "0" {
			t.Errorf("the query in progress ran to its end: %q %v", r.out, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("the query in progress still runs %s after the suspension", time.Since(suspended).Round(time.Second))
	}

	acc, err = w.client(1, w.key).UnsuspendHosting(ctx, c.Hosting.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	w.mustSucceed(acc.Action.ID)
	if s, err := hostenv.SFTP(w.env.SSHAddr, user, c.SFTPPassword); err != nil {
		t.Fatalf("sftp after unsuspend: %v", err)
	} else {
		s.Close()
	}
	if _, err := hostenv.DBLogin(w.env.DBPort, user, c.DBPassword, user, "SELECT 1"); err != nil {
		t.Fatalf("database after unsuspend: %v", err)
	}
}
