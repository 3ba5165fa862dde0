package hosting

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hostplane/hostplane/internal/clock"
	"github.com/hostplane/hostplane/pkg/validate"
	"golang.org/x/sys/unix"
)

// Disk allowances (a plan's disk_mib) are enforced where sites/ is on
// btrfs with quotas enabled (btrfs quota enable): each account made there
// gets its site as a btrfs subvolume whose qgroup is limited to the plan's
// allowance (referenced bytes), so a write past it fails with EDQUOT
// ("Disk quota exceeded") for the account's SFTP and PHP alike. Its run/
// (the PHP-FPM socket, written by php-fpm as root) is a subvolume of its
// own, outside that limit: a full account's pool must still bind its
// socket, or its master's reload would fail for every site of that PHP
// version. The agent's own file in the site (the suspension marker) is
// written with the limit lifted for that write only when the site is full.
//
// Elsewhere (ext4, XFS, btrfs without quotas) sites are plain directories
// and allowances are only reported, as before. An account whose site is a
// plain directory (made before quotas were enabled) is left as it is and
// reported as not enforced: it is not moved into a subvolume.
//
// The btrfs command (btrfs-progs) does the work, arguments as a list and
// never through a shell, on paths checked to be sites/<user>[/run] under
// the root. (No Go library does qgroups without cgo; the ioctls are few,
// but the CLI is the interface btrfs documents and keeps stable.)

// btrfsMagic is statfs's f_type of btrfs.
const btrfsMagic = 0x9123683e

// btrfsFirstFreeObjectID is the inode number of every subvolume's root
// directory (BTRFS_FIRST_FREE_OBJECTID): btrfs-progs tells a subvolume so.
const btrfsFirstFreeObjectID = 256

// DiskQuota is how the node's sites/ holds the plans' disk allowances.
type DiskQuota struct {
	// FS is the file system of sites/ ("btrfs", "ext4", "xfs", ...).
	FS string
	// Enforced: btrfs with quotas enabled; new accounts' sites are
	// subvolumes limited to their plan's allowance.
	Enforced bool
	// Why says why allowances are not enforced ("" when they are).
	Why string
}

// fsName names a statfs f_type.
func fsName(t int64) string {
	switch t {
	case btrfsMagic:
		return "btrfs"
	case 0xef53:
		return "ext4" // ext2/ext3/ext4 share the magic
	case 0x58465342:
		return "xfs"
	case 0x01021994:
		return "tmpfs"
	case 0x794c7630:
		return "overlayfs"
	case 0x2fc12fc1:
		return "zfs"
	}
	return fmt.Sprintf("0x%x", t)
}

func (n *Node) btrfsBin() string {
	if n.cfg.Btrfs != "" {
		return n.cfg.Btrfs
	}
	return "btrfs"
}

func (n *Node) sitesDir() string { return filepath.Join(n.L.Root, "sites") }

// detectQuota finds out whether sites/ enforces allowances (it must exist).
func (n *Node) detectQuota(ctx context.Context) DiskQuota {
	var st unix.Statfs_t
	if err := unix.Statfs(n.sitesDir(), &st); err != nil {
		return DiskQuota{FS: "unknown", Why: fmt.Sprintf("statfs %s: %v", n.sitesDir(), err)}
	}
	q := DiskQuota{FS: fsName(int64(st.Type))}
	if st.Type != btrfsMagic {
		q.Why = q.FS + " has no per-directory quota the agent sets (only btrfs qgroups are used)"
		return q
	}
	if fi, err := os.Lstat(n.sitesDir()); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		// The btrfs command follows links: it is only handed paths
		// without one (quotaPath).
		q.Why = n.sitesDir() + " is a symbolic link (mount the btrfs file system there)"
		return q
	}
	if _, err := exec.LookPath(n.btrfsBin()); err != nil {
		q.Why = "btrfs-progs is not installed (" + n.btrfsBin() + " not found)"
		return q
	}
	if out, err := run(ctx, "", n.btrfsBin(), "qgroup", "show", "--raw", n.sitesDir()); err != nil {
		if strings.Contains(out, "quotas not enabled") {
			q.Why = "btrfs quotas are not enabled (btrfs quota enable " + n.sitesDir() + ")"
		} else {
			q.Why = err.Error()
		}
		return q
	}
	q.Enforced = true
	return q
}

// DiskQuota is how the node holds disk allowances, as found at Start (or
// at first use).
func (n *Node) DiskQuota() DiskQuota {
	n.quotaMu.Lock()
	defer n.quotaMu.Unlock()
	if n.quota == nil {
		q := n.detectQuota(context.Background())
		n.quota = &q
	}
	return *n.quota
}

