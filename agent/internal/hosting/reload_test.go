package hosting_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hostplane/hostplane/agent/internal/hosting"
	"github.com/hostplane/hostplane/tests/framework"
	"github.com/hostplane/hostplane/tests/framework/hostenv"
)

// tooLarge sends a PHP request whose declared body is larger than any
// plan's: a worker refuses it with 413 and logs an [error] line ("client
// intended to send too large body"), as a busy node's workers log request
// errors all the time.
func tooLarge(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := fmt.Fprintf(c, "POST /x.php HTTP/1.1\r\nHost: busy.example.test\r\nContent-Length: 100000000\r\nConnection: close\r\n\r\n"); err != nil {
		return err
	}
	st, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.Contains(st, " 413 ") {
		return fmt.Errorf("answer %q, want 413", st)
	}
	return nil
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// A reload the master does not take (stopped here, as a starved one is)
// on a busy node, whose workers keep appending request errors to the error
// log, fails within the 5 s without progress, not after the 30 s in all:
// the log's growth is the traffic's, not the reload's. The error says the
// master has not taken it, with the master's lines, not the requests'.
func TestNginxReloadNotTakenOnBusyNodeFailsFast(t *testing.T) {
	n, addr := startNginx(t)
	logf := filepath.Join(n.L.NginxDir(), "logs", "error.log")
	before := fileSize(t, logf)
	if err := tooLarge(addr); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(logf); int64(len(b)) <= before || !strings.Contains(string(b[before:]), "too large body") {
		t.Fatalf("a request's error is not in nginx's error log:\n%s", b[before:])
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reqErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if err := tooLarge(addr); err != nil && reqErr == nil {
				reqErr = err
			}
		}
	}()
	master := n.PID()
	if err := syscall.Kill(master, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(master, syscall.SIGCONT) })
	from := fileSize(t, logf)
	t0 := time.Now()
	err := n.Reload(hostenv.Ctx(t))
	took := time.Since(t0)
	close(stop)
	wg.Wait()
	grown := fileSize(t, logf) - from
	if reqErr != nil {
		t.Fatalf("the request loop: %v", reqErr)
	}
	t.Logf("Reload took %v while the error log grew by %d bytes: %v", took.Round(time.Millisecond), grown, err)
	if grown < 4096 {
		t.Fatalf("the error log grew by %d bytes only while Reload waited: not a busy node", grown)
	}
	if took > 8*time.Second {
		t.Fatalf("Reload took %v under a master that never took it (5 s without progress is the bound): %v", took, err)
	}
	if err == nil || !strings.Contains(err.Error(), "has not taken the reload") || !strings.Contains(err.Error(), `signal process started"`) {
		t.Fatalf("reload under a stopped master on a busy node: %v, want why (the master has not taken it) and the log's tail", err)
	}
	_ = syscall.Kill(master, syscall.SIGCONT)
	if code, _ := hostenv.Get(t, addr, "x", "/"); code != 421 {
		t.Fatalf("nginx not serving after SIGCONT: %d", code)
	}
}

