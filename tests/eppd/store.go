package eppd

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hostplane/hostplane/internal/eppxml"
	bolt "go.etcd.io/bbolt"
)

// The registry's buckets. Every transform command changes its objects and
// records its answer under (clID, clTRID) in one bbolt transaction, so a
// command is either applied with its answer recorded or not applied at all,
// across crashes and restarts.
var (
	bucketDomains  = []byte("domains")  // name → domainRec
	bucketContacts = []byte("contacts") // id → contactRec
	bucketTRIDs    = []byte("trids")    // clID NUL clTRID → tridRec
	bucketPoll     = []byte("poll")     // clID NUL big-endian id → pollRec
	bucketMeta     = []byte("meta")     // sequence for svTRIDs, ROIDs, message ids
	bucketHosts    = []byte("hosts")    // host object name → hostRec
)

// hostRec is an RFC 5732 host object.
type hostRec struct {
	Name   string            `json:"name"`
	ROID   string            `json:"roid"`
	Addrs  []eppxml.HostAddr `json:"addrs,omitempty"`
	ClID   string            `json:"cl_id"`
	CrDate time.Time         `json:"cr_date"`
}

type domainRec struct {
	Name       string                 `json:"name"`
	ROID       string                 `json:"roid"`
	Status     []string               `json:"status,omitempty"` // client statuses set
	Registrant string                 `json:"registrant,omitempty"`
	Contacts   []eppxml.DomainContact `json:"contacts,omitempty"`
	NS         []string               `json:"ns,omitempty"`
	ClID       string                 `json:"cl_id"`
	CrID       string                 `json:"cr_id"`
	UpID       string                 `json:"up_id,omitempty"`
	CrDate     time.Time              `json:"cr_date"`
	UpDate     time.Time              `json:"up_date,omitzero"`
	ExDate     time.Time              `json:"ex_date"`
	TrDate     time.Time              `json:"tr_date,omitzero"`
	AuthPW     string                 `json:"auth_pw"`
	Privacy    bool                   `json:"privacy,omitempty"`
	LastTrn    *eppxml.DomainTrnData  `json:"last_trn,omitempty"`
	Pending    *pendingTrn            `json:"pending,omitempty"`
	HostObj    bool                   `json:"host_obj,omitempty"` // NS are host objects, not attributes
}

// pendingTrn is a transfer awaiting the losing registrar (or Due).
type pendingTrn struct {
	Trn   eppxml.DomainTrnData `json:"trn"`
	Years int                  `json:"years"`
	Due   time.Time            `json:"due"`
}

type contactRec struct {
	ID         string              `json:"id"`
	ROID       string              `json:"roid"`
	PostalInfo []eppxml.PostalInfo `json:"postal_info"`
	Voice      string              `json:"voice,omitempty"`
	Email      string              `json:"email"`
	ClID       string              `json:"cl_id"`
	CrDate     time.Time           `json:"cr_date"`
	UpDate     time.Time           `json:"up_date,omitzero"`
	AuthPW     string              `json:"auth_pw"`
}

// tridRec is a transform command's recorded answer: a repeat of the same
// clTRID for the same verb and object gets Response again, byte for byte.
type tridRec struct {
	Verb     string `json:"verb"`
	Object   string `json:"object"`
	Response []byte `json:"response"`
}

type pollRec struct {
	ID    uint64                `json:"id"`
	QDate time.Time             `json:"q_date"`
	Msg   string                `json:"msg"`
	Trn   *eppxml.DomainTrnData `json:"trn,omitempty"`
}

func openStore(path string) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketDomains, bucketContacts, bucketTRIDs, bucketPoll, bucketMeta, bucketHosts} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func getJSON(tx *bolt.Tx, bucket []byte, key string, v any) (bool, error) {
	b := tx.Bucket(bucket).Get([]byte(key))
	if b == nil {
		return false, nil
	}
	return true, json.Unmarshal(b, v)
}

func putJSON(tx *bolt.Tx, bucket []byte, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.Bucket(bucket).Put([]byte(key), b)
}

func nextSeq(tx *bolt.Tx) (uint64, error) {
	return tx.Bucket(bucketMeta).NextSequence()
}

func tridKey(clID, clTRID string) string { return clID + "\x00" + clTRID }

func pollKey(clID string, id uint64) []byte {
	k := make([]byte, len(clID)+1+8)
	copy(k, clID)
	binary.BigEndian.PutUint64(k[len(clID)+1:], id)
	return k
}

// newROID is a new object's repository id: kind ("D" domain, "C" contact,
// "H" host), the next sequence number, "-EPPD".
func newROID(tx *bolt.Tx, kind string) (string, error) {
	seq, err := nextSeq(tx)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s%d-EPPD", kind, seq), nil
}

// newAuthROID is the ROID of a new domain or contact, which must carry an
// authInfo password: 2003 without one.
func newAuthROID(tx *bolt.Tx, kind, pw string) (string, error) {
	if pw == "" {
		return "", refuse(eppxml.CodeParamMissing, "authInfo pw is required")
	}
	return newROID(tx, kind)
}

func queuePoll(tx *bolt.Tx, clID string, msg pollRec) error {
	id, err := nextSeq(tx)
	if err != nil {
		return err
	}
	msg.ID = id
	b, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketPoll).Put(pollKey(clID, id), b)
}

// firstPoll returns the oldest message of clID and the queue length.
func firstPoll(tx *bolt.Tx, clID string) (*pollRec, int, error) {
	prefix := append([]byte(clID), 0)
	c := tx.Bucket(bucketPoll).Cursor()
	var first *pollRec
	n := 0
	for k, v := c.Seek(prefix); k != nil && len(k) == len(prefix)+8 && string(k[:len(prefix)]) == string(prefix); k, v = c.Next() {
		if first == nil {
			first = new(pollRec)
			if err := json.Unmarshal(v, first); err != nil {
				return nil, 0, err
			}
		}
		n++
	}
	return first, n, nil
}
