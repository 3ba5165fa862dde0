package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hostplane/hostplane/internal/jsonmembers"
	"github.com/hostplane/hostplane/pkg/api"
)

// MaxBodyBytes is the request body limit (SPEC: 1 MiB, 413 beyond).
const MaxBodyBytes = 1 << 20

// readBody reads the whole JSON body within the limit.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := readBodyAny(w, r)
	if err != nil {
		return nil, err
	}
	if len(body) > 0 && !jsonContentType(r.Header.Get("Content-Type")) {
		return nil, errf(http.StatusUnsupportedMediaType, "unsupported_media_type", "request body must be JSON: send Content-Type: application/json (or none), not %q", r.Header.Get("Content-Type"))
	}
	if ce := r.Header.Values("Content-Encoding"); len(body) > 0 && !identityCoding(ce) {
		// Not decoded here: read as it is, a gzip body was a 400 about
		// its bytes and a plain one labelled gzip was taken. RFC 7694:
		// the 415 says which codings are taken.
		w.Header().Set("Accept-Encoding", "identity")
		return nil, errf(http.StatusUnsupportedMediaType, "unsupported_media_type", "request body must not be compressed: Content-Encoding %q is not supported; send the JSON as it is", strings.Join(ce, ", "))
	}
	return body, nil
}

// identityCoding reports whether the Content-Encoding header values vs name
// no coding but identity (none at all included).
func identityCoding(vs []string) bool {
	for _, v := range vs {
		for c := range strings.SplitSeq(v, ",") {
			if c = strings.TrimSpace(c); c != "" && !strings.EqualFold(c, "identity") {
				return false
			}
		}
	}
	return true
}

// readBodyAny reads the whole body of any type within the limit (the forwarder
// leaves the type to the leader).
func readBodyAny(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, status, err := readLimited(w, r, MaxBodyBytes)
	switch status {
	case 0:
		return body, nil
	case http.StatusRequestEntityTooLarge:
		return nil, errf(status, "body_too_large", "request body is larger than %d bytes", MaxBodyBytes)
	case http.StatusRequestTimeout:
		return nil, errf(status, "body_timeout", "the request body did not arrive in time")
	}
	return nil, badRequest("could not read request body: %v", err)
}

// readLimited reads r's whole body within limit bytes. A body it cannot read
// returns the status that answers it: 413 over the limit, 408 for a body that
// stalled past its deadline (with Connection: close set on w, as the rest of
// the body is unread and the connection cannot be reused), 400 otherwise.
// Each caller words the error in its own format (readBodyAny, the OAuth
// endpoints).
func readLimited(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, int, error) {
	// The first buffer fits the announced length and a spare byte that finds
	// the end without growing, up to presizeMax: an announced length is not
	// trusted with more memory than that before the bytes arrive (a client
	// announcing 1 MiB and stalling would otherwise hold 1 MiB per connection).
	if r.ContentLength > limit {
		// Announced over the limit: answered at once, not after waiting
		// for bytes that would be refused anyway (or for the body read
		// timeout, when the client sends none). The unread body leaves the
		// connection unusable: it is closed.
		w.Header().Set("Connection", "close")
		return nil, http.StatusRequestEntityTooLarge, &http.MaxBytesError{Limit: limit}
	}
	size := int64(512) // io.ReadAll's first buffer
	if r.ContentLength > 0 {
		size = min(r.ContentLength+1, presizeMax, limit+1)
	}
	body, err := readAll(http.MaxBytesReader(w, r.Body, limit), size)
	if err == nil {
		return body, 0, nil
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, http.StatusRequestEntityTooLarge, err
	case isTimeout(err):
		w.Header().Set("Connection", "close")
		return nil, http.StatusRequestTimeout, err
	}
	return nil, http.StatusBadRequest, err
}

// presizeMax caps readLimited's first buffer.
const presizeMax = 32 << 10

