package seed

import (
	"crypto/rand"
	"crypto/sha512"
	"fmt"
	"strconv"
	"strings"
)

// SHA-512 crypt ("$6$"), implemented from Ulrich Drepper's published specification
// (https://www.akkadia.org/drepper/SHA-crypt.txt) so the agent needs no cgo.

const (
	cryptB64        = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	defaultRounds   = 5000
	minRounds       = 1000
	maxRounds       = 999999999
	maxSaltLen      = 16
	roundsPrefix    = "rounds="
	sha512CryptHead = "$6$"
)

// HashPassword returns a SHA-512 crypt hash of password with a fresh random salt
// and the default 5000 rounds, as /etc/shadow and cloud-init's hashed_passwd expect.
func HashPassword(password string) (string, error) {
	var raw [maxSaltLen]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("hash password: salt: %w", err)
	}
	salt := make([]byte, maxSaltLen)
	for i, b := range raw {
		salt[i] = cryptB64[int(b)%64]
	}
	return SHA512Crypt(password, sha512CryptHead+string(salt))
}

// SHA512Crypt hashes password with the salt (and optional rounds) taken from setting,
// which is "$6$salt" or "$6$rounds=N$salt" (anything after a further '$' is ignored,
// so a full hash may be passed to verify a password).
func SHA512Crypt(password, setting string) (string, error) {
	if !strings.HasPrefix(setting, sha512CryptHead) {
		return "", fmt.Errorf("sha512 crypt: setting must start with $6$")
	}
	rest := setting[len(sha512CryptHead):]
	rounds, custom := defaultRounds, false
	if strings.HasPrefix(rest, roundsPrefix) {
		num, after, ok := strings.Cut(rest[len(roundsPrefix):], "$")
		if !ok {
			return "", fmt.Errorf("sha512 crypt: malformed rounds")
		}
		n, err := strconv.ParseUint(num, 10, 64)
		if err != nil {
			return "", fmt.Errorf("sha512 crypt: malformed rounds: %w", err)
		}
		rounds, custom = int(min(max(n, minRounds), maxRounds)), true
		rest = after
	}
	salt, _, _ := strings.Cut(rest, "$")
	if len(salt) > maxSaltLen {
		salt = salt[:maxSaltLen]
	}
	sum := sha512CryptSum([]byte(password), []byte(salt), rounds)

	var b strings.Builder
	b.WriteString(sha512CryptHead)
	if custom {
		fmt.Fprintf(&b, "%s%d$", roundsPrefix, rounds)
	}
	b.WriteString(salt)
	b.WriteByte('$')
	enc := func(b2, b1, b0 byte, n int) {
		w := uint32(b2)<<16 | uint32(b1)<<8 | uint32(b0)
		for ; n > 0; n-- {
			b.WriteByte(cryptB64[w&0x3f])
			w >>= 6
		}
	}
	order := [21][3]int{
		{0, 21, 42}, {22, 43, 1}, {44, 2, 23}, {3, 24, 45}, {25, 46, 4}, {47, 5, 26}, {6, 27, 48},
		{28, 49, 7}, {50, 8, 29}, {9, 30, 51}, {31, 52, 10}, {53, 11, 32}, {12, 33, 54}, {34, 55, 13},
		{56, 14, 35}, {15, 36, 57}, {37, 58, 16}, {59, 17, 38}, {18, 39, 60}, {40, 61, 19}, {62, 20, 41},
	}
	for _, o := range order {
		enc(sum[o[0]], sum[o[1]], sum[o[2]], 4)
	}
	enc(0, 0, sum[63], 2)
	return b.String(), nil
}

func sha512CryptSum(p, s []byte, rounds int) []byte {
	// Steps 1-8: digest B.
	hb := sha512.New()
	hb.Write(p)
	hb.Write(s)
	hb.Write(p)
	db := hb.Sum(nil)

	// Steps 9-12: digest A.
	ha := sha512.New()
	ha.Write(p)
	ha.Write(s)
	n := len(p)
	for ; n > 64; n -= 64 {
		ha.Write(db)
	}
	ha.Write(db[:n])
	for n = len(p); n > 0; n >>= 1 {
		if n&1 != 0 {
			ha.Write(db)
		} else {
			ha.Write(p)
		}
	}
	da := ha.Sum(nil)

	// Steps 13-16: byte sequence P; steps 17-20: byte sequence S.
	pseq := byteSequence(p, len(p))
	sseq := byteSequence(s, 16+int(da[0]))

	// Step 21: the rounds.
	c := da
	h := sha512.New()
	for i := range rounds {
		h.Reset()
		if i&1 != 0 {
			h.Write(pseq)
		} else {
			h.Write(c)
		}
		if i%3 != 0 {
			h.Write(sseq)
		}
		if i%7 != 0 {
			h.Write(pseq)
		}
		if i&1 != 0 {
			h.Write(c)
		} else {
			h.Write(pseq)
		}
		c = h.Sum(c[:0])
	}
	return c
}

// byteSequence is the spec's byte sequence P or S of b: the SHA-512 digest
// of b written times times, repeated (the last copy cut short) to len(b)
// bytes.
func byteSequence(b []byte, times int) []byte {
	h := sha512.New()
	for range times {
		h.Write(b)
	}
	d := h.Sum(nil)
	seq := make([]byte, 0, len(b))
	n := len(b)
	for ; n > 64; n -= 64 {
		seq = append(seq, d...)
	}
	return append(seq, d[:n]...)
}
