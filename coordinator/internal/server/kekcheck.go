package server

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/nodes"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/internal/clock"
	"github.com/prometheus/client_golang/prometheus"
)

// KEK check states, as /readyz reports them under "kek".
const (
	kekUnrecorded = "unrecorded" // no fingerprint recorded yet (before the first leader records its own)
	kekMatches    = "matches"    // this coordinator holds the cluster's key-encryption key
	kekDiffers    = "differs"    // it holds another: agent sessions and sealed secrets fail here
)

// kekCheckEvery is how often a coordinator compares its KEK with the cluster's,
// and kekRelog how often a persisting mismatch is logged again.
const (
	kekCheckEvery = 2 * time.Second
	kekRelog      = 10 * time.Minute
)

// kekCheck finds a coordinator started with another --webhook-kek-file than
// the rest of its cluster. The first leader records the fingerprint of its KEK
// (an HMAC of a fixed label, never the key) in the FSM, unless it cannot open
// the node CA another KEK sealed; every coordinator compares its own with it,
// and with the node CA, and says so in its log, in /readyz and in the metric
// hostplane_kek_mismatch. Without it the only symptom was agents failing their
// handshakes ("tls: internal error") with this coordinator.
type kekCheck struct {
	s      *Server
	state  atomic.Value // string: kekUnrecorded, kekMatches or kekDiffers
	logged time.Time    // when the mismatch was last logged (loop goroutine only)
	// caFP and caOpens cache the node CA check (one AES-GCM open per CA).
	caFP    string
	caOpens bool
}

func newKEKCheck(s *Server) *kekCheck {
	k := &kekCheck{s: s}
	k.state.Store(kekUnrecorded)
	return k
}

// State is the last result: kekUnrecorded, kekMatches or kekDiffers.
func (k *kekCheck) State() string { return k.state.Load().(string) }

// collector is the hostplane_kek_mismatch gauge.
func (k *kekCheck) collector() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "hostplane_kek_mismatch",
		Help: "1 when this coordinator's --webhook-kek-file differs from the key-encryption key the cluster recorded (agent handshakes and sealed secrets fail on it), else 0.",
	}, func() float64 {
		if k.State() == kekDiffers {
			return 1
		}
		return 0
	})
}

func (k *kekCheck) run(ctx context.Context) {
	clock.Every(ctx, kekCheckEvery, func() {
		k.checkOnce(ctx)
	})
}

// recordAsLeader records this coordinator's KEK fingerprint when it has just
// become leader and none is recorded, so the one Raft entry is written with the
// leader's other start-up entries rather than at the next tick up to 2 s later
// (a write nobody asked for, in the middle of whatever the cluster is doing).
// It only proposes; checkOnce, on the loop goroutine, reports the state. A
// leader whose KEK cannot open the node CA records nothing (as in checkOnce).
func (k *kekCheck) recordAsLeader(ctx context.Context) {
	sl := k.s.cfg.Webhooks.rt.sealer
	if sl == nil {
		return
	}
	var markErr, caErr error
	var ca store.NodeCA
	_ = k.s.Node.FSM.Read(func(r store.ReadTx) error {
		_, markErr = r.KEKMark()
		ca, caErr = r.NodeCA()
		return nil
	})
	if !errors.Is(markErr, store.ErrNotFound) || (caErr == nil && !nodes.CAKeyOpens(sl, ca)) {
		return
	}
	k.propose(ctx, sl.Fingerprint())
}

func (k *kekCheck) propose(ctx context.Context, fingerprint string) {
	if _, err := k.s.propose(ctx, fsm.CmdKEKMark, fsm.KEKMarkSet{Fingerprint: fingerprint, By: k.s.cfg.NodeID}); err != nil && !errors.Is(err, fsm.ErrConflict) {
		k.s.log.Debug("record the key-encryption key's fingerprint: will retry", "err", err)
	}
}

func (k *kekCheck) checkOnce(ctx context.Context) {
	sl := k.s.cfg.Webhooks.rt.sealer
	if sl == nil {
		return
	}
	mine := sl.Fingerprint()
	var mark store.KEKMark
	var ca store.NodeCA
	var markErr, caErr error
	_ = k.s.Node.FSM.Read(func(r store.ReadTx) error {
		mark, markErr = r.KEKMark()
		ca, caErr = r.NodeCA()
		return nil
	})
	caOK := true
	if caErr == nil {
		if ca.Fingerprint != k.caFP {
			k.caFP, k.caOpens = ca.Fingerprint, nodes.CAKeyOpens(sl, ca)
		}
		caOK = k.caOpens
	}
	state := kekUnrecorded
	switch {
	case markErr == nil && mark.Fingerprint != mine, !caOK:
		state = kekDiffers
	case markErr == nil:
		state = kekMatches
	case errors.Is(markErr, store.ErrNotFound) && k.s.Node.IsLeader():
		// The first leader records its KEK, unless the node CA says the
		// cluster's secrets are sealed under another one (then it is the odd
		// one out and reports it above).
		k.propose(ctx, mine)
	}
	prev := k.State()
	k.state.Store(state)
	switch {
	case state == kekDiffers && (prev != kekDiffers || time.Since(k.logged) >= kekRelog):
		k.logged = time.Now()
		args := []any{"kek_file", k.s.cfg.Webhooks.KEKFile, "kek_fingerprint", mine}
		if markErr == nil {
			args = append(args, "cluster_kek_fingerprint", mark.Fingerprint, "recorded_by", mark.RecordedBy)
		}
		if !caOK {
			args = append(args, "node_ca", "sealed under another key")
		}
		k.s.log.Error("this coordinator's key-encryption key differs from the cluster's: agents' handshakes with it fail and secrets sealed by the others cannot be opened; give every coordinator the same --webhook-kek-file and restart this one", args...)
	case prev == kekDiffers && state != kekDiffers:
		k.s.log.Info("this coordinator's key-encryption key matches the cluster's again", "kek_fingerprint", mine)
	}
}
