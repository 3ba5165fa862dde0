package hosting

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Any line of nginx's error log is taken without a panic; a line of a
// process other than the master and its old workers (a request's error, the
// signaller, another nginx) never moves the reload nor refuses it; only the
// master's error inside its reconfiguration refuses it.
func FuzzReloadWatchLine(f *testing.F) {
	for _, s := range []string{
		"2026/12/07 21:45:11 [notice] 100#100: reconfiguring",
		"2026/12/07 21:45:11 [notice] 100#100: start worker process 7",
		"2026/12/07 21:45:11 [alert] 100#100: worker process 101 exited on signal 9",
		"2026/12/07 21:45:11 [emerg] 100#100: bind() to 127.0.0.1:1 failed (98: Address already in use)",
		"2026/12/07 21:45:11 [error] 101#101: *1 open() \"/x\" failed (2: No such file or directory)",
		"2026/12/07 21:45:11 [notice] 101#101: gracefully shutting down",
		"", "[emerg] 100#100: x", "2026/12/07 21:45:11 [alert] 100#100: start worker process 99999999999999999999",
	} {
		f.Add(s, 100)
		f.Add(s, 555)
	}
	f.Fuzz(func(t *testing.T, ln string, pid int) {
		w := &reloadWatch{master: 100, old: []int{101}, oldCfg: []int{101}}
		w.line(ln)
		if pid != 100 && pid != 101 {
			// The same message from another process.
			o := &reloadWatch{master: 100, old: []int{101}, oldCfg: []int{101}, reconfiguring: true}
			if m := nginxLogRE.FindStringSubmatchIndex(ln); m != nil {
				o.line(ln[:m[4]] + fmt.Sprint(pid) + ln[m[5]:])
				if o.steps != 0 || o.refusal != "" || o.sawMaster || o.started || len(o.newCfg) != 0 || len(o.oldCfg) != 1 {
					t.Fatalf("a line of pid %d moved the reload: %+v", pid, o)
				}
			}
		}
		// Refused only inside the reconfiguration.
		if w.refusal != "" {
			t.Fatalf("refused before any \"reconfiguring\": %q", ln)
		}
		r := &reloadWatch{master: 100, old: []int{101}, oldCfg: []int{101}, reconfiguring: true}
		r.line(ln)
		if r.refusal != "" {
			m := nginxLogRE.FindStringSubmatch(ln)
			if m == nil || m[2] != "100" || !strings.Contains("emerg alert crit", m[1]) || workerExitRE.MatchString(m[3]) {
				t.Fatalf("refused on %q", ln)
			}
		}
	})
}

func TestReloadWatchRefusesOnlyInsideTheReconfiguration(t *testing.T) {
	w := &reloadWatch{master: 100, old: []int{101, 102}, oldCfg: []int{101, 102}}
	for _, ln := range []string{
		"2026/12/07 21:45:11 [notice] 100#100: signal 17 (SIGCHLD) received from 101",
		"2026/12/07 21:45:11 [alert] 100#100: worker process 101 exited on signal 9",
		"2026/12/07 21:45:11 [notice] 100#100: start worker process 103",
		"2026/12/07 21:45:11 [notice] 100#100: signal 1 (SIGHUP) received from 200, reconfiguring",
		"2026/12/07 21:45:11 [crit] 102#102: *5 something about a request",
		"2026/12/07 21:45:11 [notice] 100#100: reconfiguring",
		"2026/12/07 21:45:11 [notice] 100#100: start worker processes",
		"2026/12/07 21:45:11 [notice] 100#100: start worker process 104",
		"2026/12/07 21:45:11 [alert] 100#100: worker process 102 exited on signal 11",
	} {
		w.line(ln)
	}
	if w.refusal != "" || !w.started || fmt.Sprint(w.oldCfg) != "[101 102 103]" || fmt.Sprint(w.newCfg) != "[104]" {
		t.Fatalf("%+v", w)
	}
	r := &reloadWatch{master: 100}
	r.line("2026/12/07 21:45:11 [notice] 100#100: reconfiguring")
	r.line("2026/12/07 21:45:11 [emerg] 100#100: unknown directive \"x\" in /n.conf:1")
	if !strings.Contains(r.refusal, "unknown directive") {
		t.Fatalf("%+v", r)
	}
}

// A log truncated during a reload (logrotate's copytruncate) is read again
// from its start: the master's lines after the truncate are seen.
func TestReloadWatchReadsATruncatedLogFromItsStart(t *testing.T) {
	logf := filepath.Join(t.TempDir(), "error.log")
	if err := os.WriteFile(logf, []byte(strings.Repeat("2026/12/07 21:45:10 [notice] 100#100: start worker process 101\n", 50)), 0o600); err != nil {
		t.Fatal(err)
	}
	w := newReloadWatch(logf, 100, []int{101})
	if err := os.WriteFile(logf, []byte("2026/12/07 21:45:11 [notice] 100#100: signal 1 (SIGHUP) received from 200, reconfiguring\n"+
		"2026/12/07 21:45:11 [notice] 100#100: reconfiguring\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w.read()
	if !w.sawMaster || !w.reconfiguring || w.steps != 2 || !w.truncated {
		t.Fatalf("after a truncate: %+v", w)
	}
	f, err := os.OpenFile(logf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// A line written in two parts is taken once, whole.
	for _, s := range []string{"2026/12/07 21:45:11 [notice] 100#100: start worker ", "process 102\n"} {
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
		w.read()
	}
	if fmt.Sprint(w.newCfg) != "[102]" || w.steps != 3 {
		t.Fatalf("after a line in two parts: %+v", w)
	}
}
