package fsm

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/hostplane/hostplane/coordinator/internal/ipam"
	"github.com/hostplane/hostplane/coordinator/internal/rdns"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

// ReverseZoneAdd maps a reverse zone, optionally linked to the IP pool it
// serves (the pool must exist and overlap the zone). The proposer validates
// the name (rdns.ParseZone); apply checks it again.
type ReverseZoneAdd struct {
	Zone string `json:"zone"`
	Pool string `json:"pool,omitempty"`
}

// ReverseZoneRemove unmaps a reverse zone: it is marked removing until the
// reconciler has deleted it from PowerDNS.
type ReverseZoneRemove struct {
	Zone string `json:"zone"`
}

// ReverseZoneSynced is the reconciler's record of one pass over PowerDNS,
// one entry for every zone whose state changed. Sync state goes through
// Raft (not the leader's memory) so that every coordinator shows it and a
// new leader knows it; it is written sparingly: one entry per pass, only for
// zones whose synced index or error changed, so an idle cluster writes
// nothing and a burst of PTR changes costs one entry per pass.
type ReverseZoneSynced struct {
	Zones []ZoneSyncResult `json:"zones"`
	// StateEpoch is the store.RestoreEpoch of the state the pass read (0
	// when never restored: left out). From LevelRestoreEpoch a pass read
	// from a state a `cluster restore` has replaced since records no
	// synced index: PowerDNS holds what the replaced state said.
	StateEpoch uint64 `json:"state_epoch,omitempty"`
}

// ZoneSyncResult is the outcome of one zone in a pass.
type ZoneSyncResult struct {
	Zone string `json:"zone"`
	// Index: PowerDNS now serves the zone as the state stood at this index
	// (when Error is empty).
	Index uint64 `json:"index,omitempty"`
	Error string `json:"error,omitempty"`
	// Deleted: a removing zone is gone from PowerDNS; drop the entry.
	Deleted bool `json:"deleted,omitempty"`
}

// ValidPoolName reports whether s has the shape of an IP pool name.
func ValidPoolName(s string) bool { return ipam.ValidName(s) }

// maxSyncError bounds a recorded PowerDNS error.
const maxSyncError = 300

func applyReverseZoneAdd(c *applyCtx, p ReverseZoneAdd) (any, error) {
	z, err := rdns.ParseZone(p.Zone)
	if err != nil || z.Name != p.Zone {
		return nil, fmt.Errorf("%w: zone %q is not a canonical reverse zone", ErrInvalid, p.Zone)
	}
	if p.Pool != "" && !ValidPoolName(p.Pool) {
		return nil, fmt.Errorf("%w: pool %q is not a pool name", ErrInvalid, p.Pool)
	}
	if p.Pool != "" {
		// The pool must exist and share addresses with the zone. The link
		// names the pool the zone serves; which zone hosts an address is
		// still decided by the longest match, pool or not.
		pool, err := c.r.IPPool(p.Pool)
		if err != nil {
			return nil, err
		}
		cidr, err := netip.ParsePrefix(pool.CIDR)
		if err != nil || !cidr.Overlaps(z.Prefix) {
			return nil, fmt.Errorf("%w: zone %s (%s) holds no address of ip pool %s (%s)", ErrInvalid, z.Name, z.Prefix, p.Pool, pool.CIDR)
		}
	}
	cur, err := c.r.ReverseZone(z.Name)
	switch {
	case err == nil && !cur.Removing:
		return nil, fmt.Errorf("%w: reverse zone %s is mapped already", ErrConflict, z.Name)
	case err != nil && !errors.Is(err, ErrNotFound):
		return nil, err
	}
	rz := store.ReverseZone{
		ReverseZone: api.ReverseZone{Zone: z.Name, Prefix: z.Prefix.String(), Pool: p.Pool, CreatedAt: c.at},
		AddedIndex:  c.rdnsIndex(),
		// A zone being removed and mapped again keeps what PowerDNS has; the
		// pass it triggers makes it whole again.
		SyncedIndex: cur.SyncedIndex,
	}
	if err := putReverseZone(c.tx, rz); err != nil {
		return nil, err
	}
	// The zones it overlaps lose or gain addresses (longest match).
	if err := rdnsChanged(c, z.Prefix); err != nil {
		return nil, err
	}
	rz, err = c.r.ReverseZone(z.Name)
	return ReverseZoneView(rz), err
}

