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
		{"wrong prefix", "hpc2" + good[4:], ErrMalformed},
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
