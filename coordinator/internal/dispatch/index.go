package dispatch

import (
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// The dispatcher's index of open actions. A wake-up used to read every open
// action (pending or running) from the replicated state, and decode each one
// not in flight: with a node away and thousands of actions queued for it,
// every wake-up (each order's kick, each 250 ms tick) walked them all. The
// index, this leader's own, is built by one full read when the leader job
// starts (and after a restore replaced the state), then kept from the FSM's
// notes of the actions each commit wrote (Deps.Watch, fsm.WatchActions): a
// wake-up reads back only the actions named since the last one, and looks
// only at the actions of connected nodes that are not on their way to the
// agent, and at those of an away node once its earliest deadline is due.

// openEntry is an open action as the index keeps it: what a wake-up needs to
// tell whether there is anything to do with it without reading its record.
type openEntry struct {
	id, node  string
	status    string    // pending or running
	deadline  time.Time // on the cluster's clock
	notBefore time.Time // a held cleanup's next attempt (zero: none)
	todo      bool      // in its node's todo (not on its way to the agent)
}

// nodeTodo is a node's open actions that are not on their way to its agent.
type nodeTodo struct {
	ids map[string]*openEntry
	// first is the earliest deadline among them, firstPending the earliest
	// of the pending ones; stale when one that held it left (recomputed when
	// next needed).
	first, firstPending time.Time
	stale               bool
}

func (n *nodeTodo) add(e *openEntry) {
	n.ids[e.id] = e
	if !n.stale {
		n.note(e)
	}
}

// note lowers the minimums to e's deadline.
func (n *nodeTodo) note(e *openEntry) {
	if n.first.IsZero() || e.deadline.Before(n.first) {
		n.first = e.deadline
	}
	if e.status != api.ActionRunning && (n.firstPending.IsZero() || e.deadline.Before(n.firstPending)) {
		n.firstPending = e.deadline
	}
}

func (n *nodeTodo) remove(e *openEntry) {
	delete(n.ids, e.id)
	if !e.deadline.After(n.first) || (e.status != api.ActionRunning && !e.deadline.After(n.firstPending)) {
		n.stale = true
	}
}

// earliest returns first and firstPending (zero: none), recomputed when stale.
func (n *nodeTodo) earliest() (first, firstPending time.Time) {
	if n.stale {
		n.first, n.firstPending, n.stale = time.Time{}, time.Time{}, false
		for _, e := range n.ids {
			n.note(e)
		}
	}
	return n.first, n.firstPending
}

// openIndex is the index: every open action this leader knows of, and per
// node the ones not on their way to its agent. Only the scan reads and
// writes it (one goroutine).
type openIndex struct {
	all   map[string]*openEntry
	nodes map[string]*nodeTodo
}

func newOpenIndex() *openIndex {
	return &openIndex{all: map[string]*openEntry{}, nodes: map[string]*nodeTodo{}}
}

func entryOf(a store.Action) *openEntry {
	e := &openEntry{id: a.ID, node: a.NodeID, status: a.Status, deadline: a.Deadline}
	if nb, err := time.Parse(time.RFC3339Nano, a.Meta[fsm.MetaNotBefore]); err == nil {
		e.notBefore = nb
	}
	return e
}

// put records a, an open action; todo: it is not on its way to its agent.
func (x *openIndex) put(a store.Action, todo bool) {
	x.drop(a.ID)
	e := entryOf(a)
	x.all[e.id] = e
	if todo {
		x.setTodo(e)
	}
}

// putInFlight records an open action known only by its id, on its way to
// its agent: it is read again when its exchange ends.
func (x *openIndex) putInFlight(id string) {
	if _, ok := x.all[id]; !ok {
		x.all[id] = &openEntry{id: id}
	}
}

func (x *openIndex) setTodo(e *openEntry) {
	n := x.nodes[e.node]
	if n == nil {
		n = &nodeTodo{ids: map[string]*openEntry{}}
		x.nodes[e.node] = n
	}
	n.add(e)
	e.todo = true
}

// sent takes e out of its node's todo: it is on its way to the agent.
func (x *openIndex) sent(e *openEntry) {
	if !e.todo {
		return
	}
	e.todo = false
	if n := x.nodes[e.node]; n != nil {
		n.remove(e)
		if len(n.ids) == 0 {
			delete(x.nodes, e.node)
		}
	}
}

// drop forgets the action id (finished, or about to be put again).
func (x *openIndex) drop(id string) {
	e := x.all[id]
	if e == nil {
		return
	}
	x.sent(e)
	delete(x.all, id)
}
