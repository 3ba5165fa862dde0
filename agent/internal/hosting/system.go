package hosting

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// run runs a program (never a shell) with stdin, returning its error with
// output. Arguments are validated names and paths; secrets go through stdin.
func run(ctx context.Context, stdin string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, tail(string(out), 300))
	}
	return string(out), nil
}

// userEntry is a line of /etc/passwd.
type userEntry struct {
	uid, gid int
	comment  string
	home     string
}

func lookupUser(name string) (*userEntry, error) {
	u, err := user.Lookup(name)
	if err != nil {
		var unk user.UnknownUserError
		if errors.As(err, &unk) {
			return nil, nil
		}
		return nil, err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &userEntry{uid: uid, gid: gid, comment: u.Name, home: u.HomeDir}, nil
}

func groupExists(name string) bool {
	_, err := user.LookupGroup(name)
	return err == nil
}

func ensureGroup(ctx context.Context, name string) error {
	if groupExists(name) {
		return nil
	}
	_, err := run(ctx, "", "groupadd", "--system", name)
	if err != nil && groupExists(name) { // created concurrently
		return nil
	}
	return err
}

// killUserProcesses SIGKILLs every process whose real or effective uid is
// uid (the account's SFTP sessions and PHP workers), found through /proc.
// removeOwnedEntries removes every entry at the top of dirs that uid owns
// (a directory with all it holds). Only the top level: in a sticky
// directory (/tmp) no other user can rename or replace such an entry, and
// os.RemoveAll does not follow symbolic links, so nothing outside it is
// touched. uid's processes must have ended (killUserProcesses). A missing
// directory is skipped.
func removeOwnedEntries(dirs []string, uid int) error {
	if uid <= 0 {
		return nil
	}
	for _, dir := range dirs {
		ents, err := os.ReadDir(dir)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return err
		}
		for _, e := range ents {
			p := filepath.Join(dir, e.Name())
			fi, err := os.Lstat(p)
			if err != nil {
				continue
			}
			if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != uid {
				continue
			}
			if err := os.RemoveAll(p); err != nil {
				return fmt.Errorf("removing %s of the deleted account: %w", p, err)
			}
		}
	}
	return nil
}

func killUserProcesses(uid int) {
	if uid <= 0 {
		return
	}
	for range 3 {
		ents, _ := os.ReadDir("/proc")
		killed := 0
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid <= 1 {
				continue
			}
			f, err := os.Open(filepath.Join("/proc", e.Name(), "status"))
			if err != nil {
				continue
			}
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if l := sc.Text(); strings.HasPrefix(l, "Uid:") {
					fs := strings.Fields(l)
					for _, x := range fs[1:3] {
						if n, _ := strconv.Atoi(x); n == uid {
							_ = syscall.Kill(pid, syscall.SIGKILL)
							killed++
							break
						}
					}
					break
				}
			}
			f.Close()
		}
		if killed == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// MySQLNativeHash is the mysql_native_password hash of a password
// ("*" and 40 upper-case hex digits), what MariaDB stores for it.
func MySQLNativeHash(password string) string {
	a := sha1.Sum([]byte(password))
	b := sha1.Sum(a[:])
	return "*" + strings.ToUpper(hex.EncodeToString(b[:]))
}

var nativeHashRE = regexp.MustCompile(`^\*[0-9A-F]{40}$`)

// cryptHashRE is a SHA-512 crypt hash.
var cryptHashRE = regexp.MustCompile(`^\$6\$(rounds=[0-9]+\$)?[./0-9A-Za-z]{1,16}\$[./0-9A-Za-z]{86}$`)

// MariaDB administers the node's MariaDB as root over its unix socket with
// the mariadb client (SQL on stdin).
type MariaDB struct {
	Client string // mariadb
	Socket string
}

func (m *MariaDB) exec(ctx context.Context, sql string) (string, error) {
	return run(ctx, sql, m.Client, "--no-defaults", "--socket="+m.Socket, "-uroot", "-N", "-B")
}

// sqlString quotes a string literal; the values reaching here are validated
// names and hashes already, this is the second fence.
func sqlString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\x00", `\0`, "\n", `\n`, "\r", `\r`).Replace(s) + "'"
}

// sqlIdent quotes an identifier.
func sqlIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// dbHosts are the hosts an account's database user exists for: TCP from
// loopback logs in as 'u'@'127.0.0.1', the unix socket as 'u'@'localhost'.
var dbHosts = []string{"localhost", "127.0.0.1"}

