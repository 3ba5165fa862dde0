package hostplanepb

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"google.golang.org/protobuf/proto"
)

// MaxFrame is the largest envelope a peer accepts (4 MiB).
const MaxFrame = 4 << 20

// ErrFrameTooLarge is returned for a frame over the limit.
var ErrFrameTooLarge = errors.New("frame larger than the limit")

// WriteEnvelope writes one frame: a 4-byte big-endian length, then the
// envelope, in one Write.
func WriteEnvelope(w io.Writer, env *Envelope) error {
	// Sized once, marshalled straight behind its header (one allocation).
	buf, err := appendFrame(make([]byte, 0, 4+proto.Size(env)), env)
	if err != nil {
		return err
	}
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("write envelope: %w", err)
	}
	return nil
}

// Frames is the frames of envs, one after the other, as WriteEnvelope
// writes each: several requests sent with one Write, in one allocation.
func Frames(envs []*Envelope) ([]byte, error) {
	size := 0
	for _, env := range envs {
		size += 4 + proto.Size(env)
	}
	buf := make([]byte, 0, size)
	for _, env := range envs {
		var err error
		if buf, err = appendFrame(buf, env); err != nil {
			return nil, err
		}
	}
	return buf, nil
}

// appendFrame appends env's frame to dst. Its callers have just computed
// env's size (proto.Size) and not changed env since, so the marshal reuses it.
func appendFrame(dst []byte, env *Envelope) ([]byte, error) {
	n := len(dst)
	out, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(append(dst, 0, 0, 0, 0), env)
	if err != nil {
		return nil, fmt.Errorf("encode envelope: %w", err)
	}
	size := len(out) - n - 4
	if size > MaxFrame {
		return nil, fmt.Errorf("encode envelope: %w (%d bytes)", ErrFrameTooLarge, size)
	}
	binary.BigEndian.PutUint32(out[n:], uint32(size))
	return out, nil
}

// ReadEnvelope reads one frame of at most max bytes (MaxFrame when max <= 0).
func ReadEnvelope(r io.Reader, max int) (*Envelope, error) {
	if max <= 0 {
		max = MaxFrame
	}
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("read envelope header: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(max) {
		return nil, fmt.Errorf("read envelope: %w (%d > %d bytes)", ErrFrameTooLarge, n, max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("read envelope body: %w", err)
	}
	return DecodeEnvelope(b)
}

// DecodeEnvelope parses an envelope. A body this version does not know (a
// newer peer's message type) decodes to an envelope with no body, which the
// receiver ignores.
func DecodeEnvelope(b []byte) (*Envelope, error) {
	env := &Envelope{}
	if err := proto.Unmarshal(b, env); err != nil {
		return nil, fmt.Errorf("decode envelope: %w", err)
	}
	return env, nil
}

// JoinTokenPrefix starts every join token.
const JoinTokenPrefix = "hpj1"

// JoinToken is a parsed join token: "hpj1.<id>.<secret>.<ca fingerprint>". The CA
// fingerprint lets the agent authenticate the coordinator it enrols with before
// it holds the CA certificate.
type JoinToken struct {
	ID            string
	Secret        string
	CAFingerprint string
}

// String formats the token.
func (t JoinToken) String() string {
	return strings.Join([]string{JoinTokenPrefix, t.ID, t.Secret, t.CAFingerprint}, ".")
}

// ErrBadToken means a join token is malformed.
var ErrBadToken = errors.New("malformed join token")

// ParseJoinToken parses and checks the shape of a join token.
func ParseJoinToken(s string) (JoinToken, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) != 4 || parts[0] != JoinTokenPrefix {
		return JoinToken{}, ErrBadToken
	}
	t := JoinToken{ID: parts[1], Secret: parts[2], CAFingerprint: parts[3]}
	if !tokenPart(t.ID, 8, 40) || !tokenPart(t.Secret, 20, 64) || !tokenPart(t.CAFingerprint, 43, 43) {
		return JoinToken{}, ErrBadToken
	}
	return t, nil
}

func tokenPart(s string, min, max int) bool {
	if len(s) < min || len(s) > max {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// TokenSecretHash is what the coordinators store for a join token's secret.
func TokenSecretHash(secret string) string {
	sum := sha256.Sum256([]byte("hostplane join token " + secret))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// CAFingerprint is the base64url SHA-256 of a CA certificate's DER bytes.
func CAFingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