// refreshQuota detects again (Start).
func (n *Node) refreshQuota(ctx context.Context) DiskQuota {
	q := n.detectQuota(ctx)
	n.quotaMu.Lock()
	n.quota = &q
	n.quotaMu.Unlock()
	return q
}

// sitePath is sites/<user>, or sites/<user>/run with run set, checked by
// name only: user is a hosting username and the path is that one under the
// root (nothing is read on disk).
func (n *Node) sitePath(user string, runDir bool) (string, error) {
	if err := validate.HostingUsername(user); err != nil {
		return "", err
	}
	p := n.L.Site(user)
	if runDir {
		p = filepath.Join(p, "run")
	}
	rel, err := filepath.Rel(n.sitesDir(), p)
	if err != nil || rel != filepath.Clean(rel) || strings.HasPrefix(rel, "..") || filepath.IsAbs(rel) ||
		(runDir && rel != user+"/run") || (!runDir && rel != user) {
		return "", fmt.Errorf("hosting: %s is not a site path under %s", p, n.sitesDir())
	}
	return p, nil
}

// quotaPath is sitePath with no symbolic link below the root: sites/,
// sites/<user> and (with run) sites/<user>/run, each that exists, is a
// directory, not a link (Lstat, component by component; what does not
// exist yet ends the check: nothing below it exists either). These are the
// only paths handed to the btrfs command, which follows links: a link
// there would aim it at another file system or subvolume. What is checked
// cannot be swapped for a link by an account between the check and the
// command: sites/ and sites/<user> are root's and writable by no one else
// (the chroot rule), run/ is root:www-data 0750.
func (n *Node) quotaPath(user string, runDir bool) (string, error) {
	p, err := n.sitePath(user, runDir)
	if err != nil {
		return "", err
	}
	return p, n.noLinkTo(p)
}

// noLinkTo is quotaPath's check of p, a sitePath: sites/ and each
// component of p below it exists as a directory, not a link, up to the
// first that does not exist.
func (n *Node) noLinkTo(p string) error {
	rel, err := filepath.Rel(n.sitesDir(), p)
	if err != nil {
		return err
	}
	c := n.sitesDir()
	for _, name := range append([]string{""}, strings.Split(rel, string(filepath.Separator))...) {
		c = filepath.Join(c, name)
		fi, err := os.Lstat(c)
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return fmt.Errorf("hosting: %s is not a directory (%s): no btrfs command is run through it", c, fi.Mode().Type())
		}
	}
	return nil
}

// isSubvolume says whether p (not followed) is the root of a btrfs subvolume.
func isSubvolume(p string) bool {
	fi, err := os.Lstat(p)
	if err != nil || !fi.IsDir() {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Ino != btrfsFirstFreeObjectID {
		return false
	}
	var sf unix.Statfs_t
	return unix.Statfs(p, &sf) == nil && sf.Type == btrfsMagic
}

// ensureSiteVolume makes the account's site a subvolume limited to
// diskMiB where the node enforces allowances, and sets the limit of a site
// that is one already; each part is skipped when done, so a create resumed
// after a crash between them converges (the subvolume exists: the limit is
// set). A site that exists as a plain directory is left as it is. Without
// quotas nothing is done (makeDirs makes a plain directory).
func (n *Node) ensureSiteVolume(ctx context.Context, user string, diskMiB int) error {
	if !n.DiskQuota().Enforced {
		_, err := n.sitePath(user, false)
		return err
	}
	site, err := n.quotaPath(user, false)
	if err != nil {
		return err
	}
	runDir, err := n.quotaPath(user, true)
	if err != nil {
		return err
	}
	if err := n.makeSubvolume(ctx, site); err != nil {
		return err
	}
	if !isSubvolume(site) {
		return nil // an account made before quotas: not migrated
	}
	if err := n.setSiteLimit(ctx, user, diskMiB); err != nil {
		return err
	}
	return n.makeSubvolume(ctx, runDir)
}

// makeSubvolume makes p (a quotaPath) a subvolume unless p exists.
func (n *Node) makeSubvolume(ctx context.Context, p string) error {
	if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if _, err := run(ctx, "", n.btrfsBin(), "subvolume", "create", p); err != nil {
		return fmt.Errorf("subvolume %s: %w", p, err)
	}
	return nil
}

// setSiteLimit sets the qgroup limit of the account's site subvolume to
// diskMiB (0: no limit).
func (n *Node) setSiteLimit(ctx context.Context, user string, diskMiB int) error {
	site, err := n.quotaPath(user, false)
	if err != nil {
		return err
	}
	size := "none"
	if diskMiB > 0 {
		size = strconv.FormatUint(uint64(diskMiB)<<20, 10)
	}
	if _, err := run(ctx, "", n.btrfsBin(), "qgroup", "limit", size, site); err != nil {
		return fmt.Errorf("disk limit of %s: %w", user, err)
	}
	return nil
}

// SiteLimit is the qgroup limit of the account's site in bytes (ok false:
// the site is not a subvolume, or has no limit).
func (n *Node) SiteLimit(ctx context.Context, user string) (limit uint64, ok bool, err error) {
	site, err := n.quotaPath(user, false)
	if err != nil {
		return 0, false, err
	}
	if !isSubvolume(site) {
		return 0, false, nil
	}
	// -r: the columns are qgroupid, referenced, exclusive, max referenced.
	out, err := run(ctx, "", n.btrfsBin(), "qgroup", "show", "-r", "--raw", "-f", site)
	if err != nil {
		if strings.Contains(out, "quotas not enabled") {
			return 0, false, nil
		}
		return 0, false, err
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "0/") {
			continue
		}
		if f[3] == "none" {
			return 0, false, nil
		}
		v, err := strconv.ParseUint(f[3], 10, 64)
		if err != nil {
			return 0, false, fmt.Errorf("btrfs qgroup show %s: max referenced %q", site, f[3])
		}
		return v, true, nil
	}
	return 0, false, fmt.Errorf("btrfs qgroup show %s: no qgroup listed", site)
}

