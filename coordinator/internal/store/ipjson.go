package store

import (
	"encoding/json"
	"net/netip"

	"github.com/hostplane/hostplane/internal/plainjson"
	bolt "go.etcd.io/bbolt"
)

// PutIPAlloc writes the units of pool allocated to serverID (every
// place-plus-allocate command writes one per pool). The value is
// json.Marshal's bytes, written without reflection when the account id
// needs no escape (TestIPAllocEncodesAsEncodingJSON,
// FuzzIPAllocEncodesAsEncodingJSON): replicated state is unchanged.
func PutIPAlloc(tx *bolt.Tx, pool, serverID string, a IPAlloc) error {
	raw, err := encodeIPAlloc(a)
	if err != nil {
		return err
	}
	return tx.Bucket(BucketIPAllocs).Put(IPAllocKey(pool, serverID), raw)
}

// encodeIPAlloc is json.Marshal(a).
func encodeIPAlloc(a IPAlloc) ([]byte, error) {
	if !plainjson.Plain(a.AccountID) {
		return json.Marshal(a)
	}
	b := make([]byte, 0, 32+len(a.AccountID)+24*len(a.Units))
	b = append(b, '{')
	if a.AccountID != "" {
		b = append(plainjson.AppendString(append(b, `"account_id":`...), a.AccountID), ',')
	}
	b = append(b, `"units":`...)
	b = plainjson.AppendArray(b, a.Units, func(b []byte, u *netip.Prefix) []byte { return AppendPrefixJSON(b, *u) })
	return append(b, '}'), nil
}

// AppendPrefixJSON appends p as encoding/json writes a netip.Prefix: its
// text (digits, hex, '.', ':', '/', never escaped; the zero Prefix is "").
func AppendPrefixJSON(b []byte, p netip.Prefix) []byte {
	b = append(b, '"')
	b, _ = p.AppendText(b)
	return append(b, '"')
}
