package httpapi

import (
	"sync"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
)

// usageEntriesPerFlush caps how many log entries one key contributes per flush, so
// a key hammering the API cannot grow the buffer without bound.
const usageEntriesPerFlush = 50

// UsageRecorder buffers per-key last-use times (with the client address of
// that use) and usage-log entries in memory; the leader flushes them as one
// Raft command every few seconds instead of one write per request.
type UsageRecorder struct {
	mu   sync.Mutex
	keys map[string]*fsm.KeyUsageBatch
}

// NewUsageRecorder returns an empty recorder.
func NewUsageRecorder() *UsageRecorder {
	return &UsageRecorder{keys: map[string]*fsm.KeyUsageBatch{}}
}

// Record notes one request by key.
func (u *UsageRecorder) Record(keyID string, e fsm.KeyUsageEntry) {
	u.mu.Lock()
	defer u.mu.Unlock()
	b := u.keys[keyID]
	if b == nil {
		b = &fsm.KeyUsageBatch{KeyID: keyID}
		u.keys[keyID] = b
	}
	b.Count++
	if !e.At.Before(b.LastUsedAt) {
		b.LastUsedAt, b.LastUsedIP = e.At, e.IP
	}
	if len(b.Entries) < usageEntriesPerFlush {
		b.Entries = append(b.Entries, e)
	}
}

// Merge adds a batch recorded elsewhere (a follower's shipment, or one that
// could not be sent): its count and last use, and its entries as far as the
// cap leaves room.
func (u *UsageRecorder) Merge(in fsm.KeyUsageBatch) {
	u.mu.Lock()
	defer u.mu.Unlock()
	b := u.keys[in.KeyID]
	if b == nil {
		b = &fsm.KeyUsageBatch{KeyID: in.KeyID}
		u.keys[in.KeyID] = b
	}
	b.Count += in.Count
	switch {
	case in.LastUsedAt.After(b.LastUsedAt):
		b.LastUsedAt, b.LastUsedIP = in.LastUsedAt, in.LastUsedIP
	case in.LastUsedAt.Equal(b.LastUsedAt) && b.LastUsedIP == "":
		b.LastUsedIP = in.LastUsedIP
	}
	room := max(usageEntriesPerFlush-len(b.Entries), 0)
	b.Entries = append(b.Entries, in.Entries[:min(room, len(in.Entries))]...)
}

// Take returns and clears what was buffered (nil if nothing).
func (u *UsageRecorder) Take() *fsm.KeyUsage {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.keys) == 0 {
		return nil
	}
	out := &fsm.KeyUsage{}
	for _, b := range u.keys {
		out.Keys = append(out.Keys, *b)
	}
	u.keys = map[string]*fsm.KeyUsageBatch{}
	return out
}
