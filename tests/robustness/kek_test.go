package robustness

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/tests/framework"
)

// kekDiffers is the start of the log line of a coordinator whose
// --webhook-kek-file differs from the cluster's.
const kekDiffers = "key-encryption key differs from the cluster's"

// TestKEKMismatchReported: three coordinator processes, the third started
// with another --webhook-kek-file than the first two (a copy forgotten on one
// node). The third must say so where an operator looks, naming the flag: its
// log, its /readyz ("kek": "differs") and hostplane_kek_mismatch 1 on its
// metrics listener; the two that match say "matches", 0, and log nothing about
// it. Restarted with the cluster's file, the third reports a match and logs no
// new mismatch.
func TestKEKMismatchReported(t *testing.T) {
	other := filepath.Join(t.TempDir(), "other-kek")
	writeKEK(t, other)
	pc := framework.NewProcessCluster(t, framework.ProcessOptions{
		Bin: coordinatorBin(t), NodePrefix: "k", Agents: true, // the nodes share one KEK file (Dir/kek)
		Extra: func(i int, p *framework.CoordinatorProcess) []string {
			if i == 2 {
				return []string{"--webhook-kek-file", other} // the last --webhook-kek-file wins
			}
			return nil
		},
	})
	want := []string{"matches", "matches", "differs"}
	waitKEKStates(t, pc, want, 30*time.Second)
	for i, p := range pc.Nodes {
		log := readLog(t, p)
		met := metric(t, p, "hostplane_kek_mismatch")
		if want[i] == "differs" {
			if !strings.Contains(log, kekDiffers) || !strings.Contains(log, "--webhook-kek-file") || !strings.Contains(log, "kek_file="+other) {
				t.Errorf("%s (other KEK) did not log the mismatch naming --webhook-kek-file and its file; log tail:\n%s", p.ID, framework.Tail(p.LogPath(), 20))
			}
			if met != "1" {
				t.Errorf("%s (other KEK): hostplane_kek_mismatch %q, want 1", p.ID, met)
			}
			continue
		}
		if strings.Contains(log, kekDiffers) {
			t.Errorf("%s holds the cluster's KEK but logged a mismatch:\n%s", p.ID, framework.Tail(p.LogPath(), 20))
		}
		if met != "0" {
			t.Errorf("%s (cluster's KEK): hostplane_kek_mismatch %q, want 0", p.ID, met)
		}
	}
	// The same coordinator restarted with the cluster's file is quiet.
	bad := pc.Nodes[2]
	before := strings.Count(readLog(t, bad), kekDiffers)
	i := slices.Index(bad.Args, other)
	bad.Args[i] = filepath.Join(pc.Dir, "kek")
	if err := bad.Restart(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitKEKStates(t, pc, []string{"matches", "matches", "matches"}, 30*time.Second)
	if got := metric(t, bad, "hostplane_kek_mismatch"); got != "0" {
		t.Errorf("%s restarted with the cluster's KEK: hostplane_kek_mismatch %q, want 0", bad.ID, got)
	}
	time.Sleep(3 * time.Second) // more than one check interval
	if after := strings.Count(readLog(t, bad), kekDiffers); after != before {
		t.Errorf("%s restarted with the cluster's KEK logged %d more mismatches", bad.ID, after-before)
	}
}

func writeKEK(t *testing.T, path string) {
	t.Helper()
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	if err := os.WriteFile(path, []byte(hex.EncodeToString(k)), 0o600); err != nil {
		t.Fatal(err)
	}
}

// waitKEKStates waits until every node's /readyz reports its "kek" as want.
func waitKEKStates(t *testing.T, pc *framework.ProcessCluster, want []string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	var got []string
	for {
		got = got[:0]
		for _, p := range pc.Nodes {
			got = append(got, readyzKEK(p))
		}
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz kek states %q after %s, want %q", got, d, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func readyzKEK(p *framework.CoordinatorProcess) string {
	resp, err := http.Get(p.URL() + "/readyz")
	if err != nil {
		return "error: " + err.Error()
	}
	defer resp.Body.Close()
	var body struct {
		KEK string `json:"kek"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "error: " + err.Error()
	}
	return body.KEK
}

func readLog(t *testing.T, p *framework.CoordinatorProcess) string {
	t.Helper()
	b, err := os.ReadFile(p.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// metric is the value of an unlabelled series on p's metrics listener.
func metric(t *testing.T, p *framework.CoordinatorProcess, name string) string {
	t.Helper()
	resp, err := http.Get(p.MetricsURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	t.Fatalf("%s: no %s on %s", p.ID, name, p.MetricsURL())
	return ""
}
