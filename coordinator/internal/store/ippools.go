package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/ipam"
	bolt "go.etcd.io/bbolt"
)

// DefaultIPQuarantine is how long a released pool address is kept from
// reuse when its pool names no quarantine.
const DefaultIPQuarantine = ipam.DefaultQuarantine

// IPPool is a stored IP pool: its definition (validated by ipam) and the
// coordinator's settings for it.
type IPPool struct {
	ipam.Pool
	// QuarantineSeconds: 0 means DefaultIPQuarantine.
	QuarantineSeconds int64     `json:"quarantine_seconds,omitempty"`
	CreatedAt         time.Time `json:"created_at"`
}

// Quarantine is how long a released unit of the pool is kept from reuse.
func (p IPPool) Quarantine() time.Duration {
	if p.QuarantineSeconds > 0 {
		return time.Duration(p.QuarantineSeconds) * time.Second
	}
	return DefaultIPQuarantine
}

// IPv6 reports whether the pool is an IPv6 pool.
func (p IPPool) IPv6() bool {
	pfx, err := netip.ParsePrefix(p.CIDR)
	return err == nil && pfx.Addr().Is6()
}

// IPUnit is one unit of a pool that is not free: allocated to a server,
// reserved by an operator, or released and in quarantine until Until. A
// quarantine that has ended may stay stored until the unit is taken again.
// Only reserved and quarantined units are stored as IPUnit records
// (BucketIPUnits); allocated ones are in their server's IPAlloc.
type IPUnit struct {
	Prefix    netip.Prefix `json:"prefix"`
	ServerID  string       `json:"server_id,omitempty"`
	AccountID string       `json:"account_id,omitempty"`
	Reserved  bool         `json:"reserved,omitempty"`
	Note      string       `json:"note,omitempty"`
	Until     *time.Time   `json:"until,omitempty"`
}

// IPAlloc is the units of one pool allocated to one server
// (BucketIPAllocs, keyed by IPAllocKey), in the order they were allocated.
type IPAlloc struct {
	AccountID string         `json:"account_id,omitempty"`
	Units     []netip.Prefix `json:"units"`
}

// IPUnitKey is the key of a unit of a pool in BucketIPUnits.
func IPUnitKey(pool string, unit netip.Prefix) []byte { return []byte(pool + "/" + unit.String()) }

// IPUnitPrefix is the key prefix of every unit of a pool in BucketIPUnits,
// and of every server's allocation in BucketIPAllocs.
func IPUnitPrefix(pool string) []byte { return []byte(pool + "/") }

// IPAllocKey is the key of a server's allocation from a pool in
// BucketIPAllocs.
func IPAllocKey(pool, serverID string) []byte { return []byte(pool + "/" + serverID) }

// IPPool loads a pool by name.
func (r ReadTx) IPPool(name string) (IPPool, error) {
	var p IPPool
	err := r.getNamed("ip pool", name, BucketIPPools, []byte(name), &p)
	return p, err
}

// IPPools lists every pool by name.
func (r ReadTx) IPPools() ([]IPPool, error) { return all[IPPool](r, BucketIPPools) }

// IPUnits lists the units of a pool that are not free (allocated, reserved
// or quarantined, ended quarantines included), sorted by their key in
// BucketIPUnits.
func (r ReadTx) IPUnits(pool string) ([]IPUnit, error) {
	out, err := r.IPUnitRecords(pool)
	if err != nil {
		return nil, err
	}
	err = r.IPAllocs(pool, func(serverID string, a IPAlloc) error {
		for _, u := range a.Units {
			out = append(out, IPUnit{Prefix: u, ServerID: serverID, AccountID: a.AccountID})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b IPUnit) int { return strings.Compare(a.Prefix.String(), b.Prefix.String()) })
	return out, nil
}

// IPUnitRecords lists the reserved and quarantined units of a pool
// (BucketIPUnits), ended quarantines included.
func (r ReadTx) IPUnitRecords(pool string) ([]IPUnit, error) {
	var out []IPUnit
	prefix := IPUnitPrefix(pool)
	c := r.tx.Bucket(BucketIPUnits).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var u IPUnit
		if err := json.Unmarshal(v, &u); err != nil {
			return nil, fmt.Errorf("decode %s/%s: %w", BucketIPUnits, k, err)
		}
		out = append(out, u)
	}
	return out, nil
}

// IPAllocs calls fn with each server's allocation from the pool, in server
// id order.
func (r ReadTx) IPAllocs(pool string, fn func(serverID string, a IPAlloc) error) error {
	prefix := IPUnitPrefix(pool)
	c := r.tx.Bucket(BucketIPAllocs).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var a IPAlloc
		if err := json.Unmarshal(v, &a); err != nil {
			return fmt.Errorf("decode %s/%s: %w", BucketIPAllocs, k, err)
		}
		if err := fn(string(k[len(prefix):]), a); err != nil {
			return err
		}
	}
	return nil
}

// IPPoolState is a pool's allocation state for ipam.New, read from its
// reserved and quarantined units and its servers' allocations.
func (r ReadTx) IPPoolState(pool string) (ipam.State, error) {
	units, err := r.IPUnitRecords(pool)
	if err != nil {
		return ipam.State{}, err
	}
	st := IPState(units)
	err = r.IPAllocs(pool, func(_ string, a IPAlloc) error {
		st.Used = append(st.Used, a.Units...)
		return nil
	})
	return st, err
}

// IPState is a pool's allocation state for ipam.New, from its stored units.
func IPState(units []IPUnit) ipam.State {
	var st ipam.State
	for _, u := range units {
		if u.Until != nil {
			st.Quarantined = append(st.Quarantined, ipam.Quarantined{Prefix: u.Prefix, Until: *u.Until})
		} else {
			st.Used = append(st.Used, u.Prefix)
		}
	}
	return st
}

// migrateIPAllocs moves the units allocated to servers from BucketIPUnits
// (schema version 1: one record per unit) to BucketIPAllocs (one record
// per server and pool, its units in address order).
func migrateIPAllocs(tx *bolt.Tx) error {
	units, allocs := tx.Bucket(BucketIPUnits), tx.Bucket(BucketIPAllocs)
	moved := map[string]*IPAlloc{}
	var keys [][]byte
	c := units.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		var u IPUnit
		if err := json.Unmarshal(v, &u); err != nil {
			return fmt.Errorf("decode %s/%s: %w", BucketIPUnits, k, err)
		}
		if u.ServerID == "" || u.Until != nil {
			continue // reserved or quarantined: stays
		}
		pool, ok := bytes.CutSuffix(k, []byte("/"+u.Prefix.String()))
		if !ok {
			return fmt.Errorf("%s/%s: key does not end with its unit %s", BucketIPUnits, k, u.Prefix)
		}
		key := string(IPAllocKey(string(pool), u.ServerID))
		a := moved[key]
		if a == nil {
			a = &IPAlloc{AccountID: u.AccountID}
			moved[key] = a
		}
		a.Units = append(a.Units, u.Prefix)
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := units.Delete(k); err != nil {
			return err
		}
	}
	for _, key := range slices.Sorted(maps.Keys(moved)) {
		a := moved[key]
		slices.SortFunc(a.Units, func(x, y netip.Prefix) int { return x.Addr().Compare(y.Addr()) })
		raw, err := json.Marshal(a)
		if err != nil {
			return err
		}
		if err := allocs.Put([]byte(key), raw); err != nil {
			return err
		}
	}
	return nil
}
