package store

import (
	"time"
)

// IdemRecord is a stored Idempotency-Key response.
type IdemRecord struct {
	ReqHash   string    `json:"req_hash"`
	Status    int       `json:"status"`
	Body      []byte    `json:"body"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Idempotency loads the stored response of an Idempotency-Key scope
// ("<keyID>/<key>"), expired or not.
func (r ReadTx) Idempotency(scope string) (IdemRecord, error) {
	var rec IdemRecord
	return rec, r.get(BucketIdempotency, []byte(scope), &rec)
}
