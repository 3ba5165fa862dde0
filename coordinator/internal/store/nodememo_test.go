package store

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

// TestNodeReadsMatchDecoding: AgentNode and AgentNodes give what decoding
// the stored record gives, read after read (from the decode memo), after
// the caller changed what an earlier read returned, and after the record
// changed; an undecodable record is still an error naming it.
func TestNodeReadsMatchDecoding(t *testing.T) {
	seen := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	n := AgentNode{AgentNode: api.AgentNode{ID: "memo-hv-1", State: api.AgentNodeReady, Roles: []string{"kvm"},
		Capacity: api.AgentNodeCapacity{VCPUs: 16}, LastSeenAt: &seen, Bridges: []string{"br0"}},
		CertSerial: "s1", CertDER: []byte{1, 2, 3}}
	db := testDB(t, func(tx *bolt.Tx) error { return put(tx, BucketAgentNodes, []byte(n.ID), n) })
	decoded := func() AgentNode {
		var want AgentNode
		_ = db.View(func(tx *bolt.Tx) error {
			return json.Unmarshal(tx.Bucket(BucketAgentNodes).Get([]byte(n.ID)), &want)
		})
		return want
	}
	check := func(what string) {
		t.Helper()
		want := decoded()
		read(t, db, func(r ReadTx) {
			got, err := r.AgentNode(n.ID)
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: AgentNode %+v %v, want %+v", what, got, err, want)
			}
			all, err := r.AgentNodes()
			if err != nil || len(all) != 1 || !reflect.DeepEqual(all[0], want) {
				t.Fatalf("%s: AgentNodes %+v %v, want [%+v]", what, all, err, want)
			}
			// What a caller does to its copy reaches no later read.
			got.Roles[0], got.Bridges[0], got.CertDER[0] = "x", "x", 9
			if got.LastSeenAt != nil {
				*got.LastSeenAt = time.Time{}
			}
			all[0].Roles[0], all[0].CertDER[0] = "y", 8
		})
	}
	check("first read")
	check("second read")
	check("third read")
	n.Roles, n.Cordoned, n.LastSeenAt = []string{"kvm", "hosting"}, true, nil
	if err := db.Update(func(tx *bolt.Tx) error { return put(tx, BucketAgentNodes, []byte(n.ID), n) }); err != nil {
		t.Fatal(err)
	}
	check("after the record changed")
	if decoded().Cordoned != true {
		t.Fatal("the changed record was not read")
	}

	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(BucketAgentNodes).Put([]byte(n.ID), []byte("{")) }); err != nil {
		t.Fatal(err)
	}
	read(t, db, func(r ReadTx) {
		if _, err := r.AgentNode(n.ID); err == nil || errors.Is(err, ErrNotFound) {
			t.Fatalf("undecodable node: %v", err)
		}
		if _, err := r.AgentNodes(); err == nil {
			t.Fatal("AgentNodes read an undecodable node")
		}
		if _, err := r.AgentNode("memo-hv-2"); !errors.Is(err, ErrNotFound) || err.Error() != "node memo-hv-2: not found" {
			t.Fatalf("missing node: %v", err)
		}
	})
}
