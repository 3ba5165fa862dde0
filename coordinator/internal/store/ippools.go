package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/ipam"
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
type IPUnit struct {
	Prefix    netip.Prefix `json:"prefix"`
	ServerID  string       `json:"server_id,omitempty"`
	AccountID string       `json:"account_id,omitempty"`
	Reserved  bool         `json:"reserved,omitempty"`
	Note      string       `json:"note,omitempty"`
	Until     *time.Time   `json:"until,omitempty"`
}

// IPUnitKey is the key of a unit of a pool in BucketIPUnits.
func IPUnitKey(pool string, unit netip.Prefix) []byte { return []byte(pool + "/" + unit.String()) }

// IPUnitPrefix is the key prefix of every unit of a pool.
func IPUnitPrefix(pool string) []byte { return []byte(pool + "/") }

// IPPool loads a pool by name.
func (r ReadTx) IPPool(name string) (IPPool, error) {
	var p IPPool
	return p, r.getNamed("ip pool", name, BucketIPPools, []byte(name), &p)
}

// IPPools lists every pool by name.
func (r ReadTx) IPPools() ([]IPPool, error) { return all[IPPool](r, BucketIPPools) }

// IPUnits lists the stored units of a pool (allocated, reserved or
// quarantined, ended quarantines included).
func (r ReadTx) IPUnits(pool string) ([]IPUnit, error) {
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

// IPPoolHasUnits reports whether any unit of the pool is stored.
func (r ReadTx) IPPoolHasUnits(pool string) bool {
	prefix := IPUnitPrefix(pool)
	k, _ := r.tx.Bucket(BucketIPUnits).Cursor().Seek(prefix)
	return k != nil && bytes.HasPrefix(k, prefix)
}

// IPPoolFree counts the pool's free units at now, as ipam's Usage does
// (a quarantine that ends at or before now counts as free), reading the keys
// of its stored units and decoding only those in quarantine.
func (r ReadTx) IPPoolFree(p IPPool, now time.Time) (uint64, error) {
	a, err := ipam.New(p.Pool, ipam.State{})
	if err != nil {
		return 0, err
	}
	total := a.Usage(now).Total
	var taken uint64
	prefix := IPUnitPrefix(p.Name)
	c := r.tx.Bucket(BucketIPUnits).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if bytes.Contains(v, []byte(`"until"`)) {
			var u IPUnit
			if err := json.Unmarshal(v, &u); err != nil {
				return 0, fmt.Errorf("decode %s/%s: %w", BucketIPUnits, k, err)
			}
			if u.Until != nil && !u.Until.After(now) {
				continue
			}
		}
		taken++
	}
	if taken >= total {
		return 0, nil
	}
	return total - taken, nil
}
