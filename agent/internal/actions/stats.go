package actions

import (
	"context"
	"time"

	"github.com/hostplane/hostplane/agent/internal/stats"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
	pb "github.com/hostplane/hostplane/proto"
)

// Stats stream intervals.
const (
	minStatsInterval     = 500 * time.Millisecond
	defaultStatsInterval = time.Second
)

// stats answers a StatsRequest: the latest sample of a VM (or of the host when
// target is empty), once or every interval until ctx ends.
func (e *Executor) stats(ctx context.Context, seq uint64, req *pb.StatsRequest, send func(*pb.Envelope) error) {
	var out uint64
	emit := func(s *pb.StatsSample) error {
		out++
		return send(&pb.Envelope{Seq: out, ReplyTo: seq, Body: &pb.Envelope_StatsSample{StatsSample: s}})
	}
	if req.Target != "" {
		if err := validate.Name("vm", req.Target); err != nil {
			_ = emit(&pb.StatsSample{Target: req.Target, ErrorCode: api.NodeErrInvalid, Error: err.Error(), Last: true})
			return
		}
	}
	if e.cfg.Stats == nil {
		_ = emit(&pb.StatsSample{Target: req.Target, ErrorCode: api.NodeErrUnavailable, Error: "stats are not collected on this node", Last: true})
		return
	}
	interval := defaultStatsInterval
	if req.IntervalMs > 0 {
		interval = max(time.Duration(req.IntervalMs)*time.Millisecond, minStatsInterval)
	}
	var t *time.Ticker
	if req.Stream {
		t = time.NewTicker(interval)
		defer t.Stop()
	}
	var mark stats.Mark // a stream's samples are live, each with the rates since the one before
	for {
		s, final := e.sample(ctx, req.Target, &mark)
		if !req.Stream {
			s.Last = true
			_ = emit(s)
			return
		}
		s.Last = final
		if err := emit(s); err != nil || final {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sample returns target's sample as of now (a VM's: stats.Collector.Live,
// the host's: the last cycle's). final is set when the answer is an error
// that will not change (no such VM); a VM the node holds but the collector
// has not sampled yet gives an "unavailable" sample (a stream goes on: the
// next tick may have one).
func (e *Executor) sample(ctx context.Context, target string, mark *stats.Mark) (s *pb.StatsSample, final bool) {
	if target != "" {
		if v, ok := e.cfg.Stats.Live(ctx, target, mark); ok {
			return vmSample(target, v), false
		}
	}
	snap := e.cfg.Stats.Current(ctx, target)
	if target == "" {
		h := snap.Host
		return &pb.StatsSample{AtUnixMs: h.Time.UnixMilli(), CpuPercent: h.CPUPercent, MemoryUsedBytes: h.MemoryUsed}, false
	}
	ring := snap.VMs[target]
	if len(ring) == 0 {
		known := false
		if e.m != nil {
			if names, err := e.m.VMNames(); err == nil {
				known = names[target]
			}
		}
		if !known {
			return &pb.StatsSample{Target: target, ErrorCode: api.NodeErrNotFound, Error: "vm " + target + " not found"}, true
		}
		return &pb.StatsSample{Target: target, ErrorCode: api.NodeErrUnavailable, Error: "no sample of vm " + target + " yet"}, false
	}
	return vmSample(target, ring[len(ring)-1]), false
}

// vmSample is v on the wire.
func vmSample(target string, v api.NodeVMStats) *pb.StatsSample {
	return &pb.StatsSample{Target: target, AtUnixMs: v.Time.UnixMilli(), State: v.State, CpuPercent: v.CPUPercent,
		CpuTimeNs: v.CPUTimeNs, MemoryUsedBytes: v.MemoryBytes, DiskReadBytes: v.DiskReadBytes, DiskWriteBytes: v.DiskWriteBytes,
		NetRxBytes: v.NetRxBytes, NetTxBytes: v.NetTxBytes, DiskReadBps: v.DiskReadBps, DiskWriteBps: v.DiskWriteBps,
		NetRxBps: v.NetRxBps, NetTxBps: v.NetTxBps}
}
