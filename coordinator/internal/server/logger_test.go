package server

import (
	"bytes"
	"strings"
	"testing"
)

// The coordinator's logger writes a customer's request path (httpapi's
// "forward to leader failed") with its C1 and bidi controls escaped, in JSON
// (the default) as in text.
func TestNewLoggerEscapesControlsInCustomerText(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		var buf bytes.Buffer
		NewLogger(Config{LogFormat: format, LogLevel: "info"}, &buf).Warn("forward to leader failed", "path", "/v1/x\u0085\u202eexe.txt")
		out := buf.String()
		if strings.ContainsAny(out, "\u0085\u202e") || !strings.Contains(out, `\u0085`) || !strings.Contains(out, `\u202e`) {
			t.Errorf("format %s: want U+0085 and U+202E escaped, not raw:\n%q", format, out)
		}
	}
}
