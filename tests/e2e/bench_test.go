package e2e

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework/testenv"
)

// BenchmarkRebootLatency measures a forced reboot end to end — POST
// /v1/servers/:id/power/reboot on the leader of a 3-coordinator cluster until
// GET /v1/actions/:id says success — against the same libvirt calls made
// directly with go-libvirt (domain state, reset: what the agent's forced
// reboot does since it keeps the QEMU process) on the same VM, alternating, in the same run. It reports
// the p50 of each and the p50 overhead; the aim is an overhead ≤ 20 ms. It also
// reports the control plane's share of each API call: the end-to-end time minus
// the agent's own operation (its journal records start and finish).
//
// The API path includes: HTTP, the Raft commit of the action, the dispatcher's
// QUIC stream to the agent, the agent's journal writes (fsync), the libvirt
// calls, the Raft commit of the result, and the client's polling (every 2 ms).
//
//	go test -run '^$' -bench RebootLatency -benchtime 24x ./tests/e2e/
func BenchmarkRebootLatency(b *testing.B) {
	// The agent samples stats every 10 s, its default: a stats query holds the
	// domain's libvirt job and delays a reset that meets it.
	w := newWorld(b, clusterOpts{n: 3, agentStats: 10 * time.Second})
	created := w.createServer(b, "bench")
	vm := created.Server.VMName
	lv := libvirt.NewWithDialer(dialers.NewLocal(dialers.WithSocket(testenv.LibvirtSocket()), dialers.WithLocalTimeout(5*time.Second)))
	if err := lv.ConnectToURI(libvirt.QEMUSystem); err != nil {
		b.Fatalf("connect libvirt: %v: run %s", err, testenv.Setup)
	}
	defer lv.Disconnect()
	c := newAPIClient(b, w.c.Leader().URL(), w.key)
	c.api.Transport.SetValidation(false) // the measured loop must not time the schema checks
	ctx := context.Background()

	// viaAPI returns the client's end-to-end time and the control plane's part
	// of it: that time minus the agent's own operation (journal and libvirt),
	// as the agent's journal timed it.
	viaAPI := func() (time.Duration, time.Duration) {
		start := time.Now()
		acc := c.power(created.Server.ID, "reboot", &api.PowerRequest{Force: true})
		for {
			r := c.do(http.MethodGet, "/v1/actions/"+acc.Action.ID, nil)
			var a api.Action
			r.Decode(b, &a)
			if a.Finished() {
				total := time.Since(start)
				if a.Status != api.ActionSuccess {
					b.Fatalf("reboot action ended %s: %+v", a.Status, a.Error)
				}
				op, err := w.agent.Node().Operation(ctx, acc.Action.ID)
				if err != nil || op.FinishedAt == nil {
					b.Fatalf("agent operation %s: %v %+v", acc.Action.ID, err, op)
				}
				return total, total - op.FinishedAt.Sub(op.StartedAt)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	direct := func() time.Duration {
		start := time.Now()
		// One lookup per call, as the agent's driver does.
		lookup := func() libvirt.Domain {
			d, err := lv.DomainLookupByName(vm)
			if err != nil {
				b.Fatal(err)
			}
			return d
		}
		if _, _, err := lv.DomainGetState(lookup(), 0); err != nil {
			b.Fatal(err)
		}
		if err := lv.DomainReset(lookup(), 0); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	console := w.agent.ConsoleLog(vm)
	booted := len(boots(console)) // boot markers so far; each reboot adds one
	// One of each to warm connections and caches.
	_, _ = viaAPI()
	booted++
	waitBoot(b, console, booted)
	direct()
	booted++
	waitBoot(b, console, booted)
	var apiD, directD, ctlD []time.Duration
	b.ResetTimer()
	// Each reboot meets a guest that finished booting (its console printed the
	// boot marker) and idled a moment: how long a reset takes depends on
	// what QEMU is doing. The order alternates.
	settle := func() {
		b.StopTimer()
		booted++
		waitBoot(b, console, booted)
		time.Sleep(200 * time.Millisecond)
		b.StartTimer()
	}
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			total, ctl := viaAPI()
			apiD, ctlD = append(apiD, total), append(ctlD, ctl)
			settle()
			directD = append(directD, direct())
		} else {
			directD = append(directD, direct())
			settle()
			total, ctl := viaAPI()
			apiD, ctlD = append(apiD, total), append(ctlD, ctl)
		}
		settle()
	}
	b.StopTimer()
	p50 := func(d []time.Duration) float64 {
		s := slices.Clone(d)
		slices.Sort(s)
		return float64(s[len(s)/2].Microseconds()) / 1000
	}
	p90 := func(d []time.Duration) float64 {
		s := slices.Clone(d)
		slices.Sort(s)
		return float64(s[len(s)*9/10].Microseconds()) / 1000
	}
	b.ReportMetric(p50(apiD), "api-p50-ms")
	b.ReportMetric(p50(directD), "direct-p50-ms")
	b.ReportMetric(p50(apiD)-p50(directD), "overhead-p50-ms")
	b.ReportMetric(p90(apiD), "api-p90-ms")
	b.ReportMetric(p90(directD), "direct-p90-ms")
	b.ReportMetric(p50(apiD)/p50(directD), "api/direct-p50")
	// The libvirt calls vary by ±100 ms between runs under TCG, which swamps a
	// 20 ms difference of medians at this sample size; the control plane's own
	// time per call (end to end minus the agent's journaled operation) does not.
	b.ReportMetric(p50(ctlD), "control-plane-p50-ms")
	b.ReportMetric(p90(ctlD), "control-plane-p90-ms")
}
