package store

import (
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
	all, total, err := ListOwned[api.KeyUsage](r.tx, BucketKeyUsage, keyID, 0, keyUsageReadMax)
	if err != nil {
		return nil, 0, err
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].At.After(all[j].At) })
	if offset >= len(all) {
		return []api.KeyUsage{}, total, nil
	}
	return all[offset:min(offset+limit, len(all))], total, nil
}
