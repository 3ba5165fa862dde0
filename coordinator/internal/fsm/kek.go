package fsm

import (
	"fmt"
	"strings"

	"github.com/hostplane/hostplane/coordinator/internal/store"
)

// KEKMarkSet records the fingerprint of the key-encryption key (never the key);
// the first one wins: the same fingerprint again is a no-op, another one a
// conflict.
type KEKMarkSet struct {
	Fingerprint string `json:"fingerprint"`
	By          string `json:"by"` // the proposing coordinator's id
}

func applyKEKMark(c *applyCtx, p KEKMarkSet) (any, error) {
	if len(p.Fingerprint) != 32 || strings.Trim(p.Fingerprint, "0123456789abcdef") != "" || p.By == "" {
		return nil, fmt.Errorf("%w: kek mark needs a 32-character lowercase hex fingerprint and the proposer", ErrInvalid)
	}
	cur, err := c.r.KEKMark()
	if err == nil {
		if cur.Fingerprint != p.Fingerprint {
			return nil, fmt.Errorf("%w: another key-encryption key is recorded (by %s)", ErrConflict, cur.RecordedBy)
		}
		return cur, nil
	}
	m := store.KEKMark{Fingerprint: p.Fingerprint, RecordedBy: p.By, RecordedAt: c.at}
	return m, store.PutJSON(c.tx, store.BucketNodeCA, store.KEKMarkKey, m)
}
