package webhook

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

// TestKEKFingerprint: one KEK gives one fingerprint on every coordinator,
// another KEK another one, and the fingerprint reveals no part of the key.
func TestKEKFingerprint(t *testing.T) {
	k1 := bytes.Repeat([]byte{0x11}, KEKSize)
	k2 := bytes.Repeat([]byte{0x11}, KEKSize)
	k2[KEKSize-1] = 0x12
	a, _ := NewSealer(k1)
	b, _ := NewSealer(append([]byte(nil), k1...))
	c, _ := NewSealer(k2)
	if a.Fingerprint() != b.Fingerprint() {
		t.Fatalf("same KEK, fingerprints %s and %s", a.Fingerprint(), b.Fingerprint())
	}
	if a.Fingerprint() == c.Fingerprint() {
		t.Fatalf("KEKs differing in one byte share fingerprint %s", a.Fingerprint())
	}
	if len(a.Fingerprint()) != 32 || strings.Trim(a.Fingerprint(), "0123456789abcdef") != "" {
		t.Fatalf("fingerprint %q: want 32 lowercase hex characters", a.Fingerprint())
	}
	for _, k := range [][]byte{k1, k2} {
		if strings.Contains(a.Fingerprint()+c.Fingerprint(), hex.EncodeToString(k)[:8]) {
			t.Fatal("the fingerprint contains part of the key")
		}
	}
}
