package hosting

import (
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
	"github.com/hostplane/hostplane/tests/framework/hostenv"
)

// TestHostingPasswordReset: a customer who lost the passwords gets new ones
// through POST /v1/hosting/{id}/password-reset on three coordinators, with
// the node's real sshd and MariaDB: after a reset of both, the old SFTP
// password is refused over SSH and the new one logs in over SFTP, the old
// database password is refused and the new one connects (TCP and the unix
// socket); target db changes the database password and leaves the SFTP one
// working; the operator's hostplanectl hosting password-reset --target sftp
// prints a password that logs in; an agent killed mid-reset completes it once
// on restart. No password is written by any coordinator or the agent; another
// account gets a 404, a suspended account a 409.
func TestHostingPasswordReset(t *testing.T) {
	w := newWorld(t)
	ctx := hostenv.Ctx(t)
	user, domain, created := w.activeSite("p", "p")
	id := created.Hosting.ID
	hostenv.PutProbe(t, w.env.SSHAddr, user, created.SFTPPassword, "sftp with the order's password")

	if _, err := w.client(0, w.other).ResetHostingPassword(ctx, id, ""); api.StatusOf(err) != http.StatusNotFound {
		t.Fatalf("another account resets the passwords: %v", err)
	}

	// Both: the old passwords stop working, the new ones work.
	r, err := w.client(1, w.key).ResetHostingPassword(ctx, id, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.SFTPPassword) != 20 || len(r.DBPassword) != 20 || r.Action.Command != api.ActionHostingPasswordReset {
		t.Fatalf("reset answer %+v", r)
	}
	w.mustSucceed(r.Action.ID)
	if c, err := hostenv.SFTP(w.env.SSHAddr, user, created.SFTPPassword); err == nil {
		c.Close()
		t.Fatal("the old SFTP password still logs in after the reset")
	} else if !strings.Contains(err.Error(), "unable to authenticate") {
		t.Fatalf("old SFTP password: not an authentication refusal: %v", err)
	}
	sess, err := hostenv.SFTP(w.env.SSHAddr, user, r.SFTPPassword)
	if err != nil {
		t.Fatalf("sftp with the new password: %v", err)
	}
	if _, err := sess.Stat("/public/index.php"); err != nil {
		t.Fatalf("the account's files over SFTP with the new password: %v", err)
	}
	sess.Close()
	if out, err := hostenv.DBLogin(w.env.DBPort, user, created.DBPassword, user, "SELECT 1"); err == nil || !strings.Contains(out, "Access denied") {
		t.Fatalf("the old database password after the reset: %q %v", out, err)
	}
	if out, err := hostenv.DBLogin(w.env.DBPort, user, r.DBPassword, user, "SELECT CURRENT_USER()"); err != nil || out != user+"@127.0.0.1" {
		t.Fatalf("database over TCP with the new password: %q %v", out, err)
	}
	if out, err := socketLogin(w, user, r.DBPassword); err != nil || out != user+"@localhost" {
		t.Fatalf("database over the socket with the new password: %q %v", out, err)
	}
	if out, err := socketLogin(w, user, created.DBPassword); err == nil {
		t.Fatalf("the old database password over the socket: %q", out)
	}
	hostenv.WantSite(t, w.env.HTTPAddr, domain, user, "site after the reset")

	// Target db: a new database password; the SFTP password stays.
	r2, err := w.client(2, w.key).ResetHostingPassword(ctx, id, api.HostingPasswordDB)
	if err != nil {
		t.Fatal(err)
	}
	if r2.SFTPPassword != "" || len(r2.DBPassword) != 20 || r2.DBPassword == r.DBPassword {
		t.Fatalf("target db answer %+v", r2)
	}
	w.mustSucceed(r2.Action.ID)
	if _, err := hostenv.DBLogin(w.env.DBPort, user, r.DBPassword, user, "SELECT 1"); err == nil {
		t.Fatal("the replaced database password still connects")
	}
	if _, err := hostenv.DBLogin(w.env.DBPort, user, r2.DBPassword, user, "SELECT 1"); err != nil {
		t.Fatalf("database with the target-db password: %v", err)
	}
	if c, err := hostenv.SFTP(w.env.SSHAddr, user, r.SFTPPassword); err != nil {
		t.Fatalf("target db changed the SFTP password: %v", err)
	} else {
		c.Close()
	}

	// Target sftp, by the operator (hostplanectl hosting password-reset):
	// the printed password logs in, the database password stays.
	out, err := exec.Command(framework.Ctl(t), "--socket", w.c.Nodes[1].AdminSocket(), "hosting", "password-reset", id,
		"--target", "sftp").CombinedOutput()
	if err != nil {
		t.Fatalf("hostplanectl hosting password-reset: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`action (act_\S+) .*\nSFTP password \(shown only this once\): (\S+)\n$`).FindStringSubmatch(string(out))
	if m == nil || strings.Contains(string(out), "database password") {
		t.Fatalf("hostplanectl output:\n%s", out)
	}
	w.mustSucceed(m[1])
	sftp3 := m[2]
	if _, err := hostenv.DBLogin(w.env.DBPort, user, r2.DBPassword, user, "SELECT 1"); err != nil {
		t.Fatalf("target sftp changed the database password: %v", err)
	}
	if c, err := hostenv.SFTP(w.env.SSHAddr, user, r.SFTPPassword); err == nil {
		c.Close()
		t.Fatal("the replaced SFTP password still logs in")
	}
	hostenv.PutProbe(t, w.env.SSHAddr, user, sftp3, "sftp with the password hostplanectl printed")

	// The agent killed mid-reset (after the SFTP step): on restart the reset
	// completes once, from the hashes in its journal.
	w.agent.Stop()
	w.agent.Start(api.NodeOpHostingPasswordReset + ":database")
	w.c.WaitNode(w.nodeID, 30*time.Second, "connected", func(n api.AgentNode) bool { return n.Connected })
	crash, err := w.client(0, w.key).ResetHostingPassword(ctx, id, "")
	if err != nil {
		t.Fatal(err)
	}
	w.agent.WaitExit(60 * time.Second)
	w.agent.Start("")
	w.mustSucceed(crash.Action.ID)
	if _, err := hostenv.DBLogin(w.env.DBPort, user, crash.DBPassword, user, "SELECT 1"); err != nil {
		t.Fatalf("database after the crash: %v", err)
	}
	if _, err := hostenv.DBLogin(w.env.DBPort, user, r2.DBPassword, user, "SELECT 1"); err == nil {
		t.Fatal("the database password before the crashed reset still connects")
	}
	hostenv.PutProbe(t, w.env.SSHAddr, user, crash.SFTPPassword, "sftp after the crash")
	w.recoveredOnce(t, "reset", crash.Action.ID)

	// No coordinator nor the agent wrote any of the passwords.
	w.noneOnDisk(t, "a reset password", r.SFTPPassword, r.DBPassword, r2.DBPassword, sftp3, crash.SFTPPassword, crash.DBPassword)

	// Suspended: refused with a clear code, nothing changes on the node.
	acc, err := w.client(0, w.key).SuspendHosting(ctx, id, "")
	if err != nil {
		t.Fatal(err)
	}
	w.mustSucceed(acc.Action.ID)
	if _, err := w.client(1, w.key).ResetHostingPassword(ctx, id, ""); api.StatusOf(err) != http.StatusConflict || !strings.Contains(err.Error(), "suspended") {
		t.Fatalf("reset of a suspended account: %v", err)
	}
	if _, err := w.c.AnyAlive(nil).Admin().ResetHostingPassword(ctx, id, ""); api.StatusOf(err) != http.StatusConflict || !strings.Contains(err.Error(), "suspended") {
		t.Fatalf("operator's reset of a suspended account: %v", err)
	}
	if _, err := hostenv.SFTP(w.env.SSHAddr, user, crash.SFTPPassword); err == nil {
		t.Fatal("sftp of a suspended account")
	}
}

// socketLogin logs in as user over the node's MariaDB unix socket
// ('user'@'localhost') and returns CURRENT_USER().
func socketLogin(w *world, user, password string) (string, error) {
	out, err := exec.Command("mariadb", "--no-defaults", "--socket="+w.env.DBSocket, "-u"+user, "-p"+password, user,
		"-N", "-B", "-e", "SELECT CURRENT_USER()").CombinedOutput()
	return strings.TrimSpace(string(out)), err
}