// quotaEnforced says whether the account's site has its allowance
// enforced (a subvolume with a limit); false where that cannot be told.
func (n *Node) quotaEnforced(user string) bool {
	return n.QuotasEnforced(context.Background(), []string{user})[user]
}

// QuotasEnforced says for each of users whether its site has its
// allowance enforced (a subvolume with a limit: SiteLimit), as an action's
// result says it, leaving out those it cannot tell (the btrfs command
// failed, ctx ended). Where the node does not enforce allowances each is
// false, and no command runs.
func (n *Node) QuotasEnforced(ctx context.Context, users []string) map[string]bool {
	out := make(map[string]bool, len(users))
	enforcing := n.DiskQuota().Enforced
	for _, u := range users {
		if !enforcing {
			out[u] = false
			continue
		}
		if _, ok, err := n.SiteLimit(ctx, u); err == nil {
			out[u] = ok
		}
	}
	return out
}

// removeSite removes the account's site: its subvolumes when it is one
// (its limit lifted, then run/ first: a subvolume holding another is not
// deleted), or the plain directory and all it holds.
func (n *Node) removeSite(ctx context.Context, user string) error {
	site, err := n.sitePath(user, false)
	if err != nil {
		return err
	}
	if isSubvolume(site) {
		if err := n.noLinkTo(site); err != nil {
			return err
		}
		runDir := filepath.Join(site, "run")
		// Removing run/'s entry from a full site needs room there too
		// (EDQUOT): the limit goes first. Without quotas (disabled since)
		// there is none to lift.
		if n.DiskQuota().Enforced {
			if err := n.setSiteLimit(ctx, user, 0); err != nil {
				return err
			}
		}
		subvols := []string{site}
		if isSubvolume(runDir) {
			if err := n.noLinkTo(runDir); err != nil {
				return err
			}
			subvols = append(subvols, runDir)
		}
		// Their qgroups outlive them: the sweep destroys them, and only
		// them (SweepStaleQgroups), once they are gone.
		if err := n.recordDeletedQgroups(ctx, subvols); err != nil {
			return err
		}
		if len(subvols) == 2 {
			if _, err := run(ctx, "", n.btrfsBin(), "subvolume", "delete", runDir); err != nil {
				return fmt.Errorf("removing the run subvolume of %s: %w", user, err)
			}
		}
		if _, err := run(ctx, "", n.btrfsBin(), "subvolume", "delete", site); err != nil {
			return fmt.Errorf("removing the site subvolume of %s: %w", user, err)
		}
		return nil
	}
	return os.RemoveAll(site)
}

