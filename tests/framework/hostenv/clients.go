package hostenv

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// RemoveUsers deletes the Linux users (and their groups) whose names start
// with prefix, and the group prefix+"sftp": the last cleanup of a test.
func RemoveUsers(tb testing.TB, prefix string) {
	tb.Cleanup(func() { removeUsersNow(prefix) })
}

// SFTP logs in with a password; the caller closes the client.
func SFTP(addr, user, password string) (*sftp.Client, error) {
	conn, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.Password(password)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
	if err != nil {
		return nil, err
	}
	c, err := sftp.NewClient(conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// Put uploads a file over SFTP.
func Put(c *sftp.Client, path, content string) error {
	f, err := c.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(f, content); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// PutProbe logs in over SFTP as user and uploads ProbePHP as
// /public/index.php; what names the login in a failure ("what: error").
func PutProbe(tb testing.TB, sshAddr, user, password, what string) {
	tb.Helper()
	c, err := SFTP(sshAddr, user, password)
	if err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
	defer c.Close()
	if err := Put(c, "/public/index.php", ProbePHP); err != nil {
		tb.Fatal(err)
	}
}

// WantSite fails tb ("what: code body") unless http://domain/ on the node at
// httpAddr answers 200 from PHP run as user (ProbePHP's "user=USER" line).
func WantSite(tb testing.TB, httpAddr, domain, user, what string) {
	tb.Helper()
	if code, body := Get(tb, httpAddr, domain, "/"); code != 200 || !strings.Contains(body, "user="+user+"\n") {
		tb.Fatalf("%s: %d %q", what, code, body)
	}
}

// Get fetches http://addr+path with Host host.
func Get(tb testing.TB, addr, host, path string) (int, string) {
	tb.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	req.Host = host
	c := &http.Client{Timeout: 15 * time.Second}
	res, err := c.Do(req)
	if err != nil {
		tb.Fatalf("GET %s%s: %v", host, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// RunAs runs script with sh as the Linux user name (its uid and group, no
// supplementary groups), as a program the account runs would, and returns
// its output (stdout and stderr).
func RunAs(tb testing.TB, name, script string) (string, error) {
	tb.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		tb.Fatalf("user %s: %v", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + u.HomeDir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// DBLogin runs a query as user over TCP and returns its output or error.
func DBLogin(port int, user, password, db, query string) (string, error) {
	out, err := exec.Command("mariadb", "--no-defaults", "-h127.0.0.1", "-P"+strconv.Itoa(port), "-u"+user,
		"-p"+password, db, "-N", "-B", "-e", query).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%v: %s", err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// ProbePHP is an index.php that reports who runs it and tries what the query
// asks: read (file_get_contents), db (a database login with u and p on
// port). The pools disable posix_getpwuid (it lists the node's accounts):
// "user=NAME" is printed when the running uid owns the script (uploaded over
// SFTP by NAME), with the owner's name from get_current_user, "user=uid-N"
// otherwise.
const ProbePHP = `<?php
header('Content-Type: text/plain');
echo "user=", posix_geteuid() === fileowner(__FILE__) ? get_current_user() : "uid-" . posix_geteuid(), "\n";
if (isset($_GET['read'])) { $r = @file_get_contents($_GET['read']); echo "read=", $r === false ? "DENIED" : "OK:" . $r, "\n"; }
if (isset($_GET['db'])) { mysqli_report(MYSQLI_REPORT_OFF);
  $m = @mysqli_connect('127.0.0.1', $_GET['u'], $_GET['p'], $_GET['db'], (int)$_GET['port']);
  echo "db=", $m ? "OK" : "DENIED:" . mysqli_connect_errno(), "\n"; }
echo "php=", PHP_MAJOR_VERSION, ".", PHP_MINOR_VERSION, "\n";
`
