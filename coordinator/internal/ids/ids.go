// Package ids makes the sortable, prefixed identifiers hostplane hands out (acc_…, tkt_…).
//
// An id is a prefix, an underscore and 26 Crockford base32 characters: 48 bits of
// milliseconds then 80 random bits, so ids of one kind sort by creation time. Ids
// are made before a command is proposed, never inside the FSM.
package ids

import (
	"crypto/rand"
	"encoding/binary"
	"strings"
	"sync"
	"time"
)

const alphabet = "0123456789abcdefghjkmnpqrstvwxyz"

// New returns prefix_<26 chars> for time t with crypto-random entropy. Ids
// this process makes for one millisecond count up from the first one's
// random part by a random step of 2^32 to 2^33 (ULID's monotonic mode, with
// a step that skips the 2^16 ids Successor may derive from one), so of two
// ids made one after the other for the same t the later sorts last: a
// wallet's deposit and the payment it funded in the same millisecond were
// listed in a random order ("newest first" sorts by id), now in the order
// they were made. Across milliseconds the time orders them, as before.
func New(prefix string, t time.Time) string {
	var b [16]byte
	ms := uint64(t.UnixMilli())
	var step [8]byte
	if _, err := rand.Read(step[:]); err != nil {
		panic("ids: crypto/rand failed: " + err.Error())
	}
	mono.Lock()
	if ms == mono.ms && advance(&mono.last, 1<<32|binary.BigEndian.Uint64(step[:])>>32) {
		b = mono.last
	} else {
		binary.BigEndian.PutUint64(b[:8], ms<<16)
		if _, err := rand.Read(b[6:]); err != nil {
			mono.Unlock()
			panic("ids: crypto/rand failed: " + err.Error())
		}
		mono.ms, mono.last = ms, b
	}
	mono.Unlock()
	return prefix + "_" + encode(b)
}

// mono is the last id New made and its millisecond.
var mono struct {
	sync.Mutex
	ms   uint64
	last [16]byte
}

// advance adds step to the 80 random bits of b (bytes 6-15); false, b
// unchanged, when they would overflow (New then draws a fresh random part).
func advance(b *[16]byte, step uint64) bool {
	hi, lo := binary.BigEndian.Uint16(b[6:8]), binary.BigEndian.Uint64(b[8:])
	sum := lo + step
	if sum < lo {
		if hi == 0xffff {
			return false
		}
		hi++
	}
	binary.BigEndian.PutUint16(b[6:8], hi)
	binary.BigEndian.PutUint64(b[8:], sum)
	return true
}

// Derived returns a deterministic id from a time and two numbers (a Raft index and a
// sequence within it), for ids the FSM itself must make, such as event ids.
func Derived(prefix string, t time.Time, index uint64, seq uint16) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(t.UnixMilli())<<16)
	binary.BigEndian.PutUint64(b[6:14], index)
	binary.BigEndian.PutUint16(b[14:], seq)
	return prefix + "_" + encode(b)
}

func encode(b [16]byte) string {
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	var out [26]byte
	// 128 bits as 26 base32 digits (130 bits; top 2 bits are zero).
	for i := 25; i >= 0; i-- {
		out[i] = alphabet[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}

// Valid reports whether s looks like an id with the given prefix. Handlers check it
// before using a path parameter as a key.
func Valid(prefix, s string) bool {
	rest, ok := strings.CutPrefix(s, prefix+"_")
	if !ok || len(rest) != 26 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if !strings.ContainsRune(alphabet, rune(rest[i])) {
			return false
		}
	}
	return true
}

// Successor is the id n places after id (a valid id of prefix): the same
// prefix and time, the rest counted up by n. It sorts after id and before
// any id of a later millisecond but for an id whose random part it runs
// into (1 in 2^64 for a New id). ok is false for an id that is not valid.
func Successor(prefix, id string, n uint16) (string, bool) {
	if !Valid(prefix, id) {
		return "", false
	}
	var hi, lo uint64
	for _, c := range id[len(prefix)+1:] {
		v := uint64(strings.IndexRune(alphabet, c))
		hi = hi<<5 | lo>>59
		lo = lo<<5 | v
	}
	sum := lo + uint64(n)
	if sum < lo {
		hi++
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], sum)
	return prefix + "_" + encode(b), true
}
