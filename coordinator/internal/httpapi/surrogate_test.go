package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestUnpairedSurrogatesRefused: a JSON string escape of half a UTF-16
// surrogate pair is a 400 naming the field. encoding/json decodes it as
// U+FFFD, so before, POST /v1/tickets {"subject":"\ud800"} (found with curl on
// make run) stored a ticket whose subject was "\ufffd": the text kept was not
// the text sent, which invalid UTF-8 bytes were already refused for.
func TestUnpairedSurrogatesRefused(t *testing.T) {
	for body, path := range map[string]string{
		`{"subject":"\ud800","message":"b"}`:           "subject",
		`{"subject":"a\udc00","message":"b"}`:          "subject",
		`{"subject":"ok","message":"x\ud83d"}`:         "message",
		`{"subject":"\ud800\u0041","message":"b"}`:     "subject",
		`{"subject":"\ud800\ud800","message":"b"}`:     "subject",
		`{"subject":"\\\ud800","message":"b"}`:         "subject",
		`{"subject":"a","message":"b","x":["\uDFFF"]}`: "x[0]",
	} {
		_, err := DecodeTicketCreate([]byte(body))
		var he *httpError
		if !errors.As(err, &he) || he.status != 400 || !strings.Contains(he.msg, `field "`+path+`" is not valid Unicode`) {
			t.Errorf("%s: %v, want a 400 naming field %q", body, err, path)
		}
	}
	for body, subject := range map[string]string{
		`{"subject":"\ud83d\ude00","message":"b"}`:     "😀",
		`{"subject":"\uD83D\uDE00","message":"b"}`:     "😀",
		`{"subject":"\\ud800","message":"b"}`:          `\ud800`,
		`{"subject":"\"\\\ud83d\ude00","message":"b"}`: `"\😀`,
		`{"subject":"\ufffd","message":"b"}`:           "\ufffd",
		`{"subject":"é\u00e9","message":"b"}`:          "éé",
	} {
		req, err := DecodeTicketCreate([]byte(body))
		if err != nil || req.Subject != subject {
			t.Errorf("%s: %q %v, want subject %q", body, req.Subject, err, subject)
		}
	}
}

// FuzzUnpairedSurrogates: whatever decodeStrict accepts holds U+FFFD only
// where the body wrote one (the bytes, or a \ufffd escape): no escape is
// silently replaced.
func FuzzUnpairedSurrogates(f *testing.F) {
	for _, s := range []string{`{"a":"\ud800"}`, `{"a":"\ud83d\ude00"}`, `{"a":"\\ud800"}`, `["\udc00"]`, `{"\ud800":1}`, `"\ud800\"`, `{"a":"\ufffd"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var v any
		if err := decodeStrict(body, &v); err != nil {
			mustBeClientError(t, err)
			return
		}
		out, _ := json.Marshal(v)
		if bytes.Contains(out, []byte("\ufffd")) && !bytes.Contains(body, []byte("\ufffd")) &&
			!bytes.Contains(bytes.ToLower(body), []byte(`\ufffd`)) {
			t.Fatalf("accepted %q as %s: a U+FFFD the body did not write", body, out)
		}
	})
}
