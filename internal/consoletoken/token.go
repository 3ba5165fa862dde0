// Package consoletoken is the browser console's single-use ticket: the leader
// coordinator signs it with the cluster's console key (Ed25519, derived from
// the key-encryption key every coordinator shares) and the hypervisor agent
// checks it offline with the public key it learnt over its mutual-TLS session,
// refusing a token for another node, an expired one and a second use.
//
// Two formats: "hpc1" carries its claims in base64url JSON, readable by
// whoever holds the token (the customer sees the node id and the libvirt
// domain's name in the console URL); "hpc2" seals them (AES-256-GCM) with
// the cluster's console sealing key, also derived from the KEK, which the
// coordinators tell only agents that announce they understand it (protocol
// 1.5), and signs the sealed form as hpc1 signs its claims. A verifier
// accepts both, so a coordinator of either version can mint for a new agent.
package consoletoken

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
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

// Prefix starts every token of the first format (the format's version):
// claims in the clear, signed.
const Prefix = "hpc1"

// SealedPrefix starts every token whose claims are sealed (Seal).
const SealedPrefix = "hpc2"

// SealKeySize is the length of the console sealing key (AES-256).
const SealKeySize = 32

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
	ErrSealed    = fmt.Errorf("%w: its claims cannot be opened with the sealing keys held", ErrRefused)
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

// DeriveSealKey derives the cluster's console sealing key from the
// key-encryption key, as DeriveKey the signing key (another HKDF label).
func DeriveSealKey(kek []byte) ([]byte, error) {
	if len(kek) < 32 {
		return nil, fmt.Errorf("console sealing key: the key-encryption key is %d bytes, want at least 32", len(kek))
	}
	k, err := hkdf.Key(sha256.New, kek, nil, "hostplane console token sealing key v1", SealKeySize)
	if err != nil {
		return nil, fmt.Errorf("console sealing key: %w", err)
	}
	return k, nil
}

// sealAAD binds a sealed body to this use of the sealing key.
var sealAAD = []byte("hostplane console token v2")

func sealer(key []byte) (cipher.AEAD, error) {
	if len(key) != SealKeySize {
		return nil, fmt.Errorf("console sealing key: want %d bytes, got %d", SealKeySize, len(key))
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// Seal makes an hpc2 token for c: its claims sealed with sealKey (a random
// nonce each time), then signed with key as Sign signs: hpc2.<base64url of
// nonce and sealed claims>.<signature>. Only a holder of sealKey (the
// coordinators, and agents of protocol 1.5 or later) can read the claims;
// only a holder of key can make one.
func Seal(key ed25519.PrivateKey, sealKey []byte, c Claims) (string, error) {
	if err := c.valid(); err != nil {
		return "", err
	}
	aead, err := sealer(sealKey)
	if err != nil {
		return "", err
	}
	body, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("console token: %w", err)
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(body)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("console token: %w", err)
	}
	head := SealedPrefix + "." + base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, body, sealAAD))
	sig := ed25519.Sign(key, signed(head))
	return head + "." + base64.RawURLEncoding.EncodeToString(sig), nil
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

// Parse decodes an hpc1 token without checking its signature: the claims,
// the signed part and the signature. Verify is what a server calls.
func Parse(tok string) (Claims, []byte, []byte, error) {
	body, msg, sig, err := split(tok, Prefix)
	if err != nil {
		return Claims{}, nil, nil, err
	}
	c, err := decodeClaims(body)
	if err != nil {
		return Claims{}, nil, nil, err
	}
	return c, msg, sig, nil
}

// split cuts a token of format prefix into its decoded body, the signed part
// and the signature.
func split(tok, prefix string) (body, msg, sig []byte, err error) {
	if len(tok) > maxLen {
		return nil, nil, nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, maxLen)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[0] != prefix {
		return nil, nil, nil, fmt.Errorf("%w: want %s.<claims>.<signature>", ErrMalformed, prefix)
	}
	body, err = base64.RawURLEncoding.Strict().DecodeString(parts[1])
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: claims are not base64url", ErrMalformed)
	}
	sig, err = base64.RawURLEncoding.Strict().DecodeString(parts[2])
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, nil, nil, fmt.Errorf("%w: signature is not %d bytes of base64url", ErrMalformed, ed25519.SignatureSize)
	}
	return body, signed(parts[0] + "." + parts[1]), sig, nil
}

func decodeClaims(body []byte) (Claims, error) {
	var c Claims
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Claims{}, fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	if dec.More() {
		return Claims{}, fmt.Errorf("%w: claims: trailing data", ErrMalformed)
	}
	if err := c.valid(); err != nil {
		return Claims{}, err
	}
	return c, nil
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
	seals  []cipher.AEAD       // the sealing keys' AEADs, newest first
	sealed [][]byte            // those keys, in the same order
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

// AddSealKey makes key (the console sealing key, as told in a HelloAck of
// protocol 1.5) one the claims of hpc2 tokens are opened with; the oldest of
// more than maxKeys is dropped.
func (v *Verifier) AddSealKey(key []byte) error {
	aead, err := sealer(key)
	if err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	seals, sealed := []cipher.AEAD{aead}, [][]byte{bytes.Clone(key)}
	for i, k := range v.sealed {
		if !bytes.Equal(k, key) && len(sealed) < maxKeys {
			seals, sealed = append(seals, v.seals[i]), append(sealed, k)
		}
	}
	v.seals, v.sealed = seals, sealed
	return nil
}

// Verify checks tok (hpc1 or hpc2) and, when it is good, marks it used: a
// second Verify of the same token fails with ErrReused. An hpc2 token's
// signature is checked before its claims are opened.
func (v *Verifier) Verify(tok string) (Claims, error) {
	sealedTok := strings.HasPrefix(tok, SealedPrefix+".")
	prefix := Prefix
	if sealedTok {
		prefix = SealedPrefix
	}
	body, msg, sig, err := split(tok, prefix)
	if err != nil {
		return Claims{}, err
	}
	var c Claims
	if !sealedTok {
		if c, err = decodeClaims(body); err != nil {
			return Claims{}, err
		}
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
	if sealedTok {
		if c, err = v.open(body); err != nil {
			return Claims{}, err
		}
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

// open opens the sealed claims of an hpc2 token with the sealing keys held.
// v.mu is held.
func (v *Verifier) open(body []byte) (Claims, error) {
	if len(v.seals) == 0 {
		return Claims{}, fmt.Errorf("%w: no sealing key from the coordinators yet", ErrSealed)
	}
	for _, aead := range v.seals {
		n := aead.NonceSize()
		if len(body) < n+aead.Overhead() {
			return Claims{}, fmt.Errorf("%w: sealed claims are too short", ErrMalformed)
		}
		if plain, err := aead.Open(nil, body[:n], body[n:], sealAAD); err == nil {
			return decodeClaims(plain)
		}
	}
	return Claims{}, ErrSealed
}
