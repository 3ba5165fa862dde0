package clustertest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// BenchmarkPlaceAndAllocateCluster measures placing commands end to end on a
// real 3-coordinator cluster (admin API on the coordinators, forwarding,
// placement, Raft, the FSM): 32 servers per mode and iteration from 8
// concurrent clients, the modes' order swapped every iteration,
// pinned alternately to nodes that report bridge br0 (a pool serves them:
// each server gets an IPv4 address and an IPv6 /64 in the placing command)
// and to nodes that report no bridge (placement alone, today's behaviour).
// place_alloc/place_alone is the rate of the first over the second, measured
// side by side in the same run.
func BenchmarkPlaceAndAllocateCluster(b *testing.B) {
	const perMode, clients, nodesPerSet = 32, 8, 10 // a node holds 64 nano servers
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
	modes := []struct {
		name   string
		prefix string
	}{{"alone", "plain"}, {"alloc", "hv"}}
	var total [2]time.Duration
	placed := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if placed+perMode > nodesPerSet*64 {
			b.Fatalf("the nodes are full after %d iterations; run with fewer (-benchtime 5x)", i)
		}
		for k := range modes {
			m := (k + i) % 2
			start := time.Now()
			var wg sync.WaitGroup
			for w := 0; w < clients; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for j := w; j < perMode; j += clients {
						node := fmt.Sprintf("%s-%05d", modes[m].prefix, (placed+j)%nodesPerSet+1)
						s, err := anyAdmin(c).CreateServer(context.Background(), api.AdminServerCreateRequest{
							AccountID: acc.ID, Plan: "nano", Template: "debian-12", NodeID: node, NoPassword: true})
						if err != nil {
							b.Error(err)
							return
						}
						if (s.Server.IPv4 != "") != (m == 1) {
							b.Errorf("mode %s: server on %s has ipv4 %q", modes[m].name, node, s.Server.IPv4)
						}
					}
				}()
			}
			wg.Wait()
			total[m] += time.Since(start)
		}
		placed += perMode
	}
	b.StopTimer()
	n := float64(b.N * perMode)
	b.ReportMetric(n/total[0].Seconds(), "place_alone/s")
	b.ReportMetric(n/total[1].Seconds(), "place_alloc/s")
	b.ReportMetric(total[0].Seconds()/total[1].Seconds(), "place_alloc/place_alone")
}
