package store

// ClusterNode records a coordinator's API address so followers can forward to it.
type ClusterNode struct {
	ID      string `json:"id"`
	APIAddr string `json:"api_addr"`
}

// ClusterNode loads a coordinator's record.
func (r ReadTx) ClusterNode(id string) (ClusterNode, error) {
	var n ClusterNode
	err := r.get(BucketCluster, []byte(id), &n)
	return n, err
}

// ClusterAPIAddrs maps every recorded coordinator to its API address
// (undecodable records are skipped).
func (r ReadTx) ClusterAPIAddrs() map[string]string {
	out := map[string]string{}
	_ = r.tx.Bucket(BucketCluster).ForEach(func(k, _ []byte) error {
		if n, err := r.ClusterNode(string(k)); err == nil {
			out[n.ID] = n.APIAddr
		}
		return nil
	})
	return out
}