func applyReverseZoneRemove(c *applyCtx, p ReverseZoneRemove) (any, error) {
	rz, err := c.r.ReverseZone(p.Zone)
	if err != nil {
		return nil, err
	}
	if rz.Removing {
		return ReverseZoneView(rz), nil
	}
	rz.Removing = true
	if err := putReverseZone(c.tx, rz); err != nil {
		return nil, err
	}
	pz, err := rdns.ParseZone(rz.Zone)
	if err != nil {
		return nil, fmt.Errorf("%w: stored zone %q: %v", ErrInvalid, rz.Zone, err)
	}
	if err := rdnsChanged(c, pz.Prefix); err != nil {
		return nil, err
	}
	return ReverseZoneView(rz), nil
}

// rdnsChanged records that what PowerDNS should serve changed at this
// index for the addresses of prefix (a zone mapped or unmapped): every
// mapped zone overlapping it is marked changed (its ChangedIndex), so that
// the reconciler syncs only those, and the global rdns_changed index wakes
// the reconciler up.
func rdnsChanged(c *applyCtx, prefix netip.Prefix) error {
	return markZones(c, true, func(zones []rdns.Zone) []rdns.Zone {
		var out []rdns.Zone
		for _, z := range zones {
			if z.Prefix.Overlaps(prefix) {
				out = append(out, z)
			}
		}
		return out
	})
}

// rdnsAddrsChanged records that the PTRs of ips changed: the zone that
// hosts each (the longest match) is marked changed.
func rdnsAddrsChanged(c *applyCtx, ips ...netip.Addr) error {
	return markZones(c, false, func(zones []rdns.Zone) []rdns.Zone {
		var out []rdns.Zone
		for _, ip := range ips {
			if z, ok := rdns.Match(zones, ip); ok {
				out = append(out, z)
			}
		}
		return out
	})
}

func markZones(c *applyCtx, remapped bool, pick func([]rdns.Zone) []rdns.Zone) error {
	stored, err := c.r.ReverseZones()
	if err != nil {
		return err
	}
	live, byName := LiveZones(stored)
	idx := c.rdnsIndex()
	for _, z := range pick(live) {
		rz := byName[z.Name]
		if rz.ChangedIndex == idx && (!remapped || rz.RemappedIndex == idx) {
			continue
		}
		rz.ChangedIndex = idx
		if remapped {
			rz.RemappedIndex = idx
		}
		byName[z.Name] = rz
		if err := putReverseZone(c.tx, rz); err != nil {
			return err
		}
	}
	return store.MarkRDNSChanged(c.tx, idx)
}

// rdnsIndex is the index reverse DNS's sync state counts this command at:
// a zone's AddedIndex, ChangedIndex and RemappedIndex, a PTR's PTRAt, the
// rdns_changed counter, and the index a ReverseZoneSynced reports. Below
// LevelRestoreEpoch it is the Raft index, as the releases before; from it,
// the event index (the Raft index plus store.EventIndexOffset), so that
// after a `cluster restore` of a backup from a longer log (whose indexes
// are past this cluster's next Raft indexes) a change still counts as
// later than the backup's last sync, and the zone is dirty until a pass
// that read it is recorded. (Without such a restore the two are equal.)
// As the webhook check, it holds too once the state holds a restore epoch:
// a level-10 backup restored at level 11 is at 10 until the leader raises
// it again.
func (c *applyCtx) rdnsIndex() uint64 {
	if _, rules := c.restoreEpoch(); rules {
		return c.evIndex
	}
	return c.index
}

