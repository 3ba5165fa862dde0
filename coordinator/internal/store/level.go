package store

import (
	"encoding/binary"

	bolt "go.etcd.io/bbolt"
)

// keyClusterLevel (in BucketMeta) is the cluster's semantics level: the
// newest command behaviour every coordinator of the cluster applies (see
// fsm.MaxLevel). A state without it is level 1.
var keyClusterLevel = []byte("semantics_level")

// ClusterLevel is the cluster's recorded semantics level (1 when none is).
func (r ReadTx) ClusterLevel() uint16 { return ClusterLevelTx(r.tx) }

// ClusterLevelTx is ClusterLevel of a raw transaction (a snapshot checked
// before it is installed).
func ClusterLevelTx(tx *bolt.Tx) uint16 {
	if v := metaFixed(tx, keyClusterLevel, 2); v != nil {
		return max(1, binary.BigEndian.Uint16(v))
	}
	return 1
}

// PutClusterLevel records the cluster's semantics level.
func PutClusterLevel(tx *bolt.Tx, level uint16) error {
	return tx.Bucket(BucketMeta).Put(keyClusterLevel, binary.BigEndian.AppendUint16(nil, level))
}
