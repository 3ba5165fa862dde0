package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/hostplane/hostplane/pkg/api"
)

// Key is a stored API key: the public info plus the hash of the secret.
type Key struct {
	api.KeyInfo
	Hash string `json:"hash"`
	// UsageFlushes is, per coordinator (its node id), the id of the last
	// of its key usage flushes (fsm.CmdKeyUsageFlush) written to this key:
	// one proposed again, when its first proposal's answer was lost, is
	// not counted a second time. Kept with the key's use count, which it
	// guards; one entry per coordinator that flushed this key's usage, at
	// most MaxUsageFlushes.
	UsageFlushes map[string]UsageFlushID `json:"usage_flushes,omitempty"`
}

// MaxUsageFlushes bounds Key.UsageFlushes: past it the entry of the
// coordinator whose last flush is the oldest is dropped (a coordinator of
// the cluster flushes usage every few seconds while it leads; an old entry
// is one of a coordinator long gone).
const MaxUsageFlushes = 16

// UsageFlushID orders one coordinator's key usage flushes: the Raft term
// it led in when it made the flush, then a sequence number.
type UsageFlushID struct {
	Term uint64 `json:"t"`
	Seq  uint64 `json:"s"`
}

// Before reports whether id is older than o.
func (id UsageFlushID) Before(o UsageFlushID) bool {
	return id.Term < o.Term || id.Term == o.Term && id.Seq < o.Seq
}

// Account loads an account.
func (r ReadTx) Account(id string) (api.Account, error) {
	acc, err := GetAccount(r.tx, id)
	return acc, named("account", id, err)
}

// AccountExists reports whether an account exists.
func (r ReadTx) AccountExists(id string) bool { return r.has(BucketAccounts, []byte(id)) }

// AnyAccount reports whether there is at least one account.
func (r ReadTx) AnyAccount() bool {
	k, _ := r.tx.Bucket(BucketAccounts).Cursor().First()
	return k != nil
}

// AccountIDByEmail returns the id of the account with a lower-cased email, or "".
func (r ReadTx) AccountIDByEmail(lowerEmail string) string {
	return string(r.value(BucketEmails, []byte(lowerEmail)))
}

// KeyByHash loads the key whose secret has the given sha256 hex hash.
func (r ReadTx) KeyByHash(hash string) (Key, error) {
	return viaIndex[Key](r, BucketKeyHashes, BucketKeys, hash)
}

// KeyExists reports whether a key exists (revoked or not).
func (r ReadTx) KeyExists(id string) bool { return r.has(BucketKeys, []byte(id)) }

// AccountKeys lists the keys of an account (public info, revoked ones included)
// in key-id order.
func (r ReadTx) AccountKeys(accountID string) ([]api.KeyInfo, error) {
	keys, err := all[Key](r, BucketKeys)
	out := []api.KeyInfo{}
	for _, k := range keys {
		if k.AccountID == accountID {
			out = append(out, k.KeyInfo)
		}
	}
	return out, err
}

// KeyUsage lists a key's most recent usage records, newest first by the time
// of each request as KeyUsagePage orders them, at most limit.
func (r ReadTx) KeyUsage(keyID string, limit int) ([]api.KeyUsage, error) {
	items, _, err := r.KeyUsagePage(keyID, 0, limit)
	return items, err
}

// Key loads a key's public info (never its hash).
func (r ReadTx) Key(id string) (api.KeyInfo, error) {
	var k Key
	err := r.getNamed("API key", id, BucketKeys, []byte(id), &k)
	return k.KeyInfo, err
}

// keyUsageReadMax bounds the entries of a key's usage log KeyUsagePage
// orders (the FSM keeps 200).
const keyUsageReadMax = 1000

// KeyUsagePage is one page of a key's usage log, newest first by the time of
// each request, and the number of entries kept. The log is stored in the
// order its batches were written, which is not the requests' order: a
// follower's requests reach it through a later flush of the leader's.
func (r ReadTx) KeyUsagePage(keyID string, offset, limit int) ([]api.KeyUsage, int, error) {
	items, total, _, err := r.KeyUsageAt(keyID, UsageAt{Offset: offset}, limit)
	return items, total, err
}

// UsagePos is the place of an entry in a key's usage log as KeyUsagePage
// orders it: newest request first, entries of the same time newest
// written first (Seq, the entry's key).
type UsagePos struct {
	At  int64 // the request's time, Unix nanoseconds
	Seq uint64
}

// UsageAt is where a page of a key's usage log starts: at the Offset-th
// entry, or, when Below is set, at the first entry after the place Below
// (an entry pruned since places the page as well).
type UsageAt struct {
	Offset int
	Below  *UsagePos
}

// before reports whether p comes after q in the usage log's order.
func (p UsagePos) before(q UsagePos) bool { return p.At < q.At || p.At == q.At && p.Seq < q.Seq }

// KeyUsageAt is KeyUsagePage from at, with next, the place of the page's
// last entry when another follows it (nil at the end): the Below of the
// next page.
func (r ReadTx) KeyUsageAt(keyID string, at UsageAt, limit int) (page []api.KeyUsage, total int, next *UsagePos, err error) {
	type entry struct {
		pos UsagePos
		u   api.KeyUsage
	}
	var all []entry
	prefix := OwnedPrefix(keyID)
	c := r.tx.Bucket(BucketKeyUsage).Cursor()
	end := append(append([]byte{}, prefix...), 0xff)
	var k, v []byte
	if k, _ = c.Seek(end); k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	for ; k != nil && hasPrefix(k, prefix); k, v = c.Prev() {
		if total++; len(all) >= keyUsageReadMax || len(k) != len(prefix)+8 {
			continue
		}
		var u api.KeyUsage
		if err := json.Unmarshal(v, &u); err != nil {
			return nil, 0, nil, fmt.Errorf("decode %s/%x: %w", BucketKeyUsage, k, err)
		}
		all = append(all, entry{UsagePos{u.At.UnixNano(), binary.BigEndian.Uint64(k[len(prefix):])}, u})
	}
	sort.Slice(all, func(i, j int) bool { return all[j].pos.before(all[i].pos) })
	from := min(at.Offset, len(all))
	if at.Below != nil {
		from = sort.Search(len(all), func(i int) bool { return all[i].pos.before(*at.Below) })
	}
	to := min(from+limit, len(all))
	page = make([]api.KeyUsage, 0, to-from)
	for _, e := range all[from:to] {
		page = append(page, e.u)
	}
	if to < len(all) && to > from {
		last := all[to-1].pos
		next = &last
	}
	return page, total, next, nil
}
