package fsm

import (
	"encoding/json"
	"time"

	"github.com/hostplane/hostplane/internal/plainjson"
)

// decodeBatchLayout reads a group commit laid out exactly as EncodeBatch and
// Envelope.Encode write it, with no reflection over the entry:
//
//	{"t":14,"v":1,"at":"<time>","d":[<command>,<command>...]}
//	command: {"t":<n>,"v":<n>,"at":"<time>"[,"i":<object or null>],"d":<JSON value>}
//
// Times go through time.Time's own UnmarshalJSON, an idempotency request
// through encoding/json, and each command's payload is checked as json.Valid
// checks it (validJSON), so an entry read here decodes to what encoding/json gives.
// Anything else (whitespace, other keys or key order, escapes in a time, a
// number out of range, an empty batch) makes it give up (ok false), and the
// caller decodes the entry with encoding/json. Payloads point into one copy
// of data, not into data itself.
func decodeBatchLayout(data []byte) (subs []Envelope, ok bool) {
	r := layoutReader{b: data}
	if !r.lit(`{"t":`) {
		return nil, false
	}
	if t, ok := r.uint(16); !ok || CommandType(t) != CmdBatch {
		return nil, false
	}
	if !r.lit(`,"v":`) {
		return nil, false
	}
	if _, ok := r.uint(8); !ok {
		return nil, false
	}
	if !r.lit(`,"at":`) {
		return nil, false
	}
	if _, ok := r.time(); !ok {
		return nil, false
	}
	if !r.lit(`,"d":[`) {
		return nil, false
	}
	r.b = append([]byte(nil), data...)
	subs = make([]Envelope, 0, 8)
	for {
		e, ok := r.command()
		if !ok {
			return nil, false
		}
		subs = append(subs, e)
		if r.lit(`]}`) {
			return subs, r.i == len(r.b)
		}
		if !r.lit(`,`) {
			return nil, false
		}
	}
}

// decodeEnvelopeLayout reads an entry of one command laid out exactly as
// Envelope.Encode writes it, as decodeBatchLayout reads each command of a
// group commit: what it reads is what encoding/json gives
// (FuzzDecodeEnvelopeLayout), and anything else makes it give up (ok false)
// for DecodeEnvelope's encoding/json. The payload is a copy of its bytes in
// data, as encoding/json's RawMessage is.
func decodeEnvelopeLayout(data []byte) (e Envelope, ok bool) {
	r := layoutReader{b: data}
	if e, ok = r.command(); !ok || r.i != len(r.b) {
		return Envelope{}, false
	}
	e.Data = append(json.RawMessage(nil), e.Data...)
	return e, true
}

// command reads one command at the reader:
//
//	{"t":<n>,"v":<n>,"at":"<time>"[,"i":<object or null>],"d":<JSON value>}
//
// its payload pointing into the reader's bytes.
func (r *layoutReader) command() (e Envelope, ok bool) {
	if !r.lit(`{"t":`) {
		return e, false
	}
	t, ok := r.uint(16)
	if !ok || !r.lit(`,"v":`) {
		return e, false
	}
	e.Type = CommandType(t)
	v, ok := r.uint(8)
	if !ok || !r.lit(`,"at":`) {
		return e, false
	}
	e.Version = uint8(v)
	if e.At, ok = r.time(); !ok {
		return e, false
	}
	if r.lit(`,"i":`) {
		raw, ok := r.value()
		if !ok {
			return e, false
		}
		if idem, ok := readIdemRequest(raw); ok {
			e.Idem = &idem
		} else if json.Unmarshal(raw, &e.Idem) != nil {
			return e, false
		}
	}
	if !r.lit(`,"d":`) {
		return e, false
	}
	raw, ok := r.value()
	if !ok || !validJSON(raw) || !r.lit(`}`) {
		return e, false
	}
	e.Data = json.RawMessage(raw)
	return e, true
}

// idemRequestKeys are IdemRequest's JSON keys in field order.
var idemRequestKeys = []string{"s", "h", "st", "exp"}

// readIdemRequest reads a command's idempotency request in plainjson's
// subset with keys in field order, as json.Unmarshal reads it
// (FuzzReadIdemRequest); ok false leaves it to encoding/json. Every
// command sent with an Idempotency-Key carries one.
func readIdemRequest(b []byte) (p IdemRequest, ok bool) {
	rd := plainjson.NewReader(b)
	ok = rd.Fields(idemRequestKeys, &p.Scope, &p.ReqHash, &p.Status, &p.ExpiresAt)
	return p, ok && rd.End()
}

// layoutReader walks decodeBatchLayout's input.
type layoutReader struct {
	b []byte
	i int
}

// lit consumes s if the input continues with it.
func (r *layoutReader) lit(s string) bool {
	if len(r.b)-r.i < len(s) || string(r.b[r.i:r.i+len(s)]) != s {
		return false
	}
	r.i += len(s)
	return true
}