// writeSiteFile writes a file of the agent's into the account's site; when
// the site's allowance is used up (EDQUOT, root included) and the site is a
// subvolume (its limit is the one in the way) the limit is lifted for that
// write and set back to diskMiB. Elsewhere (a plain directory in a full
// parent qgroup) the EDQUOT is the answer: there is no limit of the site's
// to lift.
func (n *Node) writeSiteFile(ctx context.Context, user string, diskMiB int, path string, b []byte, mode os.FileMode) error {
	err := WriteFileAtomic(path, b, mode)
	if err == nil || !errors.Is(err, syscall.EDQUOT) {
		return err
	}
	if site, perr := n.quotaPath(user, false); perr != nil || !isSubvolume(site) || !n.DiskQuota().Enforced {
		return err
	}
	if err := n.setSiteLimit(ctx, user, 0); err != nil {
		return err
	}
	werr := WriteFileAtomic(path, b, mode)
	if err := n.setSiteLimit(ctx, user, diskMiB); err != nil {
		return errors.Join(werr, err)
	}
	return werr
}

// LimitsReport is what ConvergeLimits checked and did.
type LimitsReport struct {
	// Limited is the accounts whose site is a subvolume, each checked
	// against its plan's allowance; Restored those whose limit differed
	// and was set again; Failed those whose limit could not be read or set
	// (Err is the first such error).
	Limited, Restored, Failed int
	// Plain is the accounts whose site is a plain directory (not enforced).
	Plain int
	Err   error
}

// ConvergeLimits sets the limit of every account whose site is a subvolume
// back to its plan's allowance where it differs: a limit lifted by hand
// (btrfs qgroup limit none), or left lifted by an agent stopped inside
// writeSiteFile. Start runs it, before any action. Where the node does not
// enforce allowances it does nothing.
func (n *Node) ConvergeLimits(ctx context.Context) LimitsReport {
	var r LimitsReport
	if !n.DiskQuota().Enforced {
		return r
	}
	fail := func(err error) {
		r.Failed++
		if r.Err == nil {
			r.Err = err
		}
	}
	for _, u := range n.Accounts() {
		a, err := n.load(u)
		if err != nil {
			fail(fmt.Errorf("account %s: %w", u, err))
			continue
		}
		site, err := n.sitePath(u, false)
		if err != nil {
			fail(err)
			continue
		}
		if !isSubvolume(site) {
			r.Plain++
			continue
		}
		r.Limited++
		l, ok, err := n.SiteLimit(ctx, u)
		if err != nil {
			fail(err)
			continue
		}
		if (a.Plan.DiskMiB <= 0 && !ok) || (ok && a.Plan.DiskMiB > 0 && l == uint64(a.Plan.DiskMiB)<<20) {
			continue
		}
		if err := n.setSiteLimit(ctx, u, a.Plan.DiskMiB); err != nil {
			fail(err)
			continue
		}
		r.Restored++
	}
	return r
}

// Limits is what Start's ConvergeLimits found and did.
func (n *Node) Limits() LimitsReport {
	n.quotaMu.Lock()
	defer n.quotaMu.Unlock()
	return n.limits
}

// The qgroups of deleted sites. btrfs keeps a deleted subvolume's qgroup
// (its ids are not reused): each deleted site leaves two. The agent
// destroys those, and only those: "btrfs qgroup clear-stale" would clear
// every stale qgroup of the file system, and sites/ may be on the
// system's btrfs, whose snapshots' stale qgroups are not the agent's. So
// removeSite records the ids of the subvolumes it deletes, before it
// deletes them, in the hosting root's deleted-qgroups file (Layout), and
// the sweep destroys each recorded qgroup whose subvolume is gone.

// recordDeletedQgroups adds the qgroups of subvols (quotaPaths of
// subvolumes about to be deleted) to the deleted-qgroups file.
func (n *Node) recordDeletedQgroups(ctx context.Context, subvols []string) error {
	var ids []string
	for _, p := range subvols {
		out, err := run(ctx, "", n.btrfsBin(), "inspect-internal", "rootid", p)
		if err != nil {
			return err
		}
		id, err := strconv.ParseUint(strings.TrimSpace(out), 10, 64)
		if err != nil {
			return fmt.Errorf("btrfs inspect-internal rootid %s: %q", p, out)
		}
		ids = append(ids, "0/"+strconv.FormatUint(id, 10))
	}
	n.staleMu.Lock()
	defer n.staleMu.Unlock()
	rec, err := n.deletedQgroups()
	if err != nil {
		return err
	}
	for _, id := range ids {
		rec[id] = true
	}
	return n.writeDeletedQgroups(rec)
}

