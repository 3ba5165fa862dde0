package logsetup

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// customer is text a customer (or a registry, or a peer) can put in what
// the daemons log: the control characters and, typed, their escapes.
var customer = []string{
	"plain",
	"a\u202eb",                     // U+202E RIGHT-TO-LEFT OVERRIDE
	`a\u202eb`,                     // the six characters a customer can type instead
	`C:\dir\file`,                  // backslashes, no space: slog writes it unquoted
	`\\`,                           // two typed backslashes
	"x \\u202e \u202e",             // both, with a space: slog quotes it
	"\u0085\u009b2J\u009b31m",      // C1: NEL, CSI
	"é\u2066ü\u2069\u200e\u061c",   // isolates, marks
	"quote\" eq= tab\t nl\n\u2028", // what slog escapes itself
}

// record is a struct, a slice and a map holding customer text, logged with
// slog.Any.
type record struct {
	Reason string
	Tags   []string
	Fields map[string]string
}

// valuer is a LogValuer whose value is customer text.
type valuer string

func (v valuer) LogValue() slog.Value { return slog.StringValue(string(v)) }

// logAll logs s through log in every kind a log call site passes
// customer text in: the message, a string, an error, a struct (slog.Any),
// a slice, a LogValuer, and a group.
func logAll(log *slog.Logger, s string) {
	log.Warn(s,
		"s", s,
		"err", fmt.Errorf("registry: %w", errors.New(s)),
		slog.Any("rec", record{Reason: s, Tags: []string{s, "x"}, Fields: map[string]string{"k": s}}),
		slog.Any("list", []string{s}),
		"lv", valuer(s),
		slog.Group("g", "s", s))
}

// controls fails the test if out holds a C1 or bidi control raw.
func controls(t *testing.T, out string) {
	t.Helper()
	if r, ok := raw(out); ok {
		t.Errorf("log output holds %U raw:\n%s", r, out)
	}
}

// TestJSONLinesDecodeToTheCustomersText: each JSON log line, decoded,
// holds the customer's exact text in the message, a string, an error, a
// struct's fields, a slice, a LogValuer and a group; and the line holds no
// C1 or bidi control raw. A customer who typed `\u202e` and one who sent
// U+202E get different strings back.
func TestJSONLinesDecodeToTheCustomersText(t *testing.T) {
	var buf bytes.Buffer
	log := New("json", "info", "", &buf)
	for _, s := range customer {
		logAll(log, s)
	}
	out := buf.String()
	controls(t, out)
	sc := bufio.NewScanner(&buf)
	for i := 0; sc.Scan(); i++ {
		s := customer[i]
		var l struct {
			Msg, S, Err string
			Rec         record
			List        []string
			Lv          string
			G           struct{ S string }
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %d: %v\n%s", i, err, sc.Bytes())
		}
		got := []string{l.Msg, l.S, strings.TrimPrefix(l.Err, "registry: "), l.Rec.Reason, l.Rec.Tags[0], l.Rec.Fields["k"], l.List[0], l.Lv, l.G.S}
		for j, g := range got {
			if g != s {
				t.Errorf("line %d field %d decodes to %q, want %q:\n%s", i, j, g, s, sc.Bytes())
			}
		}
	}
}

// textValue reads the value of the last attribute of a text log line, key
// k, as a Go string literal, quoted or not.
func textValue(t *testing.T, line, k string) string {
	t.Helper()
	i := strings.LastIndex(line, " "+k+"=")
	if i < 0 {
		t.Fatalf("no %s= in %q", k, line)
	}
	v := line[i+len(k)+2:]
	if !strings.HasPrefix(v, `"`) {
		v = `"` + v + `"`
	}
	s, err := strconv.Unquote(v)
	if err != nil {
		t.Fatalf("%s=%s is not a Go string literal: %v", k, line[i+len(k)+2:], err)
	}
	return s
}

// TestTextReadsAsGoLiterals: in text output every value reads as a Go
// string literal (its quotes left out where slog leaves them out) and gives
// back the customer's text, or for a struct, slice or error its %+v; no C1
// or bidi control is raw; the customer who typed `\u202e` and the one who
// sent U+202E read differently.
func TestTextReadsAsGoLiterals(t *testing.T) {
	for _, s := range customer {
		for _, c := range []struct {
			name string
			v    any
			want string
		}{
			{"string", s, s},
			{"error", errors.New(s), s},
			{"struct", record{Reason: s}, fmt.Sprintf("%+v", record{Reason: s})},
			{"slice", []string{s, "x"}, fmt.Sprintf("%+v", []string{s, "x"})},
			{"valuer", valuer(s), s},
		} {
			var buf bytes.Buffer
			New("text", "info", "", &buf).Warn(s, "v", c.v)
			line := strings.TrimSuffix(buf.String(), "\n")
			controls(t, line)
			if got := textValue(t, line, "v"); got != c.want {
				t.Errorf("%s %q: text line reads back %q, want %q:\n%s", c.name, s, got, c.want, line)
			}
			msg := line[strings.Index(line, " msg=")+5 : strings.LastIndex(line, " v=")]
			if got := textValue(t, " msg="+msg, "msg"); got != s {
				t.Errorf("message %q reads back %q:\n%s", s, got, line)
			}
		}
	}
	var typed, sent bytes.Buffer
	New("text", "info", "", &typed).Info("m", "p", `a\u202eb`)
	New("text", "info", "", &sent).Info("m", "p", "a\u202eb")
	if a, b := typed.String()[strings.Index(typed.String(), " p="):], sent.String()[strings.Index(sent.String(), " p="):]; a == b {
		t.Errorf("typed `\\u202e` and U+202E read the same: %q", a)
	}
}

