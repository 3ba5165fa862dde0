package store

import (
	"encoding/binary"

	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

// ReverseZone is a mapped reverse zone with its sync bookkeeping (Raft
// indexes): the leader's reconciler records, batched, the index of the state
// it made PowerDNS serve.
type ReverseZone struct {
	api.ReverseZone
	// AddedIndex is the Raft index at which the zone was mapped.
	AddedIndex uint64 `json:"added_index"`
	// SyncedIndex: PowerDNS serves this zone as the state stood at this index.
	SyncedIndex uint64 `json:"synced_index,omitempty"`
	// ChangedIndex is the Raft index of the last change of what the zone
	// should serve (a PTR of an address in it, a terminated server's,
	// a zone mapped or unmapped over it).
	ChangedIndex uint64 `json:"changed_index,omitempty"`
	// RemappedIndex is the Raft index of the last time a zone mapped or
	// unmapped over this one moved addresses in or out of it: every PTR
	// of the zone is pending until a sync newer than that.
	RemappedIndex uint64 `json:"remapped_index,omitempty"`
	// Removing: unmapped; the zone is deleted from PowerDNS, then this entry.
	Removing bool `json:"removing,omitempty"`
}

// Dirty reports whether PowerDNS may not serve the zone as the state says:
// a change (or the mapping itself) is newer than the last recorded sync.
func (z ReverseZone) Dirty() bool { return z.SyncedIndex < max(z.ChangedIndex, z.AddedIndex) }

// counterRDNSChanged is the BucketCounters key holding the Raft index of the
// last change PowerDNS must follow (a PTR set or removed, a server with PTRs
// terminated, a zone mapped or unmapped).
const counterRDNSChanged = "rdns_changed"

// MarkRDNSChanged records that reverse DNS changed at Raft index idx.
func MarkRDNSChanged(tx *bolt.Tx, idx uint64) error { return SetCounter(tx, counterRDNSChanged, idx) }

// RDNSChanged is the Raft index of the last reverse-DNS change (0: none).
func (r ReadTx) RDNSChanged() uint64 {
	v := r.value(BucketCounters, []byte(counterRDNSChanged))
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// AppliedIndex is the Raft index of the last command applied to the state
// this transaction reads.
func (r ReadTx) AppliedIndex() uint64 { return AppliedIndex(r.tx) }

// ReverseZones lists the mapped reverse zones (and those being removed) in
// name order.
func (r ReadTx) ReverseZones() ([]ReverseZone, error) { return all[ReverseZone](r, BucketReverseZones) }

// ReverseZone loads one reverse zone by its canonical name.
func (r ReadTx) ReverseZone(name string) (ReverseZone, error) {
	var z ReverseZone
	err := r.getNamed("reverse zone", name, BucketReverseZones, []byte(name), &z)
	return z, err
}
