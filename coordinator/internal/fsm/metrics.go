package fsm

import "github.com/prometheus/client_golang/prometheus"

// Collectors are the FSM's apply counters for /metrics: the write
// transactions ApplyBatch committed (a batch of entries each) and the bbolt
// pages they wrote, the meta page included, since the coordinator started.
// Read per call of a benchmark on each replica, they say how many calls
// share a transaction and how many pages a call costs there.
func (f *FSM) Collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "hostplane_fsm_transactions_total",
			Help: "Write transactions the FSM committed applying Raft entries (one per batch of entries)."},
			func() float64 { return float64(f.txs.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "hostplane_fsm_pages_written_total",
			Help: "Database pages those transactions wrote (each a write of the page size), meta pages included."},
			func() float64 { return float64(f.pages.Load()) }),
	}
}