func dbUsers(user string) string {
	var us []string
	for _, h := range dbHosts {
		us = append(us, sqlString(user)+"@"+sqlString(h))
	}
	return strings.Join(us, ", ")
}

// EnsureAccount creates (or re-sets) database db and its user with the
// password hash; idempotent.
func (m *MariaDB) EnsureAccount(ctx context.Context, db, user, nativeHash string) error {
	if !nativeHashRE.MatchString(nativeHash) {
		return errors.New("database password hash is malformed")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE DATABASE IF NOT EXISTS %s CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;\n", sqlIdent(db))
	for _, h := range dbHosts {
		u := sqlString(user) + "@" + sqlString(h)
		fmt.Fprintf(&b, "CREATE USER IF NOT EXISTS %s IDENTIFIED BY PASSWORD %s;\n", u, sqlString(nativeHash))
		fmt.Fprintf(&b, "ALTER USER %s IDENTIFIED BY PASSWORD %s;\n", u, sqlString(nativeHash))
		fmt.Fprintf(&b, "GRANT ALL PRIVILEGES ON %s.* TO %s;\n", sqlIdent(db), u)
	}
	_, err := m.exec(ctx, b.String())
	return err
}

// SetPassword sets the database user's password hash (for every host it
// exists for); the user must exist. The hash is checked here, the user is a
// validated username quoted as a literal.
func (m *MariaDB) SetPassword(ctx context.Context, user, nativeHash string) error {
	if !nativeHashRE.MatchString(nativeHash) {
		return errors.New("database password hash is malformed")
	}
	var b strings.Builder
	for _, h := range dbHosts {
		fmt.Fprintf(&b, "ALTER USER %s@%s IDENTIFIED BY PASSWORD %s;\n", sqlString(user), sqlString(h), sqlString(nativeHash))
	}
	if out, err := m.exec(ctx, b.String()); err != nil {
		// The client's message can quote the statement (the hash): name
		// what failed only.
		if strings.Contains(out, "ERROR 1396") {
			return fmt.Errorf("database user %s does not exist", user)
		}
		return fmt.Errorf("setting the password of database user %s failed", user)
	}
	return nil
}

// Lock locks (or unlocks) the account's database user; locking also ends
// its open connections (ACCOUNT LOCK alone leaves them open).
func (m *MariaDB) Lock(ctx context.Context, user string, lock bool) error {
	word := "UNLOCK"
	if lock {
		word = "LOCK"
	}
	if _, err := m.exec(ctx, fmt.Sprintf("ALTER USER IF EXISTS %s ACCOUNT %s;\n", dbUsers(user), word)); err != nil {
		return err
	}
	if lock {
		return m.killConnections(ctx, user)
	}
	return nil
}

func (m *MariaDB) killConnections(ctx context.Context, user string) error {
	out, err := m.exec(ctx, fmt.Sprintf("SELECT id FROM information_schema.processlist WHERE user = %s;\n", sqlString(user)))
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, f := range strings.Fields(out) {
		if id, err := strconv.ParseUint(f, 10, 64); err == nil {
			fmt.Fprintf(&b, "KILL CONNECTION %d;\n", id)
		}
	}
	if b.Len() == 0 {
		return nil
	}
	// A connection that ended meanwhile makes KILL fail: ignore that.
	_, _ = m.exec(ctx, b.String())
	return nil
}

// Drop removes the account's database and user; idempotent.
func (m *MariaDB) Drop(ctx context.Context, db, user string) error {
	if err := m.Lock(ctx, user, true); err != nil {
		return err
	}
	_, err := m.exec(ctx, fmt.Sprintf("DROP USER IF EXISTS %s;\nDROP DATABASE IF EXISTS %s;\n", dbUsers(user), sqlIdent(db)))
	return err
}

// DatabaseExists says whether database db exists.
func (m *MariaDB) DatabaseExists(ctx context.Context, db string) (bool, error) {
	out, err := m.exec(ctx, fmt.Sprintf("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = %s;\n", sqlString(db)))
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(out) != "0", nil
}

// Ping checks that the server answers.
func (m *MariaDB) Ping(ctx context.Context) error {
	_, err := m.exec(ctx, "SELECT 1;\n")
	return err
}

func userLookupGroup(name string) (int, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(g.Gid)
}
