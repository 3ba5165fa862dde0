package consoletoken

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

func testKey(t testing.TB, b byte) ed25519.PrivateKey {
	t.Helper()
	k, err := DeriveKey(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sign(t testing.TB, k ed25519.PrivateKey, c Claims) string {
	t.Helper()
	tok, err := Sign(k, c)
	if err != nil {
		t.Fatalf("sign %+v: %v", c, err)
	}
	return tok
}

func TestDeriveKey(t *testing.T) {
	a1, a2, b := testKey(t, 1), testKey(t, 1), testKey(t, 2)
	if !a1.Equal(a2) {
		t.Fatal("the same KEK gave two console keys: coordinators of one cluster would not agree")
	}
	if a1.Equal(b) {
		t.Fatal("two KEKs gave the same console key")
	}
	if _, err := DeriveKey(make([]byte, 16)); err == nil {
		t.Fatal("a 16-byte KEK was accepted")
	}
}

func TestVerify(t *testing.T) {
	now := time.UnixMilli(1_800_000_000_000)
	clock := func() time.Time { return now }
	key, other := testKey(t, 1), testKey(t, 2)
	claims := func(id string) Claims {
		return Claims{ID: id, Node: "hv-01", Server: "srv_1", VM: "hp-srv-1", Expires: now.Add(time.Minute).UnixMilli()}
	}
	v := NewVerifier("hv-01", clock)
	if _, err := v.Verify(sign(t, key, claims("a"))); !errors.Is(err, ErrNoKey) {
		t.Fatalf("before any key: %v, want ErrNoKey", err)
	}
	if err := v.AddKey(key.Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}

	good := sign(t, key, claims("a"))
	got, err := v.Verify(good)
	if err != nil || got != claims("a") {
		t.Fatalf("first use: %+v, %v", got, err)
	}
	if _, err := v.Verify(good); !errors.Is(err, ErrReused) {
		t.Fatalf("second use: %v, want ErrReused", err)
	}

	expired := claims("b")
	expired.Expires = now.UnixMilli()
	far := claims("c")
	far.Expires = now.Add(MaxLifetime + time.Second).UnixMilli()
	foreign := claims("d")
	foreign.Node = "hv-02"
	// A valid token with its claims swapped for another server's.
	h := strings.Split(sign(t, key, claims("e")), ".")
	swapped := claims("e")
	swapped.VM = "hp-srv-2"
	h2 := strings.Split(sign(t, key, swapped), ".")
	tampered := h[0] + "." + h2[1] + "." + h[2]

	for _, tc := range []struct {
		name, tok string
		want      error
	}{
		{"expired", sign(t, key, expired), ErrExpired},
		{"too far ahead", sign(t, key, far), ErrMalformed},
		{"another node", sign(t, key, foreign), ErrNode},
		{"another key", sign(t, other, claims("f")), ErrSignature},
		{"claims swapped", tampered, ErrSignature},
		{"empty", "", ErrMalformed},
		{"truncated", good[:len(good)-3], ErrMalformed},
		{"wrong prefix", "hpc3" + good[4:], ErrMalformed},
		{"hpc1 claims under the hpc2 prefix", "hpc2" + good[4:], ErrSignature},
		{"huge", strings.Repeat("a", 5000), ErrMalformed},
	} {
		if _, err := v.Verify(tc.tok); !errors.Is(err, tc.want) || !errors.Is(err, ErrRefused) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}

	// A new coordinator key is accepted alongside the old one.
	if err := v.AddKey(other.Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{sign(t, other, claims("g")), sign(t, key, claims("h"))} {
		if _, err := v.Verify(tok); err != nil {
			t.Fatalf("after a second key: %v", err)
		}
	}

	// Used ids are forgotten once they expired (and a replay then is expired anyway).
	now = now.Add(2 * time.Minute)
	if _, err := v.Verify(good); !errors.Is(err, ErrExpired) {
		t.Fatalf("replay after expiry: %v, want ErrExpired", err)
	}
	v.mu.Lock()
	n := len(v.used)
	v.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d used ids kept after they expired", n)
	}
}

func TestSignRefusesBadClaims(t *testing.T) {
	if _, err := Sign(testKey(t, 1), Claims{ID: "a", Node: "n", Server: "s", Expires: 1}); err == nil || !strings.Contains(err.Error(), "vm") {
		t.Fatalf("claims without vm: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	key := testKey(f, 1)
	f.Add(sign(f, key, Claims{ID: "a", Node: "hv-01", Server: "srv_1", VM: "hp-1", Expires: 1}))
	f.Add("hpc1..")
	f.Add("hpc1." + base64.RawURLEncoding.EncodeToString([]byte(`{"jti":"a","x":1}`)) + ".AA")
	f.Add("hpc1.e30." + strings.Repeat("A", 86))
	f.Fuzz(func(t *testing.T, tok string) {
		c, msg, sig, err := Parse(tok)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse(%q): %v does not wrap ErrMalformed", tok, err)
			}
			return
		}
		if c.valid() != nil || len(sig) != ed25519.SignatureSize || len(msg) == 0 {
			t.Fatalf("Parse(%q) accepted %+v (sig %d bytes)", tok, c, len(sig))
		}
		// Whatever parses must still be refused without the key's signature.
		v := NewVerifier(c.Node, func() time.Time { return time.UnixMilli(c.Expires - 1) })
		_ = v.AddKey(testKey(t, 2).Public().(ed25519.PublicKey))
		if _, err := v.Verify(tok); err == nil {
			t.Fatalf("Verify(%q) accepted a token not signed by the key", tok)
		}
	})
}

func BenchmarkSign(b *testing.B) {
	key := testKey(b, 1)
	c := Claims{ID: NewID(), Node: "hv-01", Server: "srv_01m8rqr9s6504y1jeb404dsj44", VM: "hp-srv-01m8rqr9s6504y1jeb404dsj44", Expires: time.Now().Add(time.Minute).UnixMilli()}
	for b.Loop() {
		if _, err := Sign(key, c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify: what the agent spends on a console request before the
// WebSocket (a fresh id each time, so each is accepted and remembered).
func BenchmarkVerify(b *testing.B) {
	key := testKey(b, 1)
	v := NewVerifier("hv-01", nil)
	_ = v.AddKey(key.Public().(ed25519.PublicKey))
	exp := time.Now().Add(time.Minute).UnixMilli()
	toks := make([]string, b.N)
	for i := range toks {
		toks[i] = sign(b, key, Claims{ID: NewID(), Node: "hv-01", Server: "srv_1", VM: "hp-srv-1", Expires: exp})
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := v.Verify(toks[i]); err != nil {
			b.Fatal(err)
		}
	}
}

func sealKey(t testing.TB, b byte) []byte {
	t.Helper()
	k, err := DeriveSealKey(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestSealedClaimsAreOpaque: an hpc2 token, decoded as the customer holding
// it would (every part base64url-decoded, raw and decoded searched), shows
// neither the node id, the server id nor the VM name, and two tokens for
// the same claims differ (a fresh nonce). An hpc1 token shows them all (the
// leak hpc2 closes).
func TestSealedClaimsAreOpaque(t *testing.T) {
	c := Claims{ID: NewID(), Node: "hv-kosovo-01", Server: "srv_01k8secret", VM: "hp-srv-01k8secret", Expires: time.Now().Add(time.Minute).UnixMilli()}
	key, sk := testKey(t, 1), sealKey(t, 1)
	reveals := func(tok string) []string {
		var seen []string
		texts := []string{tok}
		for _, p := range strings.Split(tok, ".") {
			if b, err := base64.RawURLEncoding.DecodeString(p); err == nil {
				texts = append(texts, string(b))
			}
		}
		for _, secret := range []string{c.Node, c.Server, c.VM} {
			for _, x := range texts {
				if strings.Contains(x, secret) {
					seen = append(seen, secret)
					break
				}
			}
		}
		return seen
	}
	if got := reveals(sign(t, key, c)); len(got) != 3 {
		t.Fatalf("hpc1 reveals %v: the control should show all three", got)
	}
	a, err := Seal(key, sk, c)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Seal(key, sk, c)
	if !strings.HasPrefix(a, SealedPrefix+".") || a == b || len(a) > maxLen {
		t.Fatalf("sealed tokens %q and %q: want hpc2., distinct, at most %d bytes", a, b, maxLen)
	}
	if got := reveals(a); len(got) != 0 {
		t.Errorf("an hpc2 token reveals %v: %s", got, a)
	}
	if _, err := Seal(key, sk[:16], c); err == nil {
		t.Error("a 16-byte sealing key was accepted")
	}
	if a1, a2, b := sealKey(t, 1), sealKey(t, 1), sealKey(t, 2); !bytes.Equal(a1, a2) || bytes.Equal(a1, b) || bytes.Equal(a1, key.Seed()) {
		t.Error("DeriveSealKey: not one key per KEK, or the signing key's seed")
	}
}

// TestVerifySealed: a verifier that holds the sealing key accepts an hpc2
// token once, and an hpc1 token as before (a coordinator of the previous
// version mints those); one without the sealing key (told none: an agent
// of an older coordinator) refuses hpc2 and still takes hpc1. An hpc2
// token sealed with another key, signed with another key, for another node,
// expired, or with its sealed claims swapped for another token's is refused.
func TestVerifySealed(t *testing.T) {
	now := time.UnixMilli(1_800_000_000_000)
	clock := func() time.Time { return now }
	key, other := testKey(t, 1), testKey(t, 2)
	sk, otherSK := sealKey(t, 1), sealKey(t, 2)
	claims := func(id string) Claims {
		return Claims{ID: id, Node: "hv-01", Server: "srv_1", VM: "hp-srv-1", Expires: now.Add(time.Minute).UnixMilli()}
	}
	seal := func(k ed25519.PrivateKey, s []byte, c Claims) string {
		t.Helper()
		tok, err := Seal(k, s, c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	v := NewVerifier("hv-01", clock)
	if err := v.AddKey(key.Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(seal(key, sk, claims("a0"))); !errors.Is(err, ErrSealed) {
		t.Errorf("hpc2 without a sealing key: %v, want ErrSealed", err)
	}
	if got, err := v.Verify(sign(t, key, claims("a1"))); err != nil || got != claims("a1") {
		t.Errorf("hpc1 without a sealing key: %+v, %v", got, err)
	}
	if err := v.AddSealKey(sk[:8]); err == nil {
		t.Error("an 8-byte sealing key was accepted")
	}
	if err := v.AddSealKey(sk); err != nil {
		t.Fatal(err)
	}
	good := seal(key, sk, claims("a"))
	if got, err := v.Verify(good); err != nil || got != claims("a") {
		t.Fatalf("hpc2, first use: %+v, %v", got, err)
	}
	if _, err := v.Verify(good); !errors.Is(err, ErrReused) {
		t.Errorf("hpc2, second use: %v, want ErrReused", err)
	}
	if got, err := v.Verify(sign(t, key, claims("b"))); err != nil || got != claims("b") {
		t.Errorf("hpc1 alongside hpc2: %+v, %v", got, err)
	}

	foreign, expired := claims("d"), claims("e")
	foreign.Node = "hv-02"
	expired.Expires = now.UnixMilli()
	h := strings.Split(seal(key, sk, claims("f")), ".")
	h2 := strings.Split(seal(key, sk, claims("g")), ".")
	for _, tc := range []struct {
		name, tok string
		want      error
	}{
		{"another sealing key", seal(key, otherSK, claims("c")), ErrSealed},
		{"another signing key", seal(other, sk, claims("c2")), ErrSignature},
		{"another node", seal(key, sk, foreign), ErrNode},
		{"expired", seal(key, sk, expired), ErrExpired},
		{"sealed claims swapped", h[0] + "." + h2[1] + "." + h[2], ErrSignature},
		{"hpc2 claims under the hpc1 prefix", "hpc1" + good[4:], ErrMalformed},
		{"truncated", good[:len(good)-3], ErrMalformed},
	} {
		if _, err := v.Verify(tc.tok); !errors.Is(err, tc.want) || !errors.Is(err, ErrRefused) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// A second sealing key (another KEK) is accepted alongside the first.
	if err := v.AddSealKey(otherSK); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{seal(key, otherSK, claims("h")), seal(key, sk, claims("i"))} {
		if _, err := v.Verify(tok); err != nil {
			t.Errorf("after a second sealing key: %v", err)
		}
	}
}