func applyReverseZoneSynced(c *applyCtx, p ReverseZoneSynced) (any, error) {
	n := 0
	epoch, rules := c.restoreEpoch()
	stale := rules && p.StateEpoch != epoch
	for _, res := range p.Zones {
		if stale && !res.Deleted && res.Error == "" {
			// Synced as a state a restore replaced stood: the zone is
			// not in sync with this one (the pass the restore starts
			// syncs it).
			if c.log != nil {
				c.log.Debug("reverse zone sync read from a state a restore replaced: synced index ignored", "zone", res.Zone, "command_epoch", p.StateEpoch, "restore_epoch", epoch)
			}
			continue
		}
		rz, err := c.r.ReverseZone(res.Zone)
		if err != nil {
			continue // removed meanwhile
		}
		switch {
		case res.Deleted:
			if !rz.Removing {
				continue // mapped again since the pass read it: keep it
			}
			if err := c.tx.Bucket(store.BucketReverseZones).Delete([]byte(rz.Zone)); err != nil {
				return nil, err
			}
			n++
			continue
		case res.Error != "":
			msg := res.Error
			if len(msg) > maxSyncError {
				msg = msg[:maxSyncError]
			}
			rz.LastError = msg
		default:
			if res.Index > c.rdnsIndex() {
				return nil, fmt.Errorf("%w: synced index %d is in the future", ErrInvalid, res.Index)
			}
			rz.SyncedIndex = max(rz.SyncedIndex, res.Index)
			rz.LastError = ""
			at := c.at
			rz.SyncedAt = &at
		}
		if err := putReverseZone(c.tx, rz); err != nil {
			return nil, err
		}
		n++
	}
	return n, nil
}

// poolLinkedZone refuses to remove a pool that a mapped reverse zone names.
func poolLinkedZone(c *applyCtx, pool string) error {
	zones, err := c.r.ReverseZones()
	if err != nil {
		return err
	}
	for _, z := range zones {
		if z.Pool == pool && !z.Removing {
			return fmt.Errorf("%w: reverse zone %s is linked to ip pool %q; unmap it first (hostplanectl reverse-zone remove %s)", ErrConflict, z.Zone, pool, z.Zone)
		}
	}
	return nil
}

func putReverseZone(tx *bolt.Tx, z store.ReverseZone) error {
	return store.PutJSON(tx, store.BucketReverseZones, []byte(z.Zone), z)
}

// ReverseZoneView is the operator's view of a zone.
func ReverseZoneView(z store.ReverseZone) api.ReverseZone {
	out := z.ReverseZone
	switch {
	case z.Removing:
		out.Status = api.ZoneRemoving
	case !z.Dirty():
		out.Status = api.PTRSynced
	default:
		out.Status = api.PTRPending
	}
	return out
}

// LiveZones are the mapped zones (not being removed), parsed.
func LiveZones(zs []store.ReverseZone) ([]rdns.Zone, map[string]store.ReverseZone) {
	var out []rdns.Zone
	byName := map[string]store.ReverseZone{}
	for _, z := range zs {
		if z.Removing {
			continue
		}
		pz, err := rdns.ParseZone(z.Zone)
		if err != nil {
			continue
		}
		out = append(out, pz)
		byName[pz.Name] = z
	}
	return out, byName
}

// WithReverseDNS adds whether a mapped zone hosts the address (zoneHosted)
// and whether PowerDNS serves its current PTR (ptrSync) to an address view.
// zones are every stored reverse zone.
func WithReverseDNS(v api.ServerIP, s store.Server, ip netip.Addr, zones []store.ReverseZone) api.ServerIP {
	live, byName := LiveZones(zones)
	z, ok := rdns.Match(live, ip)
	v.ZoneHosted, v.PTRSync = ok, api.PTRNotHosted
	if ok {
		rz := byName[z.Name]
		if rz.SyncedIndex >= max(rz.AddedIndex, rz.RemappedIndex, s.PTRAt[ip.String()]) {
			v.PTRSync = api.PTRSynced
		} else {
			v.PTRSync = api.PTRPending
		}
	}
	return v
}
