package validate

import (
	"strings"
	"testing"
)

func TestIdempotencyKey(t *testing.T) {
	for _, k := range []string{"a", "order-1", "~!#$%&'*+-.^_`|", strings.Repeat("k", 255)} {
		if err := IdempotencyKey(k); err != nil {
			t.Errorf("IdempotencyKey(%q): %v; want nil", k, err)
		}
	}
	for _, k := range []string{"", " ", "a b", "a\tb", "a\nb", "a\x00", "a\x7f", "é", strings.Repeat("k", 256)} {
		if err := IdempotencyKey(k); err != ErrIdempotencyKey {
			t.Errorf("IdempotencyKey(%.20q): %v; want %v", k, err, ErrIdempotencyKey)
		}
	}
}
