// Package simevent is the one JSON line a simulated agent prints per event
// (agent/cmd/hostplane-agent-sim and the session tests' testagent print it;
// framework.Sim reads it). It imports nothing of the framework, so the
// simulators stay small.
package simevent

import (
	"encoding/json"
	"io"
	"sync"
	"time"
)

// Event is one line.
type Event struct {
	Node        string `json:"node,omitempty"`
	Kind        string `json:"kind"`
	Coordinator string `json:"coordinator,omitempty"`
	ID          string `json:"id,omitempty"`
	Err         string `json:"err,omitempty"`
	T           int64  `json:"t,omitempty"` // Unix milliseconds
}

// Printer writes events as JSON lines, safe for concurrent use.
type Printer struct {
	mu sync.Mutex
	w  io.Writer
}

// NewPrinter prints to w (os.Stdout).
func NewPrinter(w io.Writer) *Printer { return &Printer{w: w} }

// Print writes one line, stamping T when it is zero.
func (p *Printer) Print(e Event) {
	if e.T == 0 {
		e.T = time.Now().UnixMilli()
	}
	b, _ := json.Marshal(e)
	p.mu.Lock()
	defer p.mu.Unlock()
	_, _ = p.w.Write(append(b, '\n'))
}
