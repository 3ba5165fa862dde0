package store

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// An account's list of actions (GET /v1/actions) reads BucketAccountActions,
// one key per action of the account ("<accountID>/<actionID>", action ids
// sort by creation time, so the last key of the account's prefix is its
// newest action), whose value holds what an action never changes after it
// is created: its resource type, resource id and command. A filter on those
// skips an entry without reading the action; the status, which changes, is
// read from the action. The FSM writes the index from semantics level 2 on
// (fsm/actionlist.go); below it the index is incomplete and AccountActions
// refuses to read it.

// ActionIndexValue is the index value of a: "<resource type> <resource id>
// <command>" (none of the three holds a space: a type and a command are
// names of the code, a resource id is a validated id).
func ActionIndexValue(a *Action) []byte {
	return []byte(a.ResourceType + " " + a.ResourceID + " " + a.Command)
}

// ParseActionIndexValue splits an index value into its three fields; ok
// false when it is not of ActionIndexValue's form.
func ParseActionIndexValue(v []byte) (resourceType, resourceID, command string, ok bool) {
	i := bytes.IndexByte(v, ' ')
	if i < 0 {
		return "", "", "", false
	}
	j := bytes.IndexByte(v[i+1:], ' ')
	if j < 0 {
		return "", "", "", false
	}
	j += i + 1
	if bytes.IndexByte(v[j+1:], ' ') >= 0 {
		return "", "", "", false
	}
	return string(v[:i]), string(v[i+1 : j]), string(v[j+1:]), true
}

// PutActionIndex records a in its account's index (a repeat rewrites the
// same key and value: the backfill at the level raise may meet an action
// indexed already).
func PutActionIndex(tx *bolt.Tx, a *Action) error {
	k, v, ok := ActionIndexEntry(a)
	if !ok {
		return nil
	}
	return tx.Bucket(BucketAccountActions).Put(k, v)
}

// ActionIndexEntry is the key and value PutActionIndex writes for a; ok
// false for an action it does not index (no account or no id).
func ActionIndexEntry(a *Action) (key, value []byte, ok bool) {
	if a.AccountID == "" || a.ID == "" {
		return nil, nil, false
	}
	return OwnedKey(a.AccountID, a.ID), ActionIndexValue(a), true
}

// ActionIndexed reports whether a's index key is written.
func ActionIndexed(tx *bolt.Tx, a *Action) bool {
	return a.AccountID == "" || tx.Bucket(BucketAccountActions).Get(OwnedKey(a.AccountID, a.ID)) != nil
}

// ActionQuery is one page of an account's actions.
type ActionQuery struct {
	// Before is an action id: the page starts at the newest action older
	// than it (sorting before it). "" starts at the account's newest.
	Before string
	// Limit is the most actions the page holds (> 0).
	Limit int
	// MaxScan bounds the index entries one page examines (0: no bound), so a
	// filter that matches little of a long history costs a bounded read; a
	// page that reached it ends early with a Next to go on from.
	MaxScan int
	// Match selects by the index value's fields (nil: every action).
	Match func(resourceType, resourceID, command string) bool
	// Status selects by status ("" any).
	Status string
}

// ActionLevelError: the account index is not complete below semantics
// level 2 (the cluster has not raised it yet, a rolling upgrade).
type ActionLevelError struct{ Have uint16 }

func (e *ActionLevelError) Error() string {
	return fmt.Sprintf("the account's action list needs semantics level 2, the cluster runs %d", e.Have)
}

// AccountActions is one page of accountID's actions, newest first, that q
// selects, and the id to pass as the next page's Before ("" when no older
// action is left to examine). A page may hold fewer than q.Limit actions
// (even none) and still have a next one, when q.MaxScan ended it.
func (r ReadTx) AccountActions(accountID string, q ActionQuery) (page []Action, next string, err error) {
	if l := r.ClusterLevel(); l < 2 {
		return nil, "", &ActionLevelError{Have: l}
	}
	prefix := OwnedPrefix(accountID)
	cur := r.tx.Bucket(BucketAccountActions).Cursor()
	// The first key at or after the start, then back one: the newest key
	// before it. (Seek past the bucket's end: its last key is before it.)
	start := append(bytes.Clone(prefix[:len(prefix)-1]), '/'+1) // after the prefix's range
	if q.Before != "" {
		start = OwnedKey(accountID, q.Before)
	}
	var k, v []byte
	if k, _ = cur.Seek(start); k == nil {
		k, v = cur.Last()
	} else {
		k, v = cur.Prev()
	}
	scanned := 0
	for ; k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Prev() {
		id := string(k[len(prefix):])
		if len(page) == q.Limit || (q.MaxScan > 0 && scanned == q.MaxScan) {
			// More to examine: go on after the last one examined.
			return page, next, nil
		}
		scanned++
		next = id
		if q.Match != nil {
			rt, rid, cmd, ok := ParseActionIndexValue(v)
			if !ok || !q.Match(rt, rid, cmd) {
				continue
			}
		}
		a, err := r.Action(id)
		if err != nil {
			return nil, "", fmt.Errorf("action index of account %s: %w", accountID, err)
		}
		if q.Status != "" && a.Status != q.Status {
			continue
		}
		page = append(page, a)
	}
	return page, "", nil
}

// AllActions is one page of every account's actions, newest first (by id:
// action ids sort by creation time), that match selects (nil: all), read
// from the actions themselves, at any semantics level; the operator's list
// (GET /admin/actions). Before, Limit and MaxScan are as in ActionQuery
// (Match and Status are not used: match sees the whole action).
func (r ReadTx) AllActions(q ActionQuery, match func(a *Action) bool) (page []Action, next string, err error) {
	cur := r.tx.Bucket(BucketActions).Cursor()
	var k []byte
	if q.Before == "" {
		k, _ = cur.Last()
	} else if k, _ = cur.Seek([]byte(q.Before)); k == nil {
		k, _ = cur.Last()
	} else {
		k, _ = cur.Prev()
	}
	scanned := 0
	for ; k != nil; k, _ = cur.Prev() {
		if len(page) == q.Limit || (q.MaxScan > 0 && scanned == q.MaxScan) {
			return page, next, nil
		}
		scanned++
		id := string(k)
		next = id
		a, err := r.Action(id)
		if err != nil {
			return nil, "", err
		}
		if match == nil || match(&a) {
			page = append(page, a)
		}
	}
	return page, "", nil
}