// A worker of the previous configuration that crashes as the reload comes
// (SIGKILLed between the signal and the wait, the master stopped meanwhile
// so that its report of the crash, an [alert], comes before it takes the
// reload, and the crash is reported before the wait begins) is no refusal:
// the new configuration stays installed and serves. The worker the master
// starts in the crashed one's place, before its "reconfiguring", runs the
// previous configuration: Reload waits for it as for the others, so every
// request after it gets the new configuration.
func TestNginxReloadSurvivesAnUnrelatedWorkerCrash(t *testing.T) {
	hostenv.Need(t, "nginx")
	root, _ := hostenv.Root(t)
	addr := framework.FreeAddr(t, "tcp")
	n := &hosting.Nginx{L: hosting.Layout{Root: root}, Bin: "nginx",
		Params: hosting.NginxParams{Root: root, User: "www-data", Listen: addr, ConfDir: "/etc/nginx", Workers: "2"}}
	if err := n.Ensure(hostenv.Ctx(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop() })
	logf := filepath.Join(n.L.NginxDir(), "logs", "error.log")
	old, _ := os.ReadFile(n.L.NginxConf())
	good := strings.Replace(string(old), "server_tokens off;", "server_tokens off; add_header X-Hp63 new always;", 1)
	master := n.PID()
	var killed int
	n.SetAfterSignal(func(m int, workers []int) {
		if m != master || len(workers) != 2 {
			t.Errorf("reload of master %d with workers %v, want master %d with 2 workers", m, workers, master)
			return
		}
		killed = workers[0]
		if err := syscall.Kill(killed, syscall.SIGKILL); err != nil {
			t.Error(err)
		}
		// Dead (a zombie: its parent is stopped) before the master runs
		// again, so that the master takes both signals at once.
		for deadline := time.Now().Add(10 * time.Second); !zombie(killed) && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		}
		if err := syscall.Kill(master, syscall.SIGCONT); err != nil {
			t.Error(err)
		}
		// The master reports the crash as soon as it runs, before its
		// "reconfiguring" (it reaps before it reconfigures).
		want := fmt.Sprintf("worker process %d exited on signal 9", killed)
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if b, _ := os.ReadFile(logf); strings.Contains(string(b), want) {
				return
			}
		}
		t.Errorf("no %q in nginx's error log", want)
	})
	// Both workers forked before the master stops (on a loaded machine
	// Ensure returns before that).
	from := stopMasterAfterWorkers(t, logf, master, 2)
	if err := n.Apply(hostenv.Ctx(t), []byte(good), nil); err != nil {
		b, _ := os.ReadFile(logf)
		t.Fatalf("reload with an old worker crashed: %v\nerror log since:\n%s", err, b[from:])
	}
	if now, _ := os.ReadFile(n.L.NginxConf()); string(now) != good {
		t.Fatal("the new configuration was rolled back")
	}
	b, _ := os.ReadFile(logf)
	since := string(b[from:])
	respawn := strings.Index(since, "start worker process ")
	if killed == 0 || respawn < 0 || respawn > strings.Index(since, ": reconfiguring\n") {
		t.Fatalf("the scenario did not happen (a worker killed, another started before \"reconfiguring\"):\n%s", since)
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	for i := range 40 {
		req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
		req.Host = "x"
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 421 || resp.Header.Get("X-Hp63") != "new" {
			t.Fatalf("request %d after the reload: %d, X-Hp63 %q: served by the previous configuration\n%s", i, resp.StatusCode, resp.Header.Get("X-Hp63"), since)
		}
	}
}

// stopMasterAfterWorkers waits until nginx's error log logf tells that the
// master has started workers workers, stops the master (SIGSTOP; SIGCONT
// when the test ends) and returns the log's size then.
func stopMasterAfterWorkers(t *testing.T, logf string, master, workers int) int64 {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if b, _ := os.ReadFile(logf); strings.Count(string(b), "start worker process ") >= workers {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx has not started its %d workers after 10 s", workers)
		}
	}
	if err := syscall.Kill(master, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(master, syscall.SIGCONT) })
	return fileSize(t, logf)
}

// zombie tells a process that has exited and not yet been reaped.
func zombie(pid int) bool {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+1:]))
	return len(f) > 0 && f[0] == "Z"
}

// A reload whose "reconfiguring" and "start worker processes" fall between
// logrotate's copy and its truncate (here: the log truncated once the
// master has logged them, before Reload reads it) still ends when the old
// worker has left and a new one serves: a truncated log is not read as a
// reload the master never took, nor is the configuration rolled back.
func TestNginxReloadAcrossALogTruncate(t *testing.T) {
	n, addr := startNginx(t)
	logf := filepath.Join(n.L.NginxDir(), "logs", "error.log")
	master := n.PID()
	from := stopMasterAfterWorkers(t, logf, master, 1)
	n.SetAfterSignal(func(int, []int) {
		if err := syscall.Kill(master, syscall.SIGCONT); err != nil {
			t.Error(err)
		}
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if b, _ := os.ReadFile(logf); int64(len(b)) > from && strings.Contains(string(b[from:]), ": start worker processes\n") {
				if err := os.Truncate(logf, 0); err != nil {
					t.Error(err)
				}
				return
			}
		}
		t.Error(`no "start worker processes" after the signal`)
	})
	old, _ := os.ReadFile(n.L.NginxConf())
	good := strings.Replace(string(old), "server_tokens off;", "server_tokens off; add_header X-Hp63 new always;", 1)
	if err := n.Apply(hostenv.Ctx(t), []byte(good), nil); err != nil {
		t.Fatalf("reload across a truncate of the error log: %v", err)
	}
	if b, _ := os.ReadFile(logf); strings.Contains(string(b), ": reconfiguring\n") {
		t.Fatalf("the scenario did not happen: the truncated log has the reload's start:\n%s", b)
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	req.Host = "x"
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 421 || resp.Header.Get("X-Hp63") != "new" {
		t.Fatalf("after the reload: %d, X-Hp63 %q: the previous configuration", resp.StatusCode, resp.Header.Get("X-Hp63"))
	}
}
