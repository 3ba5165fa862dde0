package hosting

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/hostplane/hostplane/tests/framework/hostenv"
)

// TestDiskUsageKeptCurrent (outside-in): a customer uploads 4 MiB over SFTP
// into the site of a hosting account on the real node (sshd, the account's
// chroot) and, with no action run on the account, GET /v1/hosting/{id}
// shows quota.disk_used_bytes grown by that much within the usage interval
// (--hosting-usage-interval=1s here); removing the file over SFTP brings it
// back down. Before the periodic report the figure was the one the
// account's last action measured, and stayed so.
func TestDiskUsageKeptCurrent(t *testing.T) {
	w := newWorldWith(t, worldOptions{coordinatorArgs: func(*hostenv.Env) []string {
		return []string{"--hosting-usage-interval=1s"}
	}})
	user, _, created := w.activeSite("q", "q")
	id := created.Hosting.ID
	cl := w.client(2, w.key)
	get := func() api.HostingAccount {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		h, err := cl.HostingAccount(ctx, id)
		if err != nil {
			t.Fatalf("GET /v1/hosting/%s: %v", id, err)
		}
		return h
	}
	actions := func() int {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		l, err := cl.Actions(ctx, client.ActionsQuery{ResourceType: "hosting", ResourceID: id, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		return len(l.Data)
	}
	// waitUsage polls the customer's view until want holds, for at most
	// the interval and the report's round trip several times over.
	waitUsage := func(what string, want func(uint64) bool) uint64 {
		t.Helper()
		var last uint64
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if last = get().Quota.DiskUsedBytes; want(last) {
				return last
			}
		}
		t.Fatalf("%s: quota.disk_used_bytes still %d after 15 s", what, last)
		return 0
	}
	base := waitUsage("settled", func(uint64) bool { return true })
	nActions := actions()

	c, err := hostenv.SFTP(w.env.SSHAddr, user, created.SFTPPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := hostenv.Put(c, "/private/backup.tar", string(bytes.Repeat([]byte("hostplane usage "), 4<<20/16))); err != nil {
		t.Fatalf("upload over SFTP: %v", err)
	}
	up := waitUsage("after a 4 MiB upload over SFTP", func(b uint64) bool { return b >= base+4<<20 })
	if up > base+4<<20+256<<10 {
		t.Fatalf("after a 4 MiB upload: %d bytes, was %d: grew by more than the file's blocks", up, base)
	}
	if err := c.Remove("/private/backup.tar"); err != nil {
		t.Fatal(err)
	}
	waitUsage("after the upload was removed", func(b uint64) bool { return b < base+64<<10 })
	if n := actions(); n != nActions {
		t.Fatalf("%d actions on the account during the test, want none (the figure must come from the periodic report)", n-nActions)
	}
}
