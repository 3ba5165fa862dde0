package validate

import "errors"

// ErrIdempotencyKey is the refusal of an Idempotency-Key by IdempotencyKey.
var ErrIdempotencyKey = errors.New("Idempotency-Key must be 1-255 printable ASCII characters")

// IdempotencyKey checks one Idempotency-Key: 1 to 255 printable ASCII
// characters (0x21-0x7e: no space, no control, nothing beyond ASCII), as the
// coordinator's /v1 routes take it (a 400 otherwise). The MCP tools that
// quote an order first check the key of the order with it at the quote, so
// that a quote is never answered for a confirmation the route would refuse.
func IdempotencyKey(key string) error {
	if key == "" || len(key) > 255 {
		return ErrIdempotencyKey
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x21 || key[i] > 0x7e {
			return ErrIdempotencyKey
		}
	}
	return nil
}
