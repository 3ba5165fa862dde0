// Package renewal is the leader's renewal job (issue 14): every interval it
// lists the servers whose renewal step is due (fsm.RenewalCandidates) and
// proposes them in fsm.RenewalSweep commands of up to fsm.MaxRenewalBatch
// servers each. The FSM decides each step from the command's time, so a
// sweep repeated by a new leader changes nothing twice.
package renewal

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/internal/clock"
	bolt "go.etcd.io/bbolt"
)

// Job sweeps renewals on the leader.
type Job struct {
	Policy   fsm.RenewalPolicy
	Interval time.Duration
	// Batch is the servers per command (0: fsm.MaxRenewalBatch).
	Batch int
	// Now is the clock the commands carry (tests move it).
	Now   func() time.Time
	View  func(func(*bolt.Tx) error) error
	Apply func(ctx context.Context, env *fsm.Envelope) (*fsm.Result, error)
	Log   *slog.Logger
	// Domains, when set, also sweeps registered domains (fsm.DomainSweep):
	// auto-renewing ones are paid and their renewal opened for the
	// registry driver (KickDomains wakes it), the others reminded.
	Domains     *fsm.DomainPolicy
	KickDomains func()
}

// Stats is what one sweep did.
type Stats struct {
	Candidates int
	Entries    int
	// Listed is how long listing the candidates took.
	Listed time.Duration
	fsm.RenewalSweepResult
	// Domains is what the domain sweep did.
	Domains fsm.DomainSweepResult
}

// Sweep runs one pass at j.Now().
func (j *Job) Sweep(ctx context.Context) (Stats, error) {
	var st Stats
	now := j.Now()
	began := time.Now()
	var refs []fsm.ServiceRef
	if err := j.View(func(tx *bolt.Tx) (err error) {
		refs, err = fsm.RenewalCandidates(tx, j.Policy, now)
		return err
	}); err != nil {
		return st, err
	}
	st.Candidates, st.Listed = len(refs), time.Since(began)
	batch := j.Batch
	if batch <= 0 || batch > fsm.MaxRenewalBatch {
		batch = fsm.MaxRenewalBatch
	}
	for len(refs) > 0 {
		n := min(batch, len(refs))
		env, err := fsm.NewEnvelope(fsm.CmdRenewalSweep, now, fsm.RenewalSweep{Policy: j.Policy, Servers: refs[:n]})
		if err != nil {
			return st, err
		}
		res, err := j.Apply(ctx, env)
		if err != nil {
			return st, err
		}
		st.Entries++
		if res.Err != nil {
			return st, fmt.Errorf("renewal sweep: %w", res.Err)
		}
		if r, ok := res.Value.(fsm.RenewalSweepResult); ok {
			st.Invoiced += r.Invoiced
			st.Paid += r.Paid
			st.Suspended += r.Suspended
			st.Stopped += r.Stopped
			st.Terminating += r.Terminating
		}
		refs = refs[n:]
	}
	if j.Domains != nil {
		if err := j.sweepDomains(ctx, now, &st); err != nil {
			return st, err
		}
	}
	return st, nil
}

// sweepDomains proposes the registered domains due a renewal, a reminder or
// their expiry at now.
func (j *Job) sweepDomains(ctx context.Context, now time.Time, st *Stats) error {
	var due []string
	if err := j.View(func(tx *bolt.Tx) (err error) {
		due, err = fsm.DomainRenewalCandidates(store.Read(tx), *j.Domains, now)
		return err
	}); err != nil {
		return err
	}
	for len(due) > 0 {
		n := min(fsm.MaxRenewalBatch, len(due))
		env, err := fsm.NewEnvelope(fsm.CmdDomainSweep, now, fsm.DomainSweep{Policy: *j.Domains, Domains: due[:n]})
		if err != nil {
			return err
		}
		res, err := j.Apply(ctx, env)
		if err != nil {
			return err
		}
		st.Entries++
		if res.Err != nil {
			return fmt.Errorf("domain sweep: %w", res.Err)
		}
		if r, ok := res.Value.(fsm.DomainSweepResult); ok {
			st.Domains.Renewing += r.Renewing
			st.Domains.Reminded += r.Reminded
			st.Domains.Expired += r.Expired
			st.Domains.Unpayable += r.Unpayable
		}
		due = due[n:]
	}
	if st.Domains.Renewing > 0 && j.KickDomains != nil {
		j.KickDomains()
	}
	return nil
}

// Run sweeps every Interval until ctx ends (the leadership is lost).
func (j *Job) Run(ctx context.Context, kick func()) {
	clock.Every(ctx, j.Interval, func() {
		st, err := j.Sweep(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			j.Log.Warn("renewal sweep failed; will retry", "err", err)
		case st.Entries > 0:
			j.Log.Info("renewal sweep", "servers", st.Candidates, "entries", st.Entries, "invoiced", st.Invoiced,
				"paid", st.Paid, "suspended", st.Suspended, "stopped", st.Stopped, "terminating", st.Terminating,
				"domains_renewing", st.Domains.Renewing, "domains_reminded", st.Domains.Reminded, "domains_expired", st.Domains.Expired)
			if (st.Stopped > 0 || st.Terminating > 0) && kick != nil {
				kick()
			}
		}
	})
}
