package logsetup

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"unicode"

	"github.com/hostplane/hostplane/internal/tabletest"
)

// hostile is a request path as a customer can send it: C1 controls (NEL,
// CSI) and bidi controls that, raw, reorder or hide what follows them on a
// terminal.
const hostile = "/v1/servers/\u0085a\u009bb\u202ec\u202ad\u2066e\u2069f\u200eg\u200fh\u061ci"

var escapes = []string{`\u0085`, `\u009b`, `\u202e`, `\u202a`, `\u2066`, `\u2069`, `\u200e`, `\u200f`, `\u061c`}

// raw reports the first C1 control, bidi control or line or paragraph
// separator in out, if any (by Unicode's tables, not by escaped).
func raw(out string) (rune, bool) {
	for _, r := range out {
		if r >= 0x80 && r <= 0x9f || unicode.Is(unicode.Bidi_Control, r) || r == '\u2028' || r == '\u2029' {
			return r, true
		}
	}
	return 0, false
}

// checkInert asserts out holds none of hostile's controls raw, and each as
// its escape, in the request path and in the error's text.
func checkInert(t *testing.T, out string) {
	t.Helper()
	if r, ok := raw(out); ok {
		t.Errorf("log line holds %U raw:\n%q", r, out)
	}
	for _, e := range escapes {
		if strings.Count(out, e) < 2 {
			t.Errorf("log line lacks %s in the path and in the error:\n%s", e, out)
		}
	}
}

func TestNewEscapesC1AndBidiControls(t *testing.T) {
	for _, format := range []string{"json", "text", ""} {
		t.Run("format="+format, func(t *testing.T) {
			var buf bytes.Buffer
			log := New(format, "info", "hostplane-test", &buf)
			log.With("node", "n1").WithGroup("req").Warn("forward to leader failed",
				"err", errors.New("proxy "+hostile+": EOF"), "path", hostile, "plain", "ascii-only é")
			out := buf.String()
			checkInert(t, out)
			if !strings.Contains(out, "ascii-only é") {
				t.Errorf("text without a control changed:\n%s", out)
			}
		})
	}
}

func TestInertWrapsAHandlerWithoutReplaceAttr(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(inert{slog.NewJSONHandler(&buf, nil)})
	log.With("pre", hostile).WithGroup("g").Warn("m\u202e",
		slog.Group("req", "err", errors.New(hostile), "path", hostile))
	out := buf.String()
	checkInert(t, out)
	if !strings.Contains(out, `"msg":"m\\u202e"`) {
		t.Errorf("message not escaped:\n%s", out)
	}
}

func TestEscape(t *testing.T) {
	cases := map[string]string{
		"":                         "",
		"/v1/servers/abc":          "/v1/servers/abc",
		"héllo ✓":                  "héllo ✓",
		"a\u202eb":                 `a\u202eb`,
		`a\u202eb`:                 `a\\u202eb`,
		`C:\x`:                     `C:\\x`,
		"é\\":                      `é\\`,
		"\u0080\u009f\u00a0":       `\u0080\u009f` + "\u00a0",
		"\u202a\u202e\u202f":       `\u202a\u202e` + "\u202f",
		"\u2065\u2066\u2069\u206a": "\u2065" + `\u2066\u2069` + "\u206a",
		"\u2027\u2028\u2029\u202a": "\u2027" + `\u2028\u2029\u202a`,
	}
	tabletest.Equal(t, "escape", escape, cases)
	for in := range cases {
		if got := unescape(t, escape(in)); got != in {
			t.Errorf("unescape(escape(%q)) = %q", in, got)
		}
	}
}

// BenchmarkJSON: a log line of four attributes through slog's JSON handler
// as is, and through New's (the same handler writing through jsonEscaper);
// an ASCII path (the escaper's fast path) and a hostile one.
func BenchmarkJSON(b *testing.B) {
	for _, c := range []struct{ name, path string }{{"ascii", "/v1/servers/srv_01JABCDEFGHJKMNPQRSTVWXYZ"}, {"bidi", hostile}} {
		for _, h := range []struct {
			name string
			new  func(w io.Writer) *slog.Logger
		}{
			{"slog", func(w io.Writer) *slog.Logger { return slog.New(slog.NewJSONHandler(w, nil)) }},
			{"New", func(w io.Writer) *slog.Logger { return New("json", "info", "", w) }},
		} {
			b.Run(c.name+"/"+h.name, func(b *testing.B) {
				var buf bytes.Buffer
				log := h.new(&buf)
				b.ReportAllocs()
				for b.Loop() {
					buf.Reset()
					log.Info("order placed", "request_id", "req_01JABCDEFG", "path", c.path, "account_id", "acc_01JABCDEFG", "status", 201)
				}
			})
		}
	}
}

// BenchmarkOrderLine is the one line an order logs ("server ordered",
// httpapi orders.go) through each format New makes and through slog's own
// handlers, formatted into a buffer (the write(2) to the daemon's stdout
// is the same for all): what the text format's ReplaceAttr adds.
func BenchmarkOrderLine(b *testing.B) {
	for _, h := range []struct {
		name string
		new  func(w io.Writer) *slog.Logger
	}{
		{"text/slog", func(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }},
		{"text/New", func(w io.Writer) *slog.Logger { return New("text", "info", "", w) }},
		{"json/slog", func(w io.Writer) *slog.Logger { return slog.New(slog.NewJSONHandler(w, nil)) }},
		{"json/New", func(w io.Writer) *slog.Logger { return New("json", "info", "", w) }},
	} {
		b.Run(h.name, func(b *testing.B) {
			var buf bytes.Buffer
			log := h.new(&buf)
			b.ReportAllocs()
			for b.Loop() {
				buf.Reset()
				log.Info("server ordered", "server", "srv_01kt3j5v0x9q8m2a7b6c5d4e3f", "account", "acc_01kt3j5v0x9q8m2a7b6c5d4e3f",
					"plan", "vps-small", "invoice", "INV-2026-000123", "amount_usd_cents", int64(500), "action", "act_01kt3j5v0x9q8m2a7b6c5d4e3f")
			}
		})
	}
}
