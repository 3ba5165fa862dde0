package clustertest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/internal/proccpu"
	"github.com/hostplane/hostplane/pkg/api"
)

// BenchmarkPlaceAndAllocateCluster measures placing commands end to end on a
// real 3-coordinator cluster (admin API on the coordinators, forwarding,
// placement, Raft, the FSM), 8 concurrent clients, in two modes that take
// turns every 250 ms (two turns each per iteration, the order swapped each
// time) so that both see the same drifting load on this shared machine:
// servers pinned to nodes that report bridge br0 (a pool serves them: each
// gets an IPv4 address and an IPv6 /64 in the placing command) and servers
// pinned to nodes that report no bridge (placement alone, today's
// behaviour). place_alloc/place_alone is the rate of the first over the rate
// of the second. (Running both modes at once would hide the allocation's
// cost: they share each commit.) On this shared machine the rate mostly
// follows the other processes' load, so cpu_place_alloc/place_alone is also
// reported: the CPU time the test process (the three coordinators and the
// clients) spent per command placing alone over the same per command
// placing with allocation, the rate ratio a CPU-bound cluster would see.
func BenchmarkPlaceAndAllocateCluster(b *testing.B) {
	// A node holds 64 nano servers: 32 nodes a mode hold the ~1,250 servers
	// a quiet machine places in -benchtime 5x (16 filled up at load 1.5).
	const clients, nodesPerSet, turn = 8, 32, 250 * time.Millisecond
	// The nodes answer every action at once, so the open-action list the
	// dispatcher scans stays short in both modes.
	c := cluster(b, nodesPerSet, nil, "-answer-actions")
	startSims(b, c, nodesPerSet, "plain", "-answer-actions")
	waitReady(b, c, 2*nodesPerSet, 60*time.Second)
	mustPools(b, c,
		api.IPPoolCreateRequest{Name: "bench4", CIDR: "198.18.0.0/16", Gateway: "198.18.0.1", Bridge: "br0"},
		api.IPPoolCreateRequest{Name: "bench6", CIDR: "2001:db8::/48", Gateway: "fe80::1", Bridge: "br0"},
	)
	acc, _ := c.NewAccount("ipam-bench@example.com")
	prefixes := [2]string{"plain", "hv"} // alone, with allocation
	var counts [2]atomic.Int64
	var spent, cpu [2]time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for t := 0; t < 4; t++ {
			m := (t + i) % 2
			start, cpu0 := time.Now(), proccpu.Self()
			stop := start.Add(turn)
			var wg sync.WaitGroup
			for w := 0; w < clients; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for time.Now().Before(stop) {
						n := counts[m].Add(1)
						if n > nodesPerSet*60 {
							b.Errorf("the %s nodes are full; run fewer iterations (-benchtime 5x)", prefixes[m])
							return
						}
						node := fmt.Sprintf("%s-%05d", prefixes[m], n%nodesPerSet+1)
						s, err := anyAdmin(c).CreateServer(context.Background(), api.AdminServerCreateRequest{
							AccountID: acc.ID, Plan: "nano", Template: "debian-12", NodeID: node, NoPassword: true})
						if err != nil {
							b.Error(err)
							return
						}
						if (s.Server.IPv4 != "") != (m == 1) {
							b.Errorf("server on %s has ipv4 %q", node, s.Server.IPv4)
						}
					}
				}()
			}
			wg.Wait()
			spent[m] += time.Since(start) // includes the requests still running at the turn's end
			cpu[m] += proccpu.Self() - cpu0
		}
	}
	b.StopTimer()
	alone, alloc := float64(counts[0].Load())/spent[0].Seconds(), float64(counts[1].Load())/spent[1].Seconds()
	b.ReportMetric(alone, "place_alone/s")
	b.ReportMetric(alloc, "place_alloc/s")
	b.ReportMetric(alloc/alone, "place_alloc/place_alone")
	perCmd := func(m int) float64 { return cpu[m].Seconds() / float64(counts[m].Load()) }
	b.ReportMetric(perCmd(0)*1e6, "place_cpu_µs/cmd")
	b.ReportMetric(perCmd(1)*1e6, "place+alloc_cpu_µs/cmd")
	b.ReportMetric(perCmd(0)/perCmd(1), "cpu_place_alloc/place_alone")
}
