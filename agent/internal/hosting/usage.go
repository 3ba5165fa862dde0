package hosting

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"time"

	"github.com/hostplane/hostplane/pkg/validate"
	"golang.org/x/sys/unix"
)

// What an account's disk usage counts (SiteUsage): the blocks its site
// directory holds on disk, as du and the file system's quotas count them,
// not the files' apparent sizes. A sparse file counts what it allocated
// (not its length), a small file its whole block, a directory its own
// blocks; a file hard-linked several times in the site counts once; a
// symbolic link counts itself and is never followed (a link out of the
// site adds nothing); a file system mounted inside the site is not
// entered. The walk gives up when its context ends: a figure is reported
// only for a walk that finished.

// maxUsageBudget bounds one usage request's walks on the node, whatever the
// coordinator asked.
const maxUsageBudget = 10 * time.Minute

// defaultUsageBudget is a usage request's budget when the coordinator gave none.
const defaultUsageBudget = time.Minute

// siteUsageTimeout bounds the walk of View (an action's result) when the
// account has a figure to give instead (siteBytes).
const siteUsageTimeout = 2 * time.Minute

// maxSiteDepth bounds how deep the walk goes below the site (it holds one
// open directory per level): a directory deeper than that counts its own
// blocks, not what it holds.
const maxSiteDepth = 1024

// SiteUsage measures what dir takes on disk (see above). dir itself must be
// a directory, not a symbolic link. Entries that vanish during the walk
// count nothing; an entry that cannot be read is skipped. It fails with
// ctx's error when ctx ends before the walk is done.
//
// The walk opens each directory relative to its parent's open descriptor
// (openat, O_NOFOLLOW|O_DIRECTORY), never by path: a directory the
// customer swaps for a symbolic link (or a FIFO) after it was listed is
// not opened, so nothing outside the site is counted and no open blocks.
func SiteUsage(ctx context.Context, dir string) (uint64, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			return 0, fmt.Errorf("%s is not a directory", dir)
		}
		return 0, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return 0, &fs.PathError{Op: "stat", Path: dir, Err: err}
	}
	w := &siteWalk{ctx: ctx, dev: uint64(st.Dev), seen: map[inode]struct{}{}, total: uint64(st.Blocks) * 512}
	if err := w.dir(fd, 0); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return w.total, nil
}

type inode struct{ dev, ino uint64 }

// siteWalk is one SiteUsage walk.
type siteWalk struct {
	ctx   context.Context
	dev   uint64 // the site's file system
	seen  map[inode]struct{}
	total uint64
	n     int
}

// dir counts what the open directory fd holds (not its own blocks) and
// closes fd.
func (w *siteWalk) dir(fd int, depth int) error {
	f := os.NewFile(uintptr(fd), "site directory")
	defer f.Close()
	for {
		names, rerr := f.Readdirnames(256)
		for _, name := range names {
			if w.n++; w.n%256 == 0 {
				if err := w.ctx.Err(); err != nil {
					return err
				}
			}
			var st unix.Stat_t
			if unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
				continue // gone since it was listed
			}
			if uint64(st.Dev) != w.dev {
				continue // another file system mounted in the site
			}
			isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
			if !isDir && uint64(st.Nlink) > 1 {
				k := inode{uint64(st.Dev), uint64(st.Ino)}
				if _, dup := w.seen[k]; dup {
					continue
				}
				w.seen[k] = struct{}{}
			}
			w.total += uint64(st.Blocks) * 512
			if !isDir || depth >= maxSiteDepth {
				continue
			}
			cfd, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				continue // unreadable, or no longer a directory: its own blocks are all we know
			}
			var cst unix.Stat_t
			if unix.Fstat(cfd, &cst) != nil || cst.Dev != st.Dev || cst.Ino != st.Ino {
				unix.Close(cfd) // another directory since it was listed
				continue
			}
			if err := w.dir(cfd, depth+1); err != nil {
				return err
			}
		}
		if rerr != nil || len(names) == 0 {
			return nil // io.EOF, or the rest cannot be read
		}
	}
}

// siteBytes is an account's usage for an action's result. A walk that
// fails gives the account's last figure measured here (0 if none since the
// agent started) rather than a partial one. The walk is bounded by
// resultWalkBound only when there is such a figure to give instead: the
// first one since the agent started takes as long as the site needs (as
// every walk did before walks were bounded), since a result of 0 would be
// written over the good figure the coordinator holds.
func (n *Node) siteBytes(user string) uint64 {
	n.lastMu.Lock()
	last, ok := n.last[user]
	n.lastMu.Unlock()
	ctx := context.Background()
	if ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.resultWalkBound)
		defer cancel()
	}
	walk := n.walk
	if walk == nil {
		walk = SiteUsage
	}
	b, err := walk(ctx, n.L.Site(user))
	if err != nil {
		return last
	}
	n.lastMu.Lock()
	n.last[user] = b
	n.lastMu.Unlock()
	return b
}

// ErrUsageBusy: another usage request held the node's walk for the whole budget.
var ErrUsageBusy = errors.New("another usage measurement is under way")

// Usage measures the sites of the named accounts, one at a time, within
// budget (0: a minute; at most 10 minutes). One request walks at a time: a
// second (a new leader's, while the old one's still runs) waits its turn
// within its budget. The accounts walked least recently are walked first,
// so that a budget too short for all of them leaves different ones out
// each time. The map holds the accounts
// measured whole: one the node does not hold (no account record), one
// whose walk failed, and those the budget left unwalked are absent.
func (n *Node) Usage(ctx context.Context, usernames []string, budget time.Duration) (map[string]uint64, error) {
	if budget <= 0 {
		budget = defaultUsageBudget
	}
	ctx, cancel := context.WithTimeout(ctx, min(budget, maxUsageBudget))
	defer cancel()
	select {
	case n.usage <- struct{}{}:
		defer func() { <-n.usage }()
	case <-ctx.Done():
		return nil, ErrUsageBusy
	}
	// The accounts walked least recently go first (never walked: before
	// all): when the budget runs out before the last, the next request
	// starts with those left, and every account gets its turn.
	order := slices.Clone(usernames)
	n.lastMu.Lock()
	slices.SortStableFunc(order, func(a, b string) int { return cmp.Compare(n.tried[a], n.tried[b]) })
	n.lastMu.Unlock()
	out := make(map[string]uint64, len(usernames))
	for _, u := range order {
		if ctx.Err() != nil {
			break
		}
		if validate.HostingUsername(u) != nil {
			continue
		}
		if _, err := os.Stat(n.L.Account(u)); err != nil {
			continue // not an account of this node (or not any more)
		}
		n.lastMu.Lock()
		n.turn++
		n.tried[u] = n.turn
		n.lastMu.Unlock()
		walk := n.walk
		if walk == nil {
			walk = SiteUsage
		}
		b, err := walk(ctx, n.L.Site(u))
		if err != nil {
			continue
		}
		out[u] = b
		n.lastMu.Lock()
		n.last[u] = b
		n.lastMu.Unlock()
	}
	return out, nil
}