// readAll is io.ReadAll starting with a buffer of size bytes.
func readAll(rd io.Reader, size int64) ([]byte, error) {
	b := make([]byte, 0, size)
	for {
		n, err := rd.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}

// ReadRequestBody reads r's whole body as every /v1 route does, for the
// handlers mounted beside /v1 (/mcp): up to MaxBodyBytes; a body it cannot
// read is the same error /v1 answers (413 over the limit, 408 with
// Connection: close when it stalls past the listener's body deadline, 400
// otherwise).
func ReadRequestBody(w http.ResponseWriter, r *http.Request) ([]byte, *api.Error) {
	body, err := readBodyAny(w, r)
	if err != nil {
		ae, _ := toAPIError(err)
		return nil, ae
	}
	return body, nil
}

// jsonContentType accepts no Content-Type (a body is JSON by default) and
// application/json or any application/*+json, with parameters (charset=utf-8).
func jsonContentType(ct string) bool {
	if strings.TrimSpace(ct) == "" {
		return true
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return false
	}
	return mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")
}

// decodeStrict decodes one JSON object into v: unknown fields, wrong types, trailing
// data, an empty body and a body that is not an object (null included) are 400s
// naming the field.
func decodeStrict(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("request body is required (a JSON object)")
	}
	if string(bytes.TrimSpace(body)) == "null" {
		// encoding/json decodes a top-level null into a struct as nothing at
		// all: a PATCH of null answered "nothing to change" and a POST named
		// its first missing field, where [] and "x" say what is wrong.
		return badRequest("request body must be a JSON object, not null")
	}
	if !utf8.Valid(body) {
		// encoding/json would replace the bytes with U+FFFD and store that.
		if path := invalidUTF8Path(body); path != "" {
			return &httpError{status: http.StatusBadRequest, code: "invalid_field", msg: "field " + strconv.Quote(path) + " is not valid UTF-8"}
		}
		return badRequest("request body is not valid UTF-8")
	}
	if at := unpairedSurrogate(body); at >= 0 {
		esc := string(body[at:min(int(at)+6, len(body))])
		if path := jsonPathAt(body, at); path != "" {
			return &httpError{status: http.StatusBadRequest, code: "invalid_field", msg: "field " + strconv.Quote(path) + " is not valid Unicode: " + esc + " is half of a UTF-16 surrogate pair"}
		}
		return badRequest("request body is not valid Unicode: %s is half of a UTF-16 surrogate pair", esc)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		// A member named in another case or given twice is refused as such
		// (unknown_field, duplicate_field, as README says) also when its
		// value has the wrong type: encoding/json matched {"Subject": 1} to
		// subject and refused the number, which named "subject", a member
		// the client did not send (probe58). Only for a body that parses:
		// a malformed one is the decoder's to name.
		var se *json.SyntaxError
		if !errors.As(err, &se) && !errors.Is(err, io.ErrUnexpectedEOF) {
			if merr := memberError(jsonmembers.Check(body, reflect.TypeOf(v))); merr != nil {
				return merr
			}
		}
		return jsonError(body, reflect.TypeOf(v), err)
	}
	if dec.More() {
		return badRequest("request body has data after the JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("request body has data after the JSON object")
	}
	return memberError(jsonmembers.Check(body, reflect.TypeOf(v)))
}

// memberError words jsonmembers' refusal of a member name (nil stays nil): a
// name given twice, or one that names a field only when case is ignored,
// which encoding/json would take (the last of two; "SUBJECT" as "subject").
func memberError(err error) error {
	var de *jsonmembers.DuplicateError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &de):
		return &httpError{status: http.StatusBadRequest, code: "duplicate_field", msg: err.Error()}
	case errors.As(err, new(*jsonmembers.DepthError)):
		return badRequest("%s", err.Error())
	}
	return &httpError{status: http.StatusBadRequest, code: "unknown_field", msg: err.Error()}
}

// decodeChecked decodes body strictly into a new T and runs check on it,
// which may fill defaults as it goes: every Decode function of a request body
// is one. The request comes back as far as it got, with check's refusal.
func decodeChecked[T any](body []byte, check func(req *T) error) (T, error) {
	var req T
	if err := decodeStrict(body, &req); err != nil {
		return req, err
	}
	err := check(&req)
	return req, err
}

