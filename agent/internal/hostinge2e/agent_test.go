// Package hostinge2e tests the hosting role of the agent on real nginx,
// PHP-FPM, MariaDB and sshd: actions through the executor (the contract the
// coordinator speaks), the journal, and a crash in the middle of a create.
package hostinge2e

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/agent/internal/actions"
	"github.com/hostplane/hostplane/agent/internal/hosting"
	"github.com/hostplane/hostplane/agent/internal/hosting/hostingtest"
	"github.com/hostplane/hostplane/agent/internal/journal"
	"github.com/hostplane/hostplane/agent/internal/ops"
	"github.com/hostplane/hostplane/pkg/action"
	"github.com/hostplane/hostplane/pkg/api"
	pb "github.com/hostplane/hostplane/proto"
	"github.com/hostplane/hostplane/tests/framework/hostenv"
)

var plan = api.HostingPlan{PHPWorkers: 2, PHPMemoryMiB: 64, MaxExecutionSeconds: 30, UploadMiB: 8, DiskMiB: 100}

func newManager(t *testing.T, dir string, node *hosting.Node) (*ops.Manager, *journal.DB) {
	t.Helper()
	m, j, err := openManager(dir, node, "")
	if err != nil {
		t.Fatal(err)
	}
	return m, j
}

// openManager is the agent's hosting side on dir (created if missing): the
// journal in dir/journal.db and an ops.Manager that kills its own process at
// failpoint (empty: none). The tests take it without one (newManager), the
// crash helper with the step it dies at.
func openManager(dir string, node *hosting.Node, failpoint string) (*ops.Manager, *journal.DB, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	j, err := journal.Open(filepath.Join(dir, "journal.db"))
	if err != nil {
		return nil, nil, err
	}
	m := ops.New(context.Background(), ops.Config{DataDir: dir, Failpoint: failpoint}, nil, j, slog.New(slog.DiscardHandler), nil)
	m.SetHosting(node)
	return m, j, nil
}

func call(t *testing.T, ex *actions.Executor, a *pb.ActionAssign) *pb.ActionResult {
	t.Helper()
	var mu sync.Mutex
	var res *pb.ActionResult
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ex.Handle(ctx, &pb.Envelope{Seq: 1, Body: &pb.Envelope_ActionAssign{ActionAssign: a}}, func(f *pb.Envelope) error {
		mu.Lock()
		defer mu.Unlock()
		if r := f.GetActionResult(); r != nil {
			res = r
		}
		return nil
	})
	if res == nil {
		t.Fatalf("no result for %s", a.ActionId)
	}
	return res
}

func createAssign(t *testing.T, id, user, domain, sftpPW, dbPW string) *pb.ActionAssign {
	params, err := action.Encode(&action.HostingCreate{Domain: domain, PHPVersion: "8.2", Plan: plan})
	if err != nil {
		t.Fatal(err)
	}
	sec, err := action.EncodeSecrets(api.ActionHostingCreate, map[string]string{action.SecretSFTPPassword: sftpPW, action.SecretDBPassword: dbPW})
	if err != nil {
		t.Fatal(err)
	}
	return &pb.ActionAssign{ActionId: id, Command: api.ActionHostingCreate, Target: user, Params: params, SecretParams: sec}
}

func hostingResult(t *testing.T, r *pb.ActionResult) *api.NodeHostingAccount {
	t.Helper()
	if !r.Success {
		t.Fatalf("action failed: %s: %s", r.ErrorCode, r.ErrorMessage)
	}
	res, err := action.DecodeResult(r.Result)
	if err != nil || res.Hosting == nil {
		t.Fatalf("result %s: %v", r.Result, err)
	}
	return res.Hosting
}

