package server

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// The coordinator's logger writes a customer's request path (httpapi's
// "forward to leader failed") with its C1 and bidi controls escaped, in JSON
// (the default) as in text; a JSON line decodes to the exact path, so a
// path with U+202E and one with the typed characters `\u202e` read apart.
func TestNewLoggerEscapesControlsInCustomerText(t *testing.T) {
	const path = "/v1/x\u0085\u202eexe.txt"
	for _, format := range []string{"json", "text"} {
		var buf bytes.Buffer
		NewLogger(Config{LogFormat: format, LogLevel: "info"}, &buf).Warn("forward to leader failed", "path", path)
		out := buf.String()
		if strings.ContainsAny(out, "\u0085\u202e") || !strings.Contains(out, `\u0085`) || !strings.Contains(out, `\u202e`) {
			t.Errorf("format %s: want U+0085 and U+202E escaped, not raw:\n%q", format, out)
		}
	}
	for _, p := range []string{path, `/v1/x\u0085\u202eexe.txt`} {
		var buf bytes.Buffer
		NewLogger(Config{LogFormat: "json", LogLevel: "info"}, &buf).Warn("forward to leader failed", "path", p)
		var line struct{ Path string }
		if err := json.Unmarshal(buf.Bytes(), &line); err != nil || line.Path != p {
			t.Errorf("json line %s decodes to %q (%v), want %q", buf.Bytes(), line.Path, err, p)
		}
	}
}