// firstErr is the first error of errs that is not nil: independent checks of
// one request, refused in the order they are listed.
func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func jsonError(body []byte, t reflect.Type, err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	var pe *time.ParseError
	switch {
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			return badRequest("request body must be a JSON object, not %s", te.Value)
		}
		return &httpError{status: http.StatusBadRequest, code: "invalid_field", msg: "field " + strconv.Quote(field) + " must be " + jsonKind(te.Type.Kind().String()) + ", not " + te.Value}
	case errors.As(err, &se):
		return badRequest("malformed JSON at byte %d: %v", se.Offset, se)
	case errors.As(err, &pe), strings.HasPrefix(err.Error(), "Time.UnmarshalJSON: "):
		// time.Time's UnmarshalJSON says nothing of where: find the value.
		msg := "must be a date and time as in RFC 3339, such as 2030-01-02T15:04:05Z"
		if pe != nil {
			msg += ", not " + strconv.Quote(shorten(pe.Value))
		}
		if field := badTimePath(body, t, err); field != "" {
			return &httpError{status: http.StatusBadRequest, code: "invalid_field", msg: "field " + strconv.Quote(field) + " " + msg}
		}
		return badRequest("a time in the request body %s", msg)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.TrimPrefix(err.Error(), "json: unknown field ")
		return &httpError{status: http.StatusBadRequest, code: "unknown_field", msg: "unknown field " + name}
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return badRequest("malformed JSON: unexpected end of body")
	}
	return badRequest("malformed JSON: %v", err)
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	case "map", "struct", "ptr":
		return "an object"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		// A number was sent, but not a whole one in the field's range.
		return "an integer (a whole number within its range)"
	}
	return "a number"
}

// text validates a user string: valid UTF-8, no control characters except \n \r \t,
// length in runes within [min, max]; a required one (min ≥ 1) must hold more
// than white space.
func text(field, s string, min, max int) error {
	if !utf8.ValidString(s) {
		return &httpError{status: 400, code: "invalid_field", msg: "field " + strconv.Quote(field) + " is not valid UTF-8"}
	}
	n := utf8.RuneCountInString(s)
	if min >= 1 && strings.TrimSpace(s) == "" {
		// Only spaces (or tabs, newlines) is as good as missing.
		return &httpError{status: 400, code: "invalid_field", msg: "field " + strconv.Quote(field) + " is required"}
	}
	if n < min {
		if min == 1 {
			return &httpError{status: 400, code: "invalid_field", msg: "field " + strconv.Quote(field) + " is required"}
		}
		return &httpError{status: 400, code: "invalid_field", msg: "field " + strconv.Quote(field) + " must be at least " + strconv.Itoa(min) + " characters"}
	}
	if n > max {
		return &httpError{status: 400, code: "invalid_field", msg: "field " + strconv.Quote(field) + " must be at most " + strconv.Itoa(max) + " characters"}
	}
	for _, r := range s {
		if r < 0x20 && r != '\n' && r != '\r' && r != '\t' || r == 0x7f {
			return &httpError{status: 400, code: "invalid_field", msg: "field " + strconv.Quote(field) + " contains a control character"}
		}
	}
	return nil
}

func oneOf(field, v string, allowed []string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return &httpError{status: 400, code: "invalid_field", msg: "field " + strconv.Quote(field) + " must be one of " + strings.Join(allowed, ", ")}
}

// paging parses ?page= and ?limit= (1..200, default 50).
func paging(r *http.Request) (page, limit int, err error) {
	q := r.URL.Query()
	page = 1
	if limit, err = queryLimit(q); err != nil {
		return 0, 0, err
	}
	if s := q.Get("page"); s != "" {
		n, e := strconv.Atoi(s)
		if e != nil || n < 1 || n > 1_000_000 {
			return 0, 0, &httpError{status: 400, code: "invalid_query", msg: "query parameter \"page\" must be an integer from 1 to 1000000"}
		}
		page = n
	}
	return page, limit, nil
}

// queryLimit parses a list's ?limit= (1..200, default 50).
func queryLimit(q url.Values) (int, error) {
	s := q.Get("limit")
	if s == "" {
		return 50, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 200 {
		return 0, &httpError{status: 400, code: "invalid_query", msg: "query parameter \"limit\" must be an integer from 1 to 200"}
	}
	return n, nil
}

// invalidUTF8Path names the JSON value (or key) holding body's first invalid
// UTF-8 byte as a path such as lines[2].description; "" when the bytes lie
// outside any value or the JSON is malformed before them.
func invalidUTF8Path(body []byte) string {
	for i := 0; i < len(body); {
		r, n := utf8.DecodeRune(body[i:])
		if r == utf8.RuneError && n <= 1 {
			return jsonPathAt(body, int64(i))
		}
		i += n
	}
	return ""
}

// unpairedSurrogate is the offset of body's first \u escape of half a
// UTF-16 surrogate pair (a high one not followed by a low one, or a low one
// alone) inside a JSON string, or -1. encoding/json decodes such an escape as
// U+FFFD: the text stored would not be the text sent. Outside strings, or in
// malformed JSON, it may name an offset the decoder refuses anyway.
func unpairedSurrogate(body []byte) int64 {
	if !bytes.Contains(body, []byte(`\u`)) {
		return -1
	}
	hex4 := func(i int) rune {
		if i+4 > len(body) {
			return -1
		}
		v, err := strconv.ParseUint(string(body[i:i+4]), 16, 16)
		if err != nil {
			return -1
		}
		return rune(v)
	}
	inString := false
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case !inString:
			inString = c == '"'
		case c == '"':
			inString = false
		case c == '\\' && i+1 < len(body) && body[i+1] == 'u':
			switch v := hex4(i + 2); {
			case v >= 0xD800 && v < 0xDC00:
				if i+7 < len(body) && body[i+6] == '\\' && body[i+7] == 'u' {
					if w := hex4(i + 8); w >= 0xDC00 && w <= 0xDFFF {
						i += 11
						continue
					}
				}
				return int64(i)
			case v >= 0xDC00 && v <= 0xDFFF:
				return int64(i)
			}
			i++ // past the u; the hex digits are plain bytes
		case c == '\\':
			i++ // past the escaped byte (\" or \\ included)
		}
	}
	return -1
}