// Hosting actions through the executor: create (passwords only in
// secret_params, never in the journal), a re-send answered from the journal,
// a PHP version refusal listing the installed ones, suspend, unsuspend,
// delete; the inventory reports the PHP versions.
func TestHostingActionsThroughTheExecutor(t *testing.T) {
	e := hostingtest.NewNode(t)
	dir := filepath.Join(e.Cfg.Root, "agent")
	m, j := newManager(t, dir, e.Node)
	defer j.Close()
	ex := actions.New(actions.Config{Manager: m, PollInterval: 20 * time.Millisecond})
	user, domain := e.Prefix+"x", "x-"+e.Prefix+".test"
	sftpPW, dbPW := "SftpSecretPw1234567", "DbSecretPw123456789"

	v := hostingResult(t, call(t, ex, createAssign(t, "act-create-1", user, domain, sftpPW, dbPW)))
	if v.Username != user || v.Domain != domain || v.PHPVersion != "8.2" {
		t.Fatalf("created %+v", v)
	}
	// The journal never holds a password.
	jb, err := os.ReadFile(filepath.Join(dir, "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, pw := range []string{sftpPW, dbPW} {
		if strings.Contains(string(jb), pw) {
			t.Fatal("a password is in the journal file")
		}
	}
	hostenv.PutProbe(t, e.SSHAddr, user, sftpPW, "sftp")
	hostenv.WantSite(t, e.HTTPAddr, domain, user, "site")
	if _, err := hostenv.DBLogin(e.DBPort, user, dbPW, user, "SELECT 1"); err != nil {
		t.Fatal(err)
	}

	// A password reset called again with its id is answered from the
	// journal (Replayed), the same id with another password is a conflict;
	// the journal holds neither password.
	pw := ops.HostingPasswordResetRequest{OpID: "act-pw-1", Username: user, SFTPPassword: "SftpResetPw12345678"}
	if op, err := m.HostingPasswordReset(context.Background(), pw); err != nil || op.Replayed || op.State != api.NodeOpSucceeded {
		t.Fatalf("password reset: %+v %v", op, err)
	}
	if op, err := m.HostingPasswordReset(context.Background(), pw); err != nil || !op.Replayed || op.State != api.NodeOpSucceeded {
		t.Fatalf("password reset again: %+v %v", op, err)
	}
	other := pw
	other.SFTPPassword = "SftpOtherPw12345678"
	if op, err := m.HostingPasswordReset(context.Background(), other); ops.Classify(err).Code != api.NodeErrConflict {
		t.Fatalf("password reset again with another password: %+v %v, want a conflict", op, err)
	}
	if jb, err := os.ReadFile(filepath.Join(dir, "journal.db")); err != nil || strings.Contains(string(jb), pw.SFTPPassword) || strings.Contains(string(jb), other.SFTPPassword) {
		t.Fatalf("a reset password is in the journal file (%v)", err)
	}
	// A re-send (even without the secret) is answered from the journal.
	again := createAssign(t, "act-create-1", user, domain, sftpPW, dbPW)
	again.SecretParams, again.Resend = nil, true
	r := call(t, ex, again)
	if !r.Success {
		t.Fatalf("re-send: %s %s", r.ErrorCode, r.ErrorMessage)
	}
	// The same username under a new id: already exists, nothing changed.
	r = call(t, ex, createAssign(t, "act-create-2", user, "other-"+e.Prefix+".test", sftpPW, dbPW))
	if r.Success || r.ErrorCode != api.NodeErrAlreadyExists {
		t.Fatalf("second create of %s: %v %s %s", user, r.Success, r.ErrorCode, r.ErrorMessage)
	}

	// PHP: an uninstalled version is refused, naming the installed ones.
	pp, _ := action.Encode(&action.HostingPHP{PHPVersion: "7.4"})
	r = call(t, ex, &pb.ActionAssign{ActionId: "act-php-1", Command: api.ActionHostingSetPHP, Target: user, Params: pp})
	if r.Success || r.ErrorCode != api.NodeErrInvalid || !strings.Contains(r.ErrorMessage, "installed: 8.2") {
		t.Fatalf("php 7.4: %v %s %s", r.Success, r.ErrorCode, r.ErrorMessage)
	}
	inv, err := ex.Inventory(context.Background())
	if err != nil || strings.Join(inv.PhpVersions, ",") != "8.2" {
		t.Fatalf("inventory php versions: %v %v", inv.GetPhpVersions(), err)
	}

	none, _ := action.Encode(nil)
	if v := hostingResult(t, call(t, ex, &pb.ActionAssign{ActionId: "act-susp-1", Command: api.ActionHostingSuspend, Target: user, Params: none})); !v.Suspended {
		t.Fatalf("suspend: %+v", v)
	}
	if code, _ := hostenv.Get(t, e.HTTPAddr, domain, "/"); code != 503 {
		t.Fatalf("suspended site: %d", code)
	}
	if v := hostingResult(t, call(t, ex, &pb.ActionAssign{ActionId: "act-unsusp-1", Command: api.ActionHostingUnsuspend, Target: user, Params: none})); v.Suspended {
		t.Fatalf("unsuspend: %+v", v)
	}
	if code, _ := hostenv.Get(t, e.HTTPAddr, domain, "/"); code != 200 {
		t.Fatalf("unsuspended site: %d", code)
	}
	if v := hostingResult(t, call(t, ex, &pb.ActionAssign{ActionId: "act-del-1", Command: api.ActionHostingDelete, Target: user, Params: none})); !v.Deleted {
		t.Fatalf("delete: %+v", v)
	}
	if out, err := exec.Command("getent", "passwd", user).CombinedOutput(); err == nil {
		t.Fatalf("user left: %s", out)
	}
	if code, _ := hostenv.Get(t, e.HTTPAddr, domain, "/"); code != 404 {
		t.Fatalf("deleted site: %d", code)
	}
	// Bad targets are refused before anything is journaled.
	for _, bad := range []string{"Root", "../x", "a;b", "root", "ab"} {
		r := call(t, ex, createAssign(t, "act-bad-"+fmt.Sprint(len(bad)), bad, domain, sftpPW, dbPW))
		if r.Success || r.ErrorCode != api.NodeErrInvalid || !strings.Contains(r.ErrorMessage, "username") {
			t.Errorf("target %q: %v %s %s", bad, r.Success, r.ErrorCode, r.ErrorMessage)
		}
		if _, err := m.Operation("act-bad-" + fmt.Sprint(len(bad))); err == nil {
			t.Errorf("target %q journaled", bad)
		}
	}
}

// crashEnv is set in the helper process that is killed mid-create.
const crashEnv = "HOSTPLANE_HOSTING_CRASH_HELPER"

// TestMain lets the test binary be the agent process that dies at a
// failpoint (a real SIGKILL, the journal in bbolt on disk).
func TestMain(m *testing.M) {
	if v := os.Getenv(crashEnv); v != "" {
		os.Exit(crashHelper(v))
	}
	os.Exit(m.Run())
}

type crashSpec struct {
	Cfg       hosting.Config
	Dir       string
	Failpoint string
	User      string
	Domain    string
	SFTPPW    string
	DBPW      string
}

func crashHelper(spec string) int {
	var s crashSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	node, err := hosting.New(s.Cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	m, _, err := openManager(s.Dir, node, s.Failpoint)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	_, err = m.HostingCreate(context.Background(), ops.HostingCreateRequest{OpID: "act-crash-1", Username: s.User, Domain: s.Domain,
		PHPVersion: "8.2", Plan: plan, SFTPPassword: s.SFTPPW, DBPassword: s.DBPW})
	fmt.Fprintln(os.Stderr, "create returned instead of dying at the failpoint:", err)
	return 4
}

// The agent killed mid-create (SIGKILL at each step): on restart the
// recovery completes the create once, from the journal alone (which holds no
// password), and a re-send of the action is answered from the journal.
func TestHostingCreateCompletesAfterACrash(t *testing.T) {
	e := hostingtest.NewNode(t)
	for i, step := range []string{"files", "database", "pool", "site"} {
		t.Run(step, func(t *testing.T) {
			dir := filepath.Join(e.Cfg.Root, "agent-"+step)
			user, domain := fmt.Sprintf("%sc%d", e.Prefix, i), fmt.Sprintf("c%d-%s.test", i, e.Prefix)
			sftpPW, dbPW := fmt.Sprintf("SftpCrash%dPw1234567", i), fmt.Sprintf("DbCrash%dPw12345678", i)
			spec, _ := json.Marshal(crashSpec{Cfg: e.Cfg, Dir: dir, Failpoint: api.NodeOpHostingCreate + ":" + step,
				User: user, Domain: domain, SFTPPW: sftpPW, DBPW: dbPW})
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), crashEnv+"="+string(spec))
			out, err := cmd.CombinedOutput()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != -1 {
				t.Fatalf("helper did not die by a signal: %v\n%s", err, out)
			}
			m, j := newManager(t, dir, e.Node)
			defer j.Close()
			rec, err := j.Get("act-crash-1")
			if err != nil || rec.State != api.NodeOpRunning || rec.Step != step {
				t.Fatalf("journal after the crash: %+v %v", rec, err)
			}
			if err := m.Recover(context.Background()); err != nil {
				t.Fatal(err)
			}
			op, err := m.Operation("act-crash-1")
			if err != nil || op.State != api.NodeOpSucceeded || op.Result == nil || op.Result.Hosting == nil ||
				!strings.Contains(op.Result.Message, "resumed after an agent restart") {
				t.Fatalf("recovered operation: %+v %v", op, err)
			}
			// Once: the re-sent action is answered from the journal.
			ex := actions.New(actions.Config{Manager: m, PollInterval: 20 * time.Millisecond})
			a := createAssign(t, "act-crash-1", user, domain, sftpPW, dbPW)
			a.Resend = true
			if v := hostingResult(t, call(t, ex, a)); v.Username != user {
				t.Fatalf("re-send: %+v", v)
			}
			// The account works with the passwords given at creation.
			hostenv.PutProbe(t, e.SSHAddr, user, sftpPW, "sftp after recovery")
			hostenv.WantSite(t, e.HTTPAddr, domain, user, "site after recovery")
			if _, err := hostenv.DBLogin(e.DBPort, user, dbPW, user, "SELECT 1"); err != nil {
				t.Fatalf("database after recovery: %v", err)
			}
			if _, err := e.Node.Delete(context.Background(), user, func(string) error { return nil }); err != nil {
				t.Fatal(err)
			}
		})
	}
}
