package store

import bolt "go.etcd.io/bbolt"

// keyClusterBrand (in BucketMeta) is the public dialect the cluster was
// first started with (pkg/brand): every coordinator must run the same.
var keyClusterBrand = []byte("brand")

// ClusterBrand is the brand recorded for the cluster ("" before the first
// leader recorded it).
func (r ReadTx) ClusterBrand() string { return string(r.value(BucketMeta, keyClusterBrand)) }

// PutClusterBrand records the cluster's brand.
func PutClusterBrand(tx *bolt.Tx, name string) error {
	return tx.Bucket(BucketMeta).Put(keyClusterBrand, []byte(name))
}