// jsonPathAt names the JSON value (or key) holding body's byte at bad as a
// path such as lines[2].description; "" when it lies outside any value or the
// JSON is malformed before it.
func jsonPathAt(body []byte, bad int64) string {
	return jsonPathWhere(body, func(_ json.Token, _ bool, end int64, _ string) bool { return end > bad })
}

// badTimePath names the value of body that time.Time refused (err): the first
// scalar value of a member named as one of t's time fields, equal to the
// refused text when that is known; "" if none.
func badTimePath(body []byte, t reflect.Type, err error) string {
	names := map[string]bool{}
	timeFieldNames(t, names, 0)
	var pe *time.ParseError
	isParse := errors.As(err, &pe)
	return jsonPathWhere(body, func(tok json.Token, key bool, end int64, name string) bool {
		if key || !names[name] || tok == nil {
			return false
		}
		s, isString := tok.(string)
		if isParse {
			// time.Time's UnmarshalJSON parses the string as written,
			// its escapes (\u0000, \") not undone: compare both forms.
			raw := `"` + pe.Value + `"`
			return isString && (s == pe.Value || end >= int64(len(raw)) && string(body[end-int64(len(raw)):end]) == raw)
		}
		return !isString
	})
}

// timeFieldNames adds the JSON names of t's time.Time fields, nested structs,
// slices and pointers included, to names.
func timeFieldNames(t reflect.Type, names map[string]bool, depth int) {
	for t != nil && (t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map) {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct || depth > 8 {
		return
	}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft == reflect.TypeFor[time.Time]() {
			names[name] = true
			continue
		}
		timeFieldNames(f.Type, names, depth+1)
	}
}

// jsonPathWhere walks body's tokens and names the first key or scalar value
// for which found (given the token, whether it is a key, the offset just past
// it and the name of the member it is the value of, "" in an array) is true,
// as a path such as lines[2].description; "" when none is, or the JSON is
// malformed before one.
func jsonPathWhere(body []byte, found func(tok json.Token, key bool, end int64, name string) bool) string {
	type frame struct {
		obj       bool
		expectKey bool
		key       string
		idx       int
	}
	var stack []*frame
	path := func() string {
		var b strings.Builder
		for _, f := range stack {
			if f.obj {
				if b.Len() > 0 {
					b.WriteByte('.')
				}
				b.WriteString(f.key)
			} else {
				b.WriteString("[" + strconv.Itoa(f.idx) + "]")
			}
		}
		if b.Len() == 0 {
			return "(body)"
		}
		return b.String()
	}
	done := func() { // the value at the top of the stack is complete
		if len(stack) == 0 {
			return
		}
		if f := stack[len(stack)-1]; f.obj {
			f.expectKey = true
		} else {
			f.idx++
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		end := dec.InputOffset()
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if s, ok := tok.(string); ok && top != nil && top.obj && top.expectKey {
			top.key, top.expectKey = s, false
			if found(tok, true, end, "") {
				return path() // the key itself
			}
			continue
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			stack = append(stack, &frame{obj: tok == json.Delim('{'), expectKey: true})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			done()
			continue
		}
		name := ""
		if top != nil && top.obj {
			name = top.key
		}
		if found(tok, false, end, name) {
			return path()
		}
		done()
	}
}
