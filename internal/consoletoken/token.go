// Package consoletoken is the browser console's single-use ticket: the leader
// coordinator signs it with the cluster's console key (Ed25519, derived from
// the key-encryption key every coordinator shares) and the hypervisor agent
// checks it offline with the public key it learnt over its mutual-TLS session,
// refusing a token for another node, an expired one and a second use.
package consoletoken

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Prefix starts every token (the format's version).
const Prefix = "hpc1"

// MaxLifetime bounds how far in the future a token may expire: a verifier
// refuses longer ones, which also bounds how long it remembers used ids.
const MaxLifetime = 5 * time.Minute

// maxLen bounds a token before any decoding (a query parameter of a URL).
const maxLen = 1024

// Claims is what a token grants: one console session on Node to the libvirt
// domain VM of server Server, until Expires, once (ID).
type Claims struct {
	ID      string `json:"jti"`
	Node    string `json:"node"`
	Server  string `json:"srv"`
	VM      string `json:"vm"`
	Expires int64  `json:"exp"` // unix milliseconds
}

// Errors a verifier tells apart (all wrap ErrRefused).
var (
	ErrRefused   = errors.New("console token refused")
	ErrMalformed = fmt.Errorf("%w: malformed", ErrRefused)
	ErrSignature = fmt.Errorf("%w: bad signature", ErrRefused)
	ErrExpired   = fmt.Errorf("%w: expired", ErrRefused)
	ErrReused    = fmt.Errorf("%w: already used", ErrRefused)
	ErrNode      = fmt.Errorf("%w: for another node", ErrRefused)
	ErrNoKey     = fmt.Errorf("%w: no console key from the coordinators yet", ErrRefused)
)

// DeriveKey derives the cluster's console signing key from the key-encryption
// key, so every coordinator holding the same KEK signs with the same key and
// no console secret is stored anywhere (least of all in the Raft log).
func DeriveKey(kek []byte) (ed25519.PrivateKey, error) {
	if len(kek) < 32 {
		return nil, fmt.Errorf("console key: the key-encryption key is %d bytes, want at least 32", len(kek))
	}
	seed, err := hkdf.Key(sha256.New, kek, nil, "hostplane console token signing key v1", ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("console key: %w", err)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// NewID returns a fresh random token id.
func NewID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic("consoletoken: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// signed is what the signature covers: a context string, then the token's
// first two parts as sent.
func signed(head string) []byte { return []byte("hostplane console token\x00" + head) }

// Sign makes a token for c.
func Sign(key ed25519.PrivateKey, c Claims) (string, error) {
	if err := c.valid(); err != nil {
		return "", err
	}
	body, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("console token: %w", err)
	}
	head := Prefix + "." + base64.RawURLEncoding.EncodeToString(body)
	sig := ed25519.Sign(key, signed(head))
	return head + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

func (c Claims) valid() error {
	for _, f := range []struct{ name, v string }{{"jti", c.ID}, {"node", c.Node}, {"srv", c.Server}, {"vm", c.VM}} {
		if f.v == "" || len(f.v) > 128 {
			return fmt.Errorf("%w: %s must be 1-128 bytes", ErrMalformed, f.name)
		}
	}
	if c.Expires <= 0 {
		return fmt.Errorf("%w: exp must be positive", ErrMalformed)
	}
	return nil
}

// Parse decodes a token without checking its signature: the claims, the
// signed part and the signature. Verify is what a server calls.
func Parse(tok string) (Claims, []byte, []byte, error) {
	if len(tok) > maxLen {
		return Claims{}, nil, nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, maxLen)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[0] != Prefix {
		return Claims{}, nil, nil, fmt.Errorf("%w: want %s.<claims>.<signature>", ErrMalformed, Prefix)
	}
	body, err := base64.RawURLEncoding.Strict().DecodeString(parts[1])
	if err != nil {
		return Claims{}, nil, nil, fmt.Errorf("%w: claims are not base64url", ErrMalformed)
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(parts[2])
	if err != nil || len(sig) != ed25519.SignatureSize {
		return Claims{}, nil, nil, fmt.Errorf("%w: signature is not %d bytes of base64url", ErrMalformed, ed25519.SignatureSize)
	}
	var c Claims
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Claims{}, nil, nil, fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	if dec.More() {
		return Claims{}, nil, nil, fmt.Errorf("%w: claims: trailing data", ErrMalformed)
	}
	if err := c.valid(); err != nil {
		return Claims{}, nil, nil, err
	}
	return c, signed(parts[0] + "." + parts[1]), sig, nil
}

// maxKeys bounds the keys a verifier accepts at once (one per coordinator
// KEK seen recently; normally one).
const maxKeys = 4

// Verifier checks tokens for one node and remembers the ids it accepted until
// they expire, so each token opens at most one console.
type Verifier struct {
	node string
	now  func() time.Time

	mu     sync.Mutex
	keys   []ed25519.PublicKey // newest first
	used   map[string]int64    // token id → its expiry (unix ms)
	pruned int64               // when expired ids were last dropped (unix ms)
	record func(id string, exp int64) error
}

// SetRecorder makes the verifier call record with each token id it is about
// to accept (under its lock, so calls are serial); an error refuses the token.
// An agent writes them down so that a restart does not forget them.
func (v *Verifier) SetRecorder(record func(id string, exp int64) error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.record = record
}

// Remember marks id used until exp (unix ms): ids an earlier process accepted.
func (v *Verifier) Remember(id string, exp int64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if exp > v.now().UnixMilli() {
		v.used[id] = exp
	}
}

// NewVerifier returns a verifier for tokens naming node (now: nil for the wall clock).
func NewVerifier(node string, now func() time.Time) *Verifier {
	if now == nil {
		now = time.Now
	}
	return &Verifier{node: node, now: now, used: map[string]int64{}}
}

// AddKey makes pub (a coordinator's console public key, as told in its
// HelloAck) acceptable; the oldest of more than maxKeys is dropped.
func (v *Verifier) AddKey(pub []byte) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("console key: want %d bytes, got %d", ed25519.PublicKeySize, len(pub))
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	keys := []ed25519.PublicKey{bytes.Clone(pub)}
	for _, k := range v.keys {
		if !k.Equal(ed25519.PublicKey(pub)) && len(keys) < maxKeys {
			keys = append(keys, k)
		}
	}
	v.keys = keys
	return nil
}

// Verify checks tok and, when it is good, marks it used: a second Verify of
// the same token fails with ErrReused.
func (v *Verifier) Verify(tok string) (Claims, error) {
	c, msg, sig, err := Parse(tok)
	if err != nil {
		return Claims{}, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.keys) == 0 {
		return Claims{}, ErrNoKey
	}
	ok := false
	for _, k := range v.keys {
		if ed25519.Verify(k, msg, sig) {
			ok = true
			break
		}
	}
	if !ok {
		return Claims{}, ErrSignature
	}
	if c.Node != v.node {
		return Claims{}, ErrNode
	}
	now := v.now().UnixMilli()
	// Expired ids are dropped at most once a second: a lookup stays O(1)
	// however many consoles were opened in the last minutes.
	if now-v.pruned >= 1000 {
		v.pruned = now
		for id, exp := range v.used {
			if exp <= now {
				delete(v.used, id)
			}
		}
	}
	if c.Expires <= now {
		return Claims{}, ErrExpired
	}
	if c.Expires > now+MaxLifetime.Milliseconds() {
		return Claims{}, fmt.Errorf("%w: expires more than %s ahead", ErrMalformed, MaxLifetime)
	}
	if _, seen := v.used[c.ID]; seen {
		return Claims{}, ErrReused
	}
	if v.record != nil {
		if err := v.record(c.ID, c.Expires); err != nil {
			return Claims{}, fmt.Errorf("%w: its use cannot be recorded: %v", ErrRefused, err)
		}
	}
	v.used[c.ID] = c.Expires
	return c, nil
}
