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
	"strconv"
	"strings"
	"syscall"

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

// quotaPath is sites/<user>, or sites/<user>/run with run set, checked to
// be that path under the root and not a symbolic link: the only paths
// handed to the btrfs command.
func (n *Node) quotaPath(user string, runDir bool) (string, error) {
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
	site, err := n.quotaPath(user, false)
	if err != nil {
		return err
	}
	runDir, err := n.quotaPath(user, true)
	if err != nil {
		return err
	}
	q := n.DiskQuota()
	if !q.Enforced {
		return nil
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
// enforced (a subvolume with a limit).
func (n *Node) quotaEnforced(user string) bool {
	if !n.DiskQuota().Enforced {
		return false
	}
	_, ok, err := n.SiteLimit(context.Background(), user)
	return err == nil && ok
}

// removeSite removes the account's site: its subvolumes when it is one
// (its limit lifted, then run/ first: a subvolume holding another is not
// deleted), or the plain directory and all it holds.
func (n *Node) removeSite(ctx context.Context, user string) error {
	site, err := n.quotaPath(user, false)
	if err != nil {
		return err
	}
	runDir, err := n.quotaPath(user, true)
	if err != nil {
		return err
	}
	if isSubvolume(site) {
		// Removing run/'s entry from a full site needs room there too
		// (EDQUOT): the limit goes first. Without quotas (disabled since)
		// there is none to lift.
		if n.DiskQuota().Enforced {
			if err := n.setSiteLimit(ctx, user, 0); err != nil {
				return err
			}
		}
		if isSubvolume(runDir) {
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
// the site's allowance is used up (EDQUOT, root included) the limit is
// lifted for that write and set back to diskMiB.
func (n *Node) writeSiteFile(ctx context.Context, user string, diskMiB int, path string, b []byte, mode os.FileMode) error {
	err := WriteFileAtomic(path, b, mode)
	if err == nil || !errors.Is(err, syscall.EDQUOT) {
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