// uint reads an unsigned integer as JSON writes one (no sign, fraction,
// exponent or leading zero) that fits in bits bits.
func (r *layoutReader) uint(bits int) (uint64, bool) {
	start := r.i
	var n uint64
	for r.i < len(r.b) && r.b[r.i] >= '0' && r.b[r.i] <= '9' {
		n = n*10 + uint64(r.b[r.i]-'0')
		r.i++
		if r.i-start > 5 {
			return 0, false // more digits than a uint16 has
		}
	}
	if r.i == start || (r.b[start] == '0' && r.i-start > 1) || n>>bits != 0 {
		return 0, false
	}
	if r.i < len(r.b) {
		switch r.b[r.i] {
		case '.', 'e', 'E':
			return 0, false
		}
	}
	return n, true
}

// time reads a JSON string without escapes as time.Time's UnmarshalJSON does.
func (r *layoutReader) time() (time.Time, bool) {
	var t time.Time
	if r.i >= len(r.b) || r.b[r.i] != '"' {
		return t, false
	}
	for j := r.i + 1; j < len(r.b); j++ {
		switch r.b[j] {
		case '\\':
			return t, false
		case '"':
			if t.UnmarshalJSON(r.b[r.i:j+1]) != nil {
				return t, false
			}
			r.i = j + 1
			return t, true
		}
	}
	return t, false
}

// value returns the extent of the JSON value at the reader (checked by the
// caller): a string, an object or array (strings inside them skipped whole),
// or a run of number or literal characters.
func (r *layoutReader) value() ([]byte, bool) {
	start := r.i
	depth := 0
	for r.i < len(r.b) {
		switch c := r.b[r.i]; c {
		case '"':
			r.i++
			for r.i < len(r.b) && r.b[r.i] != '"' {
				if r.b[r.i] == '\\' {
					r.i++
				}
				r.i++
			}
			if r.i >= len(r.b) {
				return nil, false
			}
			r.i++
		case '{', '[':
			depth++
			r.i++
		case '}', ']':
			if depth == 0 {
				return r.b[start:r.i], r.i > start
			}
			depth--
			r.i++
		case ',':
			if depth == 0 {
				return r.b[start:r.i], r.i > start
			}
			r.i++
		case ' ', '\t', '\n', '\r':
			if depth == 0 {
				return nil, false // encoding/json would leave it out of the value
			}
			r.i++
		default:
			r.i++
		}
		if depth == 0 && r.i > start {
			switch r.b[start] {
			case '"', '{', '[':
				return r.b[start:r.i], true
			}
		}
	}
	return nil, false
}

// validJSON reports what json.Valid reports, for the values a command's
// payload holds, without encoding/json's scanner (FuzzValidJSON).
func validJSON(b []byte) bool {
	i, ok := skipWS(b, 0)
	if !ok {
		return false
	}
	if i, ok = validValue(b, i, 0); !ok {
		return false
	}
	i, _ = skipWS(b, i)
	return i == len(b)
}

func skipWS(b []byte, i int) (int, bool) {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i, i < len(b)
}

// validValue checks the value at b[i:] and returns the index after it.
func validValue(b []byte, i, depth int) (int, bool) {
	switch c := b[i]; {
	case c == '"':
		return validString(b, i)
	case c == '{' || c == '[':
		if depth >= 10000 {
			return i, false // encoding/json's nesting limit
		}
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		i, ok := skipWS(b, i+1)
		if !ok {
			return i, false
		}
		if b[i] == end {
			return i + 1, true
		}
		for {
			if c == '{' {
				if i, ok = validString(b, i); !ok {
					return i, false
				}
				if i, ok = skipWS(b, i); !ok || b[i] != ':' {
					return i, false
				}
				if i, ok = skipWS(b, i+1); !ok {
					return i, false
				}
			}
			if i, ok = validValue(b, i, depth+1); !ok {
				return i, false
			}
			if i, ok = skipWS(b, i); !ok {
				return i, false
			}
			if b[i] == end {
				return i + 1, true
			}
			if b[i] != ',' {
				return i, false
			}
			if i, ok = skipWS(b, i+1); !ok {
				return i, false
			}
		}
	case c == 't':
		return i + 4, len(b)-i >= 4 && string(b[i:i+4]) == "true"
	case c == 'f':
		return i + 5, len(b)-i >= 5 && string(b[i:i+5]) == "false"
	case c == 'n':
		return i + 4, len(b)-i >= 4 && string(b[i:i+4]) == "null"
	default:
		return validNumber(b, i)
	}
}

func validString(b []byte, i int) (int, bool) {
	if i >= len(b) || b[i] != '"' {
		return i, false
	}
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1, true
		case c < 0x20:
			return i, false
		case c == '\\':
			i++
			if i >= len(b) {
				return i, false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(b)-i < 5 {
					return i, false
				}
				for _, h := range b[i+1 : i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return i, false
					}
				}
				i += 4
			default:
				return i, false
			}
		}
	}
	return i, false
}

func validNumber(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	digits := func() bool {
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i > start
	}
	if i < len(b) && b[i] == '0' {
		i++
	} else if !digits() {
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			return i, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return i, false
		}
	}
	return i, true
}
