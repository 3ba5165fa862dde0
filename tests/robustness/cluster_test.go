package robustness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
)

// coordinatorBin is the hostplane-coordinator binary the tests run: built once
// from this checkout, or HOSTPLANE_COORDINATOR_BIN (to run the same tests against
// another build, e.g. one from before linearizable reads).
var coordinatorBin string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if bin := os.Getenv("HOSTPLANE_COORDINATOR_BIN"); bin != "" {
		coordinatorBin = bin
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "hprobust-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	coordinatorBin = filepath.Join(dir, "hostplane-coordinator")
	out, err := exec.Command("go", "build", "-o", coordinatorBin, "github.com/hostplane/hostplane/coordinator/cmd/hostplane-coordinator").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build hostplane-coordinator: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// proc is one coordinator OS process.
type proc struct {
	id, data, api, raft string
	cmd                 *exec.Cmd
	log                 *os.File
}

func (p *proc) url() string { return "http://" + p.api }

func (p *proc) admin() *client.Admin { return client.NewAdmin(filepath.Join(p.data, "admin.sock")) }

func (p *proc) start(t *testing.T, bootstrap bool) {
	t.Helper()
	if err := p.startErr(bootstrap); err != nil {
		t.Fatal(err)
	}
}

func (p *proc) startErr(bootstrap bool) error {
	lf, err := os.OpenFile(p.data+".log", os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	p.log = lf
	p.cmd = exec.Command(coordinatorBin, "run", "--node-id", p.id, "--data-dir", p.data, "--api-addr", p.api, "--raft-addr", p.raft,
		fmt.Sprintf("--bootstrap=%v", bootstrap), "--bootstrap-account=false", "--cluster-secret", "robustness-test-secret-0123456789",
		"--rate-limit", "100000000", "--raft-heartbeat-timeout", "500ms", "--raft-election-timeout", "500ms",
		"--log-format", "text", "--log-level", "info")
	p.cmd.Stdout, p.cmd.Stderr = lf, lf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		lf.Close()
		p.cmd = nil
		return fmt.Errorf("start %s: %w", p.id, err)
	}
	return nil
}

// signal sends sig to the process (SIGSTOP / SIGCONT); false if it is not running.
func (p *proc) signal(sig syscall.Signal) bool {
	if p.cmd == nil || p.cmd.Process == nil {
		return false
	}
	return syscall.Kill(-p.cmd.Process.Pid, sig) == nil
}

func (p *proc) kill() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGCONT)
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		_, _ = p.cmd.Process.Wait()
		p.cmd = nil
	}
	if p.log != nil {
		p.log.Close()
		p.log = nil
	}
}

// cluster is three coordinator processes on loopback, an account with a key,
// and one webhook whose description is the register under test.
type cluster struct {
	t       *testing.T
	dir     string
	procs   []*proc
	key     string
	webhook string
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// newCluster starts three coordinators, joins them and creates the register.
func newCluster(t *testing.T, name string) *cluster {
	t.Helper()
	dir, err := os.MkdirTemp("", "hprobust-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, dir: dir}
	for i := 0; i < 3; i++ {
		id := fmt.Sprintf("r%d", i+1)
		c.procs = append(c.procs, &proc{id: id, data: filepath.Join(dir, id), api: freeAddr(t), raft: freeAddr(t)})
	}
	t.Cleanup(func() {
		for _, p := range c.procs {
			p.kill()
		}
		if t.Failed() {
			t.Logf("coordinator logs and data kept in %s", dir)
		} else {
			os.RemoveAll(dir)
		}
	})
	for i, p := range c.procs {
		p.start(t, i == 0)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c.waitReady(c.procs[0], 30*time.Second)
	for _, p := range c.procs[1:] {
		if _, err := c.procs[0].admin().ClusterJoin(ctx, p.id, p.raft, ""); err != nil {
			t.Fatalf("join %s: %v", p.id, err)
		}
	}
	for _, p := range c.procs {
		c.waitReady(p, 30*time.Second)
	}
	ld := c.leader(nil, 20*time.Second)
	acc, err := c.procs[ld].admin().CreateAccount(ctx, api.AccountCreateRequest{Email: name + "@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	k, err := c.procs[ld].admin().CreateKey(ctx, acc.ID, api.KeyCreateRequest{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	c.key = k.Key
	wh, err := client.New(c.procs[ld].url(), c.key).CreateWebhook(ctx, api.WebhookCreateRequest{
		URL: "https://93.184.216.34/hostplane-robustness", Events: []string{string(api.EventServerCreated)}, Description: "0",
	}, "")
	if err != nil {
		t.Fatal(err)
	}
	c.webhook = wh.ID
	// Every coordinator answers a linearizable read of the register (its key
	// and the leader's API address have reached it) before the test begins.
	for _, p := range c.procs {
		deadline := time.Now().Add(20 * time.Second)
		for {
			if v, st, err := c.read(context.Background(), p, ""); err == nil && st == 200 && v == "0" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never served the register", p.id)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c
}

func (c *cluster) waitReady(p *proc, d time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(p.url() + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("%s not ready after %s (log %s.log)", p.id, d, p.data)
}

// leader returns the index of the coordinator that says it leads, skipping the
// excluded ones (paused or killed).
func (c *cluster) leader(exclude map[int]bool, d time.Duration) int {
	c.t.Helper()
	if i := c.findLeader(exclude, d); i >= 0 {
		return i
	}
	c.t.Fatalf("no leader among the running coordinators after %s", d)
	return -1
}

// leaderOrNone is leader for goroutines other than the test's: -1 if none.
func (c *cluster) leaderOrNone(d time.Duration) int { return c.findLeader(nil, d) }

func (c *cluster) findLeader(exclude map[int]bool, d time.Duration) int {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for i, p := range c.procs {
			if exclude[i] || p.cmd == nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := p.admin().ClusterStatus(ctx)
			cancel()
			if err == nil && st.State == "Leader" {
				return i
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return -1
}

var httpc = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}

// read is GET /v1/webhooks/:id through p: the description, the status.
// query is appended as is ("consistency=stale").
func (c *cluster) read(ctx context.Context, p *proc, query string) (string, int, error) {
	u := p.url() + "/v1/webhooks/" + c.webhook
	if query != "" {
		u += "?" + query
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	req.Header.Set("Authorization", "Bearer "+c.key)
	resp, err := httpc.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", 0, err
	}
	if resp.StatusCode != 200 {
		return "", resp.StatusCode, nil
	}
	var w api.Webhook
	if err := json.Unmarshal(body, &w); err != nil {
		return "", 0, fmt.Errorf("GET webhook: %v: %s", err, body)
	}
	return w.Description, 200, nil
}

// write is PATCH /v1/webhooks/:id {description} through p: the status.
func (c *cluster) write(ctx context.Context, p *proc, value string) (int, error) {
	body, _ := json.Marshal(api.WebhookUpdateRequest{Description: &value})
	req, _ := http.NewRequestWithContext(ctx, "PATCH", p.url()+"/v1/webhooks/"+c.webhook, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 400 && resp.StatusCode < 500 {
		return resp.StatusCode, fmt.Errorf("PATCH webhook: %d %s", resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	return resp.StatusCode, nil
}
