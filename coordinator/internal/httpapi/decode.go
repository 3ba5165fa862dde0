package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxBodyBytes is the request body limit (SPEC: 1 MiB, 413 beyond).
const MaxBodyBytes = 1 << 20

// readBody reads the whole body within the limit.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errf(http.StatusRequestEntityTooLarge, "body_too_large", "request body is larger than %d bytes", MaxBodyBytes)
		}
		if isTimeout(err) {
			// The body stalled past its deadline: the connection cannot be
			// reused (part of the body is still unread).
			w.Header().Set("Connection", "close")
			return nil, errf(http.StatusRequestTimeout, "body_timeout", "the request body did not arrive in time")
		}
		return nil, badRequest("could not read request body: %v", err)
	}
	return body, nil
}

// decodeStrict decodes one JSON object into v: unknown fields, wrong types, trailing
// data and an empty body are 400s naming the field.
func decodeStrict(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("request body is required (a JSON object)")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return badRequest("request body has data after the JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("request body has data after the JSON object")
	}
	return nil
}

func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			return badRequest("request body must be a JSON object, not %s", te.Value)
		}
		return &httpError{status: http.StatusBadRequest, code: "invalid_field", msg: "field " + strconv.Quote(field) + " must be " + jsonKind(te.Type.Kind().String()) + ", not " + te.Value}
	case errors.As(err, &se):
		return badRequest("malformed JSON at byte %d: %v", se.Offset, se)
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
	}
	return "a number"
}

// text validates a user string: valid UTF-8, no control characters except \n \r \t,
// length in runes within [min, max].
func text(field, s string, min, max int) error {
	if !utf8.ValidString(s) {
		return &httpError{status: 400, code: "invalid_field", msg: "field " + strconv.Quote(field) + " is not valid UTF-8"}
	}
	n := utf8.RuneCountInString(s)
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
	page, limit = 1, 50
	q := r.URL.Query()
	if s := q.Get("limit"); s != "" {
		n, e := strconv.Atoi(s)
		if e != nil || n < 1 || n > 200 {
			return 0, 0, &httpError{status: 400, code: "invalid_query", msg: "query parameter \"limit\" must be an integer from 1 to 200"}
		}
		limit = n
	}
	if s := q.Get("page"); s != "" {
		n, e := strconv.Atoi(s)
		if e != nil || n < 1 || n > 1_000_000 {
			return 0, 0, &httpError{status: 400, code: "invalid_query", msg: "query parameter \"page\" must be a positive integer"}
		}
		page = n
	}
	return page, limit, nil
}
