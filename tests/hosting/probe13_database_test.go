package hosting

import (
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
	"github.com/hostplane/hostplane/tests/framework/hostenv"
)

// probe13DBPHP is a site's database page as a PHP application writes it
// (WordPress's wp-config.php, Laravel's .env): the host, name, user and
// password the customer was given, through mysqli and PDO, no port (with
// "localhost" both use the MariaDB socket PHP is configured with). It counts
// visits in a table of its own.
func probe13DBPHP(host, db, user, password string) string {
	r := strings.NewReplacer("HOST", host, "DBNAME", db, "USER", user, "PASS", password)
	return r.Replace(`<?php
header('Content-Type: text/plain');
mysqli_report(MYSQLI_REPORT_OFF);
$m = @mysqli_connect('HOST', 'USER', 'PASS', 'DBNAME');
if (!$m) { echo "mysqli=DENIED:", mysqli_connect_errno(), " ", mysqli_connect_error(), "\n"; }
else { mysqli_query($m, "CREATE TABLE IF NOT EXISTS visits (n INT)"); mysqli_query($m, "INSERT INTO visits VALUES (1)");
  echo "mysqli=OK:", mysqli_fetch_row(mysqli_query($m, "SELECT COUNT(*) FROM visits"))[0], "\n"; }
try { $p = new PDO('mysql:host=HOST;dbname=DBNAME', 'USER', 'PASS');
  echo "pdo=OK:", $p->query("SELECT COUNT(*) FROM visits")->fetchColumn(), "\n"; }
catch (Throwable $e) { echo "pdo=DENIED:", $e->getMessage(), "\n"; }
`)
}

// TestProbe13SiteReachesItsDatabase (outside-in): a customer's PHP
// application connects to its database with what the API gave: db_host,
// db_name and db_user of GET /v1/hosting/{id} and the password shown once.
// With db_host "localhost" PHP (mysqli, PDO) connects through its default
// MariaDB socket, which must be the node's MariaDB (--hosting-mariadb-socket),
// wherever the operator put it: here a private socket, as any node whose
// MariaDB is not at Debian's default path. After a database password reset
// (target db) the application with the old password is refused at once and
// the new password connects to the same data; SFTP keeps working with its
// password.
func TestProbe13SiteReachesItsDatabase(t *testing.T) {
	w := newWorld(t)
	ctx := hostenv.Ctx(t)
	user, domain, created := w.activeSite("d", "db")
	id := created.Hosting.ID
	view, err := w.client(2, w.key).HostingAccount(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	conn := view.Connection
	if conn.DBHost == "" || conn.DBName != user || conn.DBUser != user {
		t.Fatalf("connection %+v", conn)
	}

	sftpc, err := hostenv.SFTP(w.env.SSHAddr, user, created.SFTPPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer sftpc.Close()
	put := func(name, password string) {
		t.Helper()
		if err := hostenv.Put(sftpc, "/public/"+name, probe13DBPHP(conn.DBHost, conn.DBName, conn.DBUser, password)); err != nil {
			t.Fatal(err)
		}
	}
	page := func(name string) string {
		t.Helper()
		code, body := hostenv.Get(t, w.env.HTTPAddr, domain, "/"+name)
		if code != 200 {
			t.Fatalf("/%s: %d %q", name, code, body)
		}
		return body
	}
	put("old.php", created.DBPassword)
	if body := page("old.php"); !strings.Contains(body, "mysqli=OK:1\n") || !strings.Contains(body, "pdo=OK:1\n") {
		t.Fatalf("the site cannot use its database with the connection the API gave (db_host %q): %q", conn.DBHost, body)
	}

	reset, err := w.client(0, w.key).ResetHostingPassword(ctx, id, "db")
	if err != nil {
		t.Fatal(err)
	}
	if reset.DBPassword == "" || reset.SFTPPassword != "" {
		t.Fatalf("reset of target db answered %+v", reset)
	}
	framework.WaitActionSuccess(t, w.client(1, w.key), reset.Action.ID, 60*time.Second)
	if body := page("old.php"); !strings.Contains(body, "mysqli=DENIED:1045") || !strings.Contains(body, "pdo=DENIED:") {
		t.Fatalf("the old database password still works after the reset: %q", body)
	}
	put("new.php", reset.DBPassword)
	if body := page("new.php"); !strings.Contains(body, "mysqli=OK:2\n") || !strings.Contains(body, "pdo=OK:2\n") {
		t.Fatalf("the new database password: %q", body)
	}
	// SFTP still takes its own password (a new login, not the open one).
	c2, err := hostenv.SFTP(w.env.SSHAddr, user, created.SFTPPassword)
	if err != nil {
		t.Fatalf("sftp after a db-only reset: %v", err)
	}
	c2.Close()
	if h, err := w.client(2, w.key).HostingAccount(ctx, id); err != nil || h.Status != api.HostingActive {
		t.Fatalf("account after the reset: %+v %v", h, err)
	}
}
