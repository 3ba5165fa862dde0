// Package webhook verifies the signatures hostplane puts on webhook deliveries.
// Standard library only, so receivers can import it without the rest of hostplane.
//
// A delivery carries a header X-<Brand>-Signature (X-Sunucu-Signature by default):
//
//	t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>
//
// The HMAC key is the whole secret string as shown once on create or rotate,
// including its "whsec_" prefix. Several v1 entries may appear; one match is enough.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DefaultTolerance is how far the signed timestamp may be from the receiver's clock.
const DefaultTolerance = 5 * time.Minute

// Errors returned by Verify and ParseHeader.
var (
	ErrMalformedHeader = errors.New("webhook: malformed signature header")
	ErrNoSignature     = errors.New("webhook: no v1 signature in header")
	ErrBadSignature    = errors.New("webhook: signature does not match")
	ErrTimestampTooOld = errors.New("webhook: timestamp outside the tolerance")
	ErrHeaderTooLong   = errors.New("webhook: signature header too long")
)

const (
	maxHeaderLen        = 4096
	maxSignaturesParsed = 16
)

// Header is a parsed signature header.
type Header struct {
	Timestamp  int64
	Signatures [][]byte // decoded v1 values
}

// ParseHeader parses "t=<unix>,v1=<hex>[,v1=<hex>…]". Unknown keys are ignored so
// that new signature schemes can be added beside v1.
func ParseHeader(h string) (Header, error) {
	var out Header
	if len(h) > maxHeaderLen {
		return out, ErrHeaderTooLong
	}
	haveT := false
	for _, part := range strings.Split(h, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return out, fmt.Errorf("%w: element %q has no '='", ErrMalformedHeader, part)
		}
		switch k {
		case "t":
			if haveT {
				return out, fmt.Errorf("%w: t appears twice", ErrMalformedHeader)
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				return out, fmt.Errorf("%w: t is not a positive integer", ErrMalformedHeader)
			}
			out.Timestamp, haveT = n, true
		case "v1":
			if len(out.Signatures) >= maxSignaturesParsed {
				continue
			}
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) != sha256.Size {
				return out, fmt.Errorf("%w: v1 is not a hex SHA-256 MAC", ErrMalformedHeader)
			}
			out.Signatures = append(out.Signatures, sig)
		}
	}
	if !haveT {
		return out, fmt.Errorf("%w: missing t", ErrMalformedHeader)
	}
	if len(out.Signatures) == 0 {
		return out, ErrNoSignature
	}
	return out, nil
}

// Sign returns the header value for body signed with secret at time t.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks header against body and secret, and that the timestamp is within
// tolerance of now (0 means DefaultTolerance). Pass the raw body bytes as received.
func Verify(secret, header string, body []byte, tolerance time.Duration, now time.Time) error {
	h, err := ParseHeader(header)
	if err != nil {
		return err
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	skew := now.Sub(time.Unix(h.Timestamp, 0))
	if skew > tolerance || skew < -tolerance {
		return ErrTimestampTooOld
	}
	want := mac(secret, strconv.FormatInt(h.Timestamp, 10), body)
	for _, s := range h.Signatures {
		if hmac.Equal(s, want) {
			return nil
		}
	}
	return ErrBadSignature
}
