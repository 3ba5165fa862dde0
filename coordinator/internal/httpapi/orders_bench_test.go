package httpapi

import (
	"testing"
	"time"

	"github.com/hostplane/hostplane/internal/proccpu"
	"github.com/hostplane/hostplane/pkg/api"
)

// BenchmarkServerOrderPlace is a server order's work on the leader before
// its command (placeServerOrder: the product, the template on the nodes and
// its label, the cluster's level, the account, the IP pools and the nodes
// placement chooses among, and the choice, the ids, the params and the root
// password), on a node with room; each order's password is dropped again,
// nothing is committed. cpu-µs/op is the process's CPU time per order (the
// collector's work included; steadier than ns/op on a loaded machine).
func BenchmarkServerOrderPlace(b *testing.B) {
	s := orderingAPI(b, "vps-b", api.AgentNodeCapacity{VCPUs: 64, MemoryBytes: 64 << 30, DiskBytes: 1 << 40})
	acc, _ := s.account(api.ScopeOrdersWrite)
	req := api.ServerOrderRequest{PlanSlug: "vps-b", Label: "bench", Hostname: "bench.example.com", OSTemplate: "debian-12"}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := proccpu.Self()
	defer func() { b.ReportMetric(float64((proccpu.Self()-cpu0).Nanoseconds())/1000/float64(b.N), "cpu-µs/op") }()
	for range b.N {
		p, err := s.a.placeServerOrder(req, acc, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		p.deps.DropSecret(p.create.Action.ID)
	}
}
