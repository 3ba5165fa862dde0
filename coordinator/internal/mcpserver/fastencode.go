package mcpserver

import (
	"bytes"
	"encoding/json"
	"strconv"
	"sync"

	"github.com/hostplane/hostplane/internal/plainjson"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The fast path's answer is one SSE message event holding the JSON-RPC
// response. appendEvent writes the bytes the SDK's encoding produces
// (encodeResponse: the result through the SDK's MarshalJSON, HTML characters
// escaped inside it, the envelope without) straight into one buffer, for the
// results the tool handlers make: a text content, _meta of int and bool
// values, structured content as raw JSON (validJSON or json.RawMessage),
// isError. Any other result is
// encoded by encodeResponse itself. TestAppendEventMatches and
// FuzzAppendEventMatches hold the two to the same bytes.

const (
	eventHead = "event: message\ndata: "
	eventTail = "\n\n"
)

// appendEvent appends the SSE event answering id with res.
func appendEvent(dst []byte, id json.RawMessage, res *mcp.CallToolResult) ([]byte, error) {
	if out, ok := appendEventFast(dst, id, res); ok {
		return out, nil
	}
	data, err := encodeResponse(id, res)
	if err != nil {
		return dst, err
	}
	dst = append(dst, eventHead...)
	dst = append(dst, data...)
	return append(dst, eventTail...), nil
}

// appendEventFast is appendEvent for the shapes it knows (ok), else dst
// unchanged and false.
func appendEventFast(dst []byte, id json.RawMessage, res *mcp.CallToolResult) ([]byte, bool) {
	if res == nil || len(res.Content) != 1 || res.InputRequests != nil || len(res.Meta) > 4 || !plainID(id) {
		return dst, false
	}
	tc, ok := res.Content[0].(*mcp.TextContent)
	if !ok || tc == nil || len(tc.Meta) > 0 || tc.Annotations != nil {
		return dst, false
	}
	var structured []byte
	switch sc := res.StructuredContent.(type) {
	case nil:
	case validJSON: // checked by result
		structured = sc
	case json.RawMessage:
		if sc == nil || !jsonValid(sc) {
			return dst, false
		}
		structured = sc
	default:
		return dst, false
	}
	var keys [4]string
	n := 0
	for k, v := range res.Meta {
		switch v.(type) {
		case int, bool:
		default:
			return dst, false
		}
		if !plainKey(k) {
			return dst, false
		}
		keys[n] = k
		n++
	}
	for i := 1; i < n; i++ { // insertion sort: encoding/json sorts map keys
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	dst = appendHead(dst, id)
	if n > 0 {
		dst = append(dst, `"_meta":{`...)
		for i, k := range keys[:n] {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '"')
			dst = append(dst, k...)
			dst = append(dst, `":`...)
			switch v := res.Meta[k].(type) {
			case int:
				dst = strconv.AppendInt(dst, int64(v), 10)
			case bool:
				dst = strconv.AppendBool(dst, v)
			}
		}
		dst = append(dst, "},"...)
	}
	return appendTail(dst, tc.Text, structured, res.IsError), true
}

// appendResultEvent is appendEvent(dst, id, result(t, resp)) written
// straight from the operation's answer, without building the result (nor
// copying the body into its text): ok false, dst unchanged, for an id
// appendEventFast refuses too. TestAppendResultEventMatches and
// FuzzAppendEventMatches hold it to appendEvent's bytes.
func appendResultEvent(dst []byte, id json.RawMessage, t *Tool, resp *Response) ([]byte, bool) {
	if !plainID(id) {
		return dst, false
	}
	body, isError := bytes.TrimSpace(resp.Body), resp.Status >= 400
	var structured []byte
	if structuredBody(t, body, isError) {
		structured = body
	}
	dst = appendHead(dst, id)
	dst = append(dst, `"_meta":{`...)
	if ra, ok := retryAfter(resp); ok { // "hostplane/retry_after" sorts before "hostplane/status"
		dst = append(dst, `"`+metaRetryAfter+`":`...)
		dst = strconv.AppendInt(dst, int64(ra), 10)
		dst = append(dst, ',')
	}
	dst = append(dst, `"`+metaStatus+`":`...)
	dst = strconv.AppendInt(dst, int64(resp.Status), 10)
	dst = append(dst, "},"...)
	return appendTail(dst, body, structured, isError), true
}

// appendHead starts the event answering id, up to the result's first member.
func appendHead(dst []byte, id json.RawMessage) []byte {
	dst = append(dst, eventHead...)
	dst = append(dst, `{"jsonrpc":"2.0","id":`...)
	dst = append(dst, id...)
	return append(dst, `,"result":{`...)
}

// appendTail ends the event: the text content, the structured content (raw
// valid JSON, nil without) and isError.
func appendTail[S string | []byte](dst []byte, text S, structured []byte, isError bool) []byte {
	dst = append(dst, `"content":[{"type":"text","text":`...)
	dst = appendJSONString(dst, text)
	dst = append(dst, "}]"...)
	if structured != nil {
		dst = append(dst, `,"structuredContent":`...)
		dst = appendCompactHTML(dst, structured)
	}
	if isError {
		dst = append(dst, `,"isError":true`...)
	}
	dst = append(dst, "}}"...)
	return append(dst, eventTail...)
}

// plainID: an id the fast path answers, which encodes as itself: an
// integer of at most 15 digits without leading zeros (0|-?[1-9][0-9]{0,14})
// or a string of at most 64 of [A-Za-z0-9._:-].
func plainID(id []byte) bool {
	if len(id) >= 2 && id[0] == '"' && id[len(id)-1] == '"' {
		return len(id) <= 66 && allIn(id[1:len(id)-1], idBytes)
	}
	if string(id) == "0" {
		return true
	}
	if len(id) > 0 && id[0] == '-' {
		id = id[1:]
	}
	return len(id) > 0 && len(id) <= 15 && id[0] != '0' && allIn(id, digitBytes)
}

// plainKey: a key of letters, digits and _/.:- that needs no escaping.
func plainKey(k string) bool {
	return k != "" && allIn(k, keyBytes)
}

const hexDigits = "0123456789abcdef"

// appendJSONString is encoding/json's string encoding with HTML escaping
// (json.Marshal's): \" \\ \b \f \n \r \t, other controls and < > & as
// \u00XX, U+2028 and U+2029 escaped, invalid UTF-8 as \ufffd.
func appendJSONString[S string | []byte](dst []byte, s S) []byte {
	return plainjson.AppendJSONString(dst, s)
}

// appendCompactHTML is encoding/json's encoding of valid JSON src as a
// json.RawMessage (json.Compact with HTML escaping): whitespace between
// tokens dropped, < > & and U+2028/U+2029 escaped.
func appendCompactHTML(dst, src []byte) []byte {
	start, i := 0, 0
	for i < len(src) {
		// Outside strings: copy up to whitespace (dropped) or a string's start.
		for i < len(src) && !compactStop[src[i]] {
			i++
		}
		if i >= len(src) {
			break
		}
		if c := src[i]; c != '"' {
			dst = append(dst, src[start:i]...)
			i++
			start = i
			continue
		}
		// Inside a string: copy up to its end, an escape, < > & or a byte
		// that may start U+2028/U+2029.
		for i++; i < len(src); {
			for i < len(src) && !stringStop[src[i]] {
				i++
			}
			if i >= len(src) {
				break
			}
			c := src[i]
			if c == '"' {
				i++
				break
			}
			switch {
			case c == '\\':
				i += 2 // the escaped byte is ASCII: never one to escape
				continue
			case c == '<' || c == '>' || c == '&':
				dst = append(dst, src[start:i]...)
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
				start = i + 1
			case i+2 < len(src) && src[i+1] == 0x80 && src[i+2]&^1 == 0xA8: // c == 0xE2
				dst = append(dst, src[start:i]...)
				dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[src[i+2]&0xF])
				i += 2
				start = i + 1
			}
			i++
		}
	}
	return append(dst, src[start:]...)
}

// compactStop and stringStop are the bytes appendCompactHTML stops at,
// outside strings (whitespace, ") and inside them (" \ < > & 0xE2); it
// skips runs of others one table look-up a byte.
var compactStop, stringStop = func() (out, in [256]bool) {
	for _, c := range []byte{' ', '\t', '\n', '\r', '"'} {
		out[c] = true
	}
	for _, c := range []byte{'"', '\\', '<', '>', '&', 0xE2} {
		in[c] = true
	}
	return out, in
}()

// eventBufs recycles the fast path's answer buffers (net/http copies what
// Write is given before it returns).
var eventBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// maxPooledBuf: bigger buffers are left to the garbage collector.
const maxPooledBuf = 64 << 10
