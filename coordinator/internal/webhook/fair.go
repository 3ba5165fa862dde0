package webhook

import (
	"context"
	"slices"
	"sync"
)

// fairSlots hands out the dispatcher's attempt slots (Options.MaxInFlight).
// A plain semaphore gives a freed slot to whichever attempt has waited
// longest, so an account whose receivers never answer, with attempts queued
// for every slot, made every other account's deliveries wait behind its
// timeouts. Here a freed slot goes to the waiting account that holds the
// fewest (among those holding as few, the one whose attempt has waited
// longest: with more accounts waiting than slots, ordering ties by name
// starved the accounts named last), and no account holds more than
// perAccount at once (the dispatcher
// gives each half the slots: more than a subscription's own bound, so one
// slow subscription leaves the account's others room): the others'
// attempts start as soon as a slot is free, or at once while one account
// alone is at its share.
type fairSlots struct {
	mu         sync.Mutex
	free       int
	perAccount int
	held       map[string]int      // account → slots held
	waiting    map[string][]waiter // account → its attempts waiting, oldest first
	seq        uint64              // order of arrival of the waiters
}

// waiter is an attempt waiting for a slot: ch is closed when it is granted.
type waiter struct {
	ch  chan struct{}
	seq uint64
}

func newFairSlots(total, perAccount int) *fairSlots {
	return &fairSlots{free: total, perAccount: max(1, perAccount), held: map[string]int{}, waiting: map[string][]waiter{}}
}

// acquire waits for a slot for account; it fails only when ctx ends.
func (s *fairSlots) acquire(ctx context.Context, account string) error {
	s.mu.Lock()
	if s.free > 0 && s.held[account] < s.perAccount && len(s.waiting[account]) == 0 {
		s.free--
		s.held[account]++
		s.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	s.seq++
	s.waiting[account] = append(s.waiting[account], waiter{ch: ch, seq: s.seq})
	s.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	q := s.waiting[account]
	if i := slices.IndexFunc(q, func(w waiter) bool { return w.ch == ch }); i >= 0 {
		if q = slices.Delete(q, i, i+1); len(q) == 0 {
			delete(s.waiting, account)
		} else {
			s.waiting[account] = q
		}
		s.mu.Unlock()
		return ctx.Err()
	}
	s.mu.Unlock()
	s.release(account) // granted as ctx ended: give it back
	return ctx.Err()
}

// release returns a slot of account's and hands free slots on.
func (s *fairSlots) release(account string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held[account]--; s.held[account] <= 0 {
		delete(s.held, account)
	}
	s.free++
	for s.free > 0 {
		best, bestHeld, bestSeq := "", -1, uint64(0)
		for a, q := range s.waiting {
			h := s.held[a]
			if h < s.perAccount && (bestHeld < 0 || h < bestHeld || (h == bestHeld && q[0].seq < bestSeq)) {
				best, bestHeld, bestSeq = a, h, q[0].seq
			}
		}
		if bestHeld < 0 {
			return
		}
		q := s.waiting[best]
		ch := q[0].ch
		if q = q[1:]; len(q) == 0 {
			delete(s.waiting, best)
		} else {
			s.waiting[best] = q
		}
		s.free--
		s.held[best]++
		close(ch)
	}
}
