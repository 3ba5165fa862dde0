package hosting

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hostplane/hostplane/pkg/validate"
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

// siteUsageTimeout bounds the walk of View (an action's result).
const siteUsageTimeout = 2 * time.Minute

// SiteUsage measures what dir takes on disk (see above). dir itself must be
// a directory, not a symbolic link. Entries that vanish during the walk
// count nothing; an entry that cannot be read is skipped. It fails with
// ctx's error when ctx ends before the walk is done.
func SiteUsage(ctx context.Context, dir string) (uint64, error) {
	root, err := os.Lstat(dir)
	if err != nil {
		return 0, err
	}
	if !root.IsDir() {
		return 0, fmt.Errorf("%s is not a directory", dir)
	}
	rst, ok := root.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("%s: no file status", dir)
	}
	type inode struct{ dev, ino uint64 }
	seen := map[inode]struct{}{}
	var total uint64
	n := 0
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if n++; n%256 == 0 {
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
		}
		if err != nil {
			if d != nil && d.IsDir() && path != dir {
				return fs.SkipDir // an unreadable directory: its own blocks are all we know
			}
			return nil
		}
		// WalkDir never follows a symbolic link: Info is the link's own
		// (lstat) status.
		fi, err := d.Info()
		if err != nil {
			return nil // gone since it was listed
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		if uint64(st.Dev) != uint64(rst.Dev) {
			if d.IsDir() {
				return fs.SkipDir // another file system mounted in the site
			}
			return nil
		}
		if st.Nlink > 1 && !d.IsDir() {
			k := inode{uint64(st.Dev), uint64(st.Ino)}
			if _, dup := seen[k]; dup {
				return nil
			}
			seen[k] = struct{}{}
		}
		total += uint64(st.Blocks) * 512
		return nil
	})
	if err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return total, nil
}

// siteBytes is an account's usage for an action's result, within
// siteUsageTimeout. A walk that fails or runs out of time gives the
// account's last figure measured here (0 if none since the agent started)
// rather than a partial one.
func (n *Node) siteBytes(user string) uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), siteUsageTimeout)
	defer cancel()
	b, err := SiteUsage(ctx, n.L.Site(user))
	n.lastMu.Lock()
	defer n.lastMu.Unlock()
	if err != nil {
		return n.last[user]
	}
	n.last[user] = b
	return b
}

// ErrUsageBusy: another usage request held the node's walk for the whole budget.
var ErrUsageBusy = errors.New("another usage measurement is under way")

// Usage measures the sites of the named accounts, one at a time, within
// budget (0: a minute; at most 10 minutes). One request walks at a time: a
// second (a new leader's, while the old one's still runs) waits its turn
// within its budget. The map holds the accounts
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
	out := make(map[string]uint64, len(usernames))
	for _, u := range usernames {
		if ctx.Err() != nil {
			break
		}
		if validate.HostingUsername(u) != nil {
			continue
		}
		if _, err := os.Stat(n.L.Account(u)); err != nil {
			continue // not an account of this node (or not any more)
		}
		b, err := SiteUsage(ctx, n.L.Site(u))
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
