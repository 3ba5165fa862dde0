package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// DefaultBackupStall is Admin.BackupStall's default: a leader streams its
// state as fast as it reads it, so a wait this long for the next bytes is a
// leader that hangs (stopped, or cut off with its connection open), which
// the follower relaying the stream, or a client on the leader's own socket,
// would otherwise wait for without end.
const DefaultBackupStall = 30 * time.Second

// ErrBackupStalled is what BackupWith's error wraps when no data of the copy
// arrived for Admin.BackupStall: what was written to w is an incomplete copy.
var ErrBackupStalled = errors.New("backup stalled")

// Backup streams a backup of the cluster's state into w (taken on the
// leader: it holds every write acknowledged before the call).
func (a *Admin) Backup(ctx context.Context, w io.Writer) error {
	_, err := a.BackupWith(ctx, w, false)
	return err
}

// BackupInfo is what the coordinator says of a backup it streamed.
type BackupInfo struct {
	Node         string // the coordinator whose state it is
	AppliedIndex uint64 // the Raft index of the last command in it
	Stale        bool   // the state of the coordinator asked, not confirmed with the leader
}

// BackupWith streams a backup into w: of the cluster's state, taken on the
// leader, or with stale, of the state of the coordinator asked, leader or not,
// which may miss acknowledged writes (a coordinator cut off from the others
// can still be backed up).
//
// When no data arrives for a.BackupStall (0: DefaultBackupStall; below 0:
// no bound), before the answer or between its bytes, the call ends with an
// error wrapping ErrBackupStalled; time spent in w's Write (a slow output)
// does not count. a.HTTP's Timeout bounds the whole call besides (NewAdmin's
// 5 minutes; set it to 0 for a large state).
func (a *Admin) BackupWith(ctx context.Context, w io.Writer, stale bool) (BackupInfo, error) {
	path := "/admin/cluster/backup"
	if stale {
		path += "?consistency=stale"
	}
	stall := a.BackupStall
	if stall == 0 {
		stall = DefaultBackupStall
	}
	var g *stallGuard
	if stall > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		g = newStallGuard(stall, cancel)
		defer g.stop()
		w = g.writer(w)
	}
	resp, err := do(ctx, a.HTTP, "http://admin", "GET", path, nil, w, func(*http.Request) {})
	if err != nil {
		if g != nil && g.fired() {
			return BackupInfo{}, fmt.Errorf("%w: no data from the coordinator for %s (it, or the leader it asks, may hang)", ErrBackupStalled, stall)
		}
		if _, ok := err.(*api.Error); !ok {
			return BackupInfo{}, &SocketError{Socket: a.Socket, Err: err}
		}
		return BackupInfo{}, err
	}
	info := BackupInfo{Node: resp.Header.Get("X-Hostplane-Node"), Stale: resp.Header.Get("X-Hostplane-Read-Consistency") == "stale"}
	info.AppliedIndex, _ = strconv.ParseUint(resp.Header.Get("X-Hostplane-Applied-Index"), 10, 64)
	return info, nil
}

// stallGuard calls cut when d passes with no bytes written through its
// writer. Time spent in the writer itself (a slow output downstream) is not
// counted: only the waits for the coordinator are.
type stallGuard struct {
	d     time.Duration
	mu    sync.Mutex
	t     *time.Timer
	cut   bool
	ended bool
}

func newStallGuard(d time.Duration, cut func()) *stallGuard {
	g := &stallGuard{d: d}
	g.t = time.AfterFunc(d, func() {
		g.mu.Lock()
		g.cut = !g.ended
		g.mu.Unlock()
		cut()
	})
	return g
}

// writer is w with the guard's clock stopped while each write runs.
func (g *stallGuard) writer(w io.Writer) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		if !g.t.Stop() {
			return 0, ErrBackupStalled
		}
		n, err := w.Write(p)
		g.t.Reset(g.d)
		return n, err
	})
}

// fired reports whether the guard cut the backup.
func (g *stallGuard) fired() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cut
}

func (g *stallGuard) stop() {
	g.mu.Lock()
	g.ended = true
	g.mu.Unlock()
	g.t.Stop()
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