// deletedQgroups reads the deleted-qgroups file (held by staleMu).
func (n *Node) deletedQgroups() (map[string]bool, error) {
	b, err := os.ReadFile(n.L.DeletedQgroups())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	rec := map[string]bool{}
	for _, f := range strings.Fields(string(b)) {
		rec[f] = true
	}
	return rec, nil
}

// writeDeletedQgroups replaces the deleted-qgroups file (held by staleMu).
func (n *Node) writeDeletedQgroups(rec map[string]bool) error {
	ids := make([]string, 0, len(rec))
	for id := range rec {
		ids = append(ids, id+"\n")
	}
	slices.Sort(ids)
	return WriteFileAtomic(n.L.DeletedQgroups(), []byte(strings.Join(ids, "")), 0o600)
}

// SweepStaleQgroups destroys the qgroups of the sites deleted so far
// (those recorded, above) whose subvolumes btrfs has freed, and no other.
// btrfs frees a deleted subvolume in the background, and until it has,
// its qgroup cannot go (EBUSY): so the sweep first waits, within ctx, for
// the subvolumes deleted so far to be freed (btrfs subvolume sync). It
// returns how many qgroups went. Best effort: one still busy goes at the
// next sweep (the agent sweeps at start and hourly, logging what it
// cleared or why not); one no longer listed (destroyed by hand, or by the
// kernel, before or during the sweep) is forgotten, and not counted; one
// whose subvolume still exists (its delete failed) waits.
func (n *Node) SweepStaleQgroups(ctx context.Context) (int, error) {
	if !n.DiskQuota().Enforced {
		return 0, nil
	}
	n.staleMu.Lock()
	defer n.staleMu.Unlock()
	rec, err := n.deletedQgroups()
	if err != nil || len(rec) == 0 {
		return 0, err
	}
	sites := n.sitesDir()
	if err := n.noLinkTo(sites); err != nil {
		return 0, err
	}
	if _, err := run(ctx, "", n.btrfsBin(), "subvolume", "sync", sites); err != nil {
		return 0, err
	}
	listed, err := n.qgroupIDs(ctx)
	if err != nil {
		return 0, err
	}
	live, err := n.subvolumeIDs(ctx)
	if err != nil {
		return 0, err
	}
	gone := 0
	var errs []error
	for id := range rec {
		switch {
		case !listed[id]:
			delete(rec, id)
		case live[id]:
		default:
			if _, err := run(ctx, "", n.btrfsBin(), "qgroup", "destroy", id, sites); err != nil {
				// A newer kernel removes a freed subvolume's qgroup itself,
				// in the background: it may have done so between the
				// listing above and this destroy (ENOENT). One no longer
				// listed is gone, as wanted: forgotten, not counted.
				if now, lerr := n.qgroupIDs(ctx); lerr == nil && !now[id] {
					delete(rec, id)
					continue
				}
				errs = append(errs, err)
				continue
			}
			delete(rec, id)
			gone++
		}
	}
	return gone, errors.Join(append(errs, n.writeDeletedQgroups(rec))...)
}

// SweepQgroupsEvery runs SweepStaleQgroups at once and then every d on c
// until ctx ends, each sweep within 10 minutes, handing each one's outcome
// to report (not the one ctx's end cut short).
func (n *Node) SweepQgroupsEvery(ctx context.Context, c clock.Clock, d time.Duration, report func(cleared int, err error)) {
	clock.EveryOn(ctx, c, d, func() {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		cleared, err := n.SweepStaleQgroups(sctx)
		cancel()
		if ctx.Err() == nil {
			report(cleared, err)
		}
	})
}

// subvolumeIDs are the qgroup ids (0/<id>) of the subvolumes of sites/'s
// file system that exist.
func (n *Node) subvolumeIDs(ctx context.Context) (map[string]bool, error) {
	out, err := run(ctx, "", n.btrfsBin(), "subvolume", "list", n.sitesDir())
	if err != nil {
		return nil, err
	}
	ids := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		// ID 256 gen 9 top level 5 path sites/a
		if f := strings.Fields(sc.Text()); len(f) > 1 && f[0] == "ID" {
			ids["0/"+f[1]] = true
		}
	}
	return ids, nil
}

// qgroupIDs are the level-0 qgroups of sites/'s file system (0/<id>).
func (n *Node) qgroupIDs(ctx context.Context) (map[string]bool, error) {
	out, err := run(ctx, "", n.btrfsBin(), "qgroup", "show", "--raw", n.sitesDir())
	if err != nil {
		return nil, err
	}
	ids := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 0 && strings.HasPrefix(f[0], "0/") {
			ids[f[0]] = true
		}
	}
	return ids, nil
}
