package fsm

import (
	"io"

	"github.com/hashicorp/raft"
)

// IndexedSnapshots wraps the Raft snapshot store so that Restore learns
// which snapshot it restores: raft.FSM.Restore is handed the stream alone,
// but hashicorp/raft opens every snapshot it restores (at start-up, from a
// leader's InstallSnapshot, from a user restore) through the store's Open,
// on the goroutine that then calls Restore, and hands Restore that stream
// behind wrappers of its own that name it (raft.ReadCloserWrapper). The
// snapshot's index (and term) is then recorded as applied, as etcd records
// a snapshot's metadata index, not the copy's own: a backup from elsewhere
// carries a foreign applied index. Opens by other goroutines (a leader
// sending a snapshot to a follower) get the same wrapper and ignore it.
func IndexedSnapshots(s raft.SnapshotStore) raft.SnapshotStore { return indexedSnapshots{s} }

type indexedSnapshots struct{ raft.SnapshotStore }

func (s indexedSnapshots) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	meta, rc, err := s.SnapshotStore.Open(id)
	if err != nil {
		return meta, rc, err
	}
	return meta, &indexedStream{ReadCloser: rc, index: meta.Index, term: meta.Term}, nil
}

// indexedStream is a snapshot's stream with the snapshot's Raft index and term.
type indexedStream struct {
	io.ReadCloser
	index, term uint64
}

// maxStreamWrappers bounds how deep snapshotOf looks through wrappers.
const maxStreamWrappers = 8

// snapshotOf is the Raft index and term of the snapshot rc streams, looking
// through raft's wrappers; 0, 0 when it was not opened through
// IndexedSnapshots.
func snapshotOf(rc io.ReadCloser) (index, term uint64) {
	for range maxStreamWrappers {
		switch r := rc.(type) {
		case *indexedStream:
			return r.index, r.term
		case raft.ReadCloserWrapper:
			rc = r.WrappedReadCloser()
		default:
			return 0, 0
		}
	}
	return 0, 0
}
