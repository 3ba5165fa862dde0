package orders

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/tests/framework"
)

// coordinatorGOGC sets GOGC, from ORDERS_COORDINATOR_GOGC, in the
// environment the benchmark's coordinators (and its scripted agent) start
// with; this process's own collector keeps the setting it started with, so
// the clients' work does not change with it. Unset, the coordinators run
// their default (hostplane-coordinator sets 200 when GOGC is unset).
func coordinatorGOGC(b *testing.B) {
	v := os.Getenv("ORDERS_COORDINATOR_GOGC")
	if v == "" {
		return
	}
	if n, err := strconv.Atoi(v); (err != nil || n <= 0) && v != "off" {
		b.Fatalf("ORDERS_COORDINATOR_GOGC=%q: want a positive number or off", v)
	}
	b.Setenv("GOGC", v)
	b.Logf("coordinators start with GOGC=%s", v)
}

// reportMemory reports what the coordinators' memory came to over the run:
// each process's peak resident set (VmHWM, from its start, so the order
// and ticket rounds' peak unless start-up took more) and its heap in use
// now (go_memstats_heap_inuse_bytes), the leader's and the followers'
// largest, in MiB; and the garbage collections the leader ran since gcs0
// (its go_gc_duration_seconds_count then).
func reportMemory(b *testing.B, pids []int, metricsURLs []string, leaderGCs0 float64) {
	const mib = 1 << 20
	var hwm, inuse []float64
	for i, pid := range pids {
		kb, err := vmHWM(pid)
		if err != nil {
			b.Fatal(err)
		}
		m := framework.Metrics(b, metricsURLs[i])
		heap, ok := m["go_memstats_heap_inuse_bytes"]
		if !ok {
			b.Fatal("a coordinator's /metrics lacks go_memstats_heap_inuse_bytes")
		}
		hwm, inuse = append(hwm, float64(kb)*1024/mib), append(inuse, heap/mib)
	}
	b.ReportMetric(hwm[0], "leader-peak-rss-MiB")
	b.ReportMetric(max(hwm[1], hwm[2]), "follower-peak-rss-MiB")
	b.ReportMetric(inuse[0], "leader-heap-inuse-MiB")
	b.ReportMetric(max(inuse[1], inuse[2]), "follower-heap-inuse-MiB")
	b.ReportMetric(leaderGCs(b, metricsURLs[0])-leaderGCs0, "leader-gcs")
	b.Logf("peak RSS (VmHWM) MiB leader, followers: %.1f %.1f %.1f; heap in use after, MiB: %.1f %.1f %.1f",
		hwm[0], hwm[1], hwm[2], inuse[0], inuse[1], inuse[2])
}

// leaderGCs is the garbage collections the coordinator at metricsURL has
// run.
func leaderGCs(b *testing.B, metricsURL string) float64 {
	n, ok := framework.Metrics(b, metricsURL)["go_gc_duration_seconds_count"]
	if !ok {
		b.Fatal("the leader's /metrics lacks go_gc_duration_seconds_count")
	}
	return n
}

// vmHWM is process pid's peak resident set size in kB (VmHWM in
// /proc/<pid>/status).
func vmHWM(pid int) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, os.ErrNotExist
}
