package mcpserver

import (
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// sessionEnds runs the clean-ups registered for a session once it ends
// (DELETE, idle timeout, displaced, closed by the stream limits): one
// goroutine per session waits for its end and runs them in the order they
// were registered. The SDK (go-sdk v1.8.0) has no public end callback (its
// ServerSessionOptions.onClose is unexported; EventStore.SessionClosed
// would bring the event store's ids and priming events), so a goroutine
// waits; before, each clean-up had its own.
type sessionEnds struct {
	mu sync.Mutex
	m  map[*mcp.ServerSession][]func()
}

func newSessionEnds() *sessionEnds {
	return &sessionEnds{m: map[*mcp.ServerSession][]func(){}}
}

// onEnd runs f once ss ends (at once, on another goroutine, if it has
// ended already).
func (e *sessionEnds) onEnd(ss *mcp.ServerSession, f func()) {
	e.mu.Lock()
	fs, watched := e.m[ss]
	e.m[ss] = append(fs, f)
	e.mu.Unlock()
	if watched {
		return
	}
	go func() {
		_ = ss.Wait()
		e.mu.Lock()
		fs := e.m[ss]
		delete(e.m, ss)
		e.mu.Unlock()
		for _, f := range fs {
			f()
		}
	}()
}

// watched is how many sessions have clean-ups waiting (tests).
func (e *sessionEnds) watched() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.m)
}