// TestTextQuotesAsSlogDoes holds textQuotes to slog's text handler: it
// quotes exactly the strings textQuotes says it does.
func TestTextQuotesAsSlogDoes(t *testing.T) {
	cases := append([]string{"", " ", "=", `"`, `\`, "a\x00", "\x7f", "\u00a0", "\u3000", "é", "✓", "\xff", "a\u0301"}, customer...)
	for r := rune(0); r < 0x3000; r += 7 {
		cases = append(cases, "x"+string(r))
	}
	for _, s := range cases {
		var buf bytes.Buffer
		slog.New(slog.NewTextHandler(&buf, nil)).Info("m", "v", s)
		out := buf.String()
		quoted := strings.HasPrefix(out[strings.LastIndex(out, " v=")+3:], `"`)
		if quoted != textQuotes(s) {
			t.Errorf("%q: slog quotes it: %t; textQuotes says %t", s, quoted, textQuotes(s))
		}
	}
}

// fields is a handler that, as the journal's, takes no ReplaceAttr and
// keeps each value as fmt.Sprint writes it, by its dotted key.
type fields struct {
	prefix string
	got    map[string]string
}

func (f fields) Enabled(context.Context, slog.Level) bool { return true }
func (f fields) Handle(_ context.Context, r slog.Record) error {
	f.got["MESSAGE"] = r.Message
	r.Attrs(func(a slog.Attr) bool { f.add(f.prefix, a); return true })
	return nil
}
func (f fields) add(prefix string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Value.Kind() == slog.KindGroup {
		for _, m := range a.Value.Group() {
			f.add(prefix+a.Key+".", m)
		}
		return
	}
	f.got[prefix+a.Key] = fmt.Sprint(a.Value.Any())
}
func (f fields) WithAttrs(as []slog.Attr) slog.Handler {
	for _, a := range as {
		f.add(f.prefix, a)
	}
	return f
}
func (f fields) WithGroup(name string) slog.Handler { f.prefix += name + "."; return f }

// unescape undoes escape: \\ is a backslash, \uXXXX that character.
func unescape(t *testing.T, s string) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case i+1 < len(s) && s[i+1] == '\\':
			b.WriteByte('\\')
			i++
		case i+5 < len(s) && s[i+1] == 'u':
			n, err := strconv.ParseUint(s[i+2:i+6], 16, 32)
			if err != nil {
				t.Fatalf("bad escape in %q", s)
			}
			b.WriteRune(rune(n))
			i += 5
		default:
			t.Fatalf("lone backslash in %q", s)
		}
	}
	return b.String()
}

// TestJournalFieldsUnescapeToTheCustomersText: through inert (the journal
// handler's wrapper) every field, a struct's and a slice's text included,
// holds no C1 or bidi control raw and unescapes to what the journal would
// have been given unwrapped: the customer's text, or its fmt.Sprint.
func TestJournalFieldsUnescapeToTheCustomersText(t *testing.T) {
	for _, s := range customer {
		plain, wrapped := fields{got: map[string]string{}}, fields{got: map[string]string{}}
		logAll(slog.New(plain).With("w", s), s)
		logAll(slog.New(inert{wrapped}).With("w", s), s)
		if len(wrapped.got) != len(plain.got) || len(plain.got) != 8 {
			t.Fatalf("fields %v, want those of %v", wrapped.got, plain.got)
		}
		for k, want := range plain.got {
			got := wrapped.got[k]
			controls(t, got)
			if u := unescape(t, got); u != want {
				t.Errorf("%q: field %s unescapes to %q, want %q", s, k, u, want)
			}
			if !utf8.ValidString(got) {
				t.Errorf("field %s not UTF-8: %q", k, got)
			}
		}
	}
}

// TestTextOrdinaryLineAsSlogWritesIt: a line with nothing to escape (no
// backslash, no control) reads in New's text format exactly as slog's own
// text handler writes it, the built-in level at each level and an
// attribute holding a slog.Level included (ReplaceAttr passes a level
// through untouched).
func TestTextOrdinaryLineAsSlogWritesIt(t *testing.T) {
	for _, lvl := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn + 2, slog.LevelError, slog.LevelError + 4} {
		var ours, theirs bytes.Buffer
		log := func(l *slog.Logger) {
			l.Log(context.Background(), lvl, "server ordered", "server", "srv_01kt", "amount_usd_cents", int64(500),
				"threshold", slog.LevelWarn+1, "seconds", 1.5, "ok", true, "err", errors.New("a plain error"))
		}
		opts := &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}}
		log(slog.New(slog.NewTextHandler(&theirs, opts)))
		l := New("text", "debug", "", &ours)
		log(l)
		got := ours.String()
		got = got[strings.Index(got, " level=")+1:] // without the time
		if got != theirs.String() {
			t.Errorf("level %v: New's text line\n%q\nslog's\n%q", lvl, got, theirs.String())
		}
	}
}
