// Package logsetup builds the slog logger both daemons log through, with
// the characters that can disguise customer text in a terminal or journal
// (C1 controls, bidi controls) written as inert escapes a reader can undo.
package logsetup

import (
	"context"
	"encoding"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/hostplane/hostplane/internal/sysd"
)

// New returns the logger format asks for at level ("debug", "info", "warn",
// "error"; anything else is info): "text" lines on w, "journal" native
// journald entries under SYSLOG_IDENTIFIER ident (JSON lines on w when no
// journal is reachable), otherwise JSON lines on w.
//
// A log carries customer text (a request path, an error from a registry),
// and a reader must not see it reorder or hide the rest of the line, nor
// mistake one text for another. So no C1 control (U+0080–U+009F), bidi
// control (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069) or line
// or paragraph separator (U+2028, U+2029) is written raw, in any message,
// key or value (strings, errors, structs, slices, maps, LogValuers), and
// each format stays lossless:
//   - JSON: the character is written as its JSON escape (U+202E as \u202e),
//     so a JSON decoder gets the customer's string back; a customer who typed
//     backslash-u-2-0-2-e reads \\u202e, as JSON writes any backslash.
//   - text: every value reads as a Go string literal, its quotes left out
//     where slog's text handler leaves them out: the characters are quoted
//     as \u202e (slog quotes them), and a backslash is always \\ (slog writes
//     one in an unquoted value raw; here it is doubled).
//   - journal: fields have no quoting, so the character is written \u202e
//     and a backslash \\ (escape).
func New(format, level, ident string, w io.Writer) *slog.Logger {
	lvl := new(slog.LevelVar)
	_ = lvl.UnmarshalText([]byte(level))
	switch {
	case format == "text":
		return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl, ReplaceAttr: textReplaceAttr}))
	case format == "journal" && sysd.JournalAvailable():
		return slog.New(inert{sysd.NewJournalHandler(ident, lvl)})
	}
	return slog.New(slog.NewJSONHandler(jsonEscaper{w}, &slog.HandlerOptions{Level: lvl}))
}

// jsonEscaper writes what slog's JSON handler writes with every C1 and bidi
// control rewritten as a JSON \u escape. slog escapes C0 controls, '"', '\'
// and U+2028/2029 itself, and writes the rest of a string (its own or what
// encoding/json marshals for a struct, slice or map) as UTF-8. In a JSON
// text a non-ASCII character can only stand inside a string, where \uXXXX
// means that character: the rewrite keeps the line valid and decodes to the
// same strings. The handler writes each record in one Write call, so a
// character is never split between two.
type jsonEscaper struct{ w io.Writer }

func (e jsonEscaper) Write(p []byte) (int, error) {
	i := firstEscaped(p)
	if i < 0 {
		return e.w.Write(p)
	}
	out := make([]byte, 0, len(p)+16)
	out = append(out, p[:i]...)
	for rest := p[i:]; len(rest) > 0; {
		r, size := utf8.DecodeRune(rest)
		if escaped(r) {
			out = appendU(out, r)
		} else {
			out = append(out, rest[:size]...)
		}
		rest = rest[size:]
	}
	if _, err := e.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// firstEscaped is the index in p of the first C1 or bidi control, or -1.
func firstEscaped(p []byte) int {
	for i := 0; i < len(p); i++ {
		if p[i] < utf8.RuneSelf {
			continue
		}
		r, size := utf8.DecodeRune(p[i:])
		if escaped(r) {
			return i
		}
		i += size - 1
	}
	return -1
}

func appendU(b []byte, r rune) []byte {
	const hex = "0123456789abcdef"
	return append(b, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
}

// textReplaceAttr is the text handler's ReplaceAttr. slog's text handler
// quotes (strconv.Quote) a value holding a space, '=', '"', a control or any
// character that is not printable, C1 and bidi controls included; but it
// writes a value whose only unusual character is a backslash unquoted, and
// the backslash raw: `p=\u202e` would then be both the customer's six
// characters and, were U+202E escaped by hand, U+202E. Here a backslash in
// such a value is doubled, so that every value, quoted or not, reads as a Go
// string literal. A value of kind Any (a struct, slice, map, error) is
// formatted here as the handler would (MarshalText, else %+v) so that its
// text is treated the same.
func textReplaceAttr(_ []string, a slog.Attr) slog.Attr {
	a.Key = textLiteral(a.Key)
	switch a.Value.Kind() {
	case slog.KindString:
		if s := a.Value.String(); strings.Contains(s, `\`) {
			a.Value = slog.StringValue(textLiteral(s))
		}
	case slog.KindAny:
		if _, ok := a.Value.Any().(slog.Level); ok {
			// The level (every line's): its text (INFO, WARN+2) has no
			// backslash; formatting it here cost each line two
			// allocations.
			return a
		}
		if s, ok := textOf(a.Value.Any()); ok {
			a.Value = slog.StringValue(textLiteral(s))
		}
	}
	return a
}

// textLiteral is s as the text handler should take it: unchanged when
// s has no backslash or the handler quotes s anyway, otherwise with each
// backslash doubled.
func textLiteral(s string) string {
	if !strings.Contains(s, `\`) || textQuotes(s) {
		return s
	}
	return strings.ReplaceAll(s, `\`, `\\`)
}

// textQuotes reports whether slog's text handler quotes s: it mirrors the
// handler's needsQuoting (Go 1.26 log/slog/text_handler.go), which
// TestTextReadsAsGoLiterals holds it to.
func textQuotes(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b != '\\' && (b <= ' ' || b == '=' || b == '"') {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return true
		}
		i += size
	}
	return false
}

// textOf is the text slog's text handler writes for a value of kind Any,
// and true; false where the handler's own output is kept (a byte slice,
// which it always quotes; a *slog.Source; a MarshalText that fails or
// panics, which the handler reports itself).
func textOf(v any) (s string, ok bool) {
	switch v.(type) {
	case *slog.Source, []byte:
		return "", false
	}
	if t := reflect.TypeOf(v); t != nil && t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8 {
		return "", false
	}
	if tm, isTM := v.(encoding.TextMarshaler); isTM {
		defer func() {
			if recover() != nil {
				s, ok = "", false
			}
		}()
		data, err := tm.MarshalText()
		if err != nil {
			return "", false
		}
		return string(data), true
	}
	return fmt.Sprintf("%+v", v), true
}

// escape returns s with every backslash doubled and every C1 control, bidi
// control and line or paragraph separator written as a \u escape of four lower-case hex digits (U+202E
// → `\u202e`), the rest unchanged: text that shows no such character and
// that a reader can turn back into s. Text with neither a backslash nor a
// byte ≥ 0x80 is returned as is, unallocated.
func escape(s string) string {
	if !needsEscape(s) {
		return s
	}
	b := make([]byte, 0, len(s)+8)
	for _, r := range s {
		switch {
		case r == '\\':
			b = append(b, '\\', '\\')
		case escaped(r):
			b = appendU(b, r)
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return string(b)
}

func needsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			return true
		}
		if s[i] >= utf8.RuneSelf {
			for _, r := range s[i:] {
				if r == '\\' || escaped(r) {
					return true
				}
			}
			return false
		}
	}
	return false
}

// escaped reports whether r is a C1 control, a bidi control or a line or
// paragraph separator. slog's JSON handler and encoding/json escape the
// separators themselves, and the text handler quotes them, but the journal
// takes them raw.
func escaped(r rune) bool {
	switch {
	case r >= 0x80 && r <= 0x9f, r == 0x061c, r == 0x200e, r == 0x200f,
		r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x2028, r == 0x2029:
		return true
	}
	return false
}

// inert wraps a handler that takes no ReplaceAttr and writes what it gets
// unquoted (the journal's): the message and every attribute, in groups too,
// pass through escape; a value of kind Any is formatted first (fmt.Sprint,
// as the journal handler formats it).
type inert struct{ slog.Handler }

func (h inert) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, escape(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool { out.AddAttrs(inertAttr(a)); return true })
	return h.Handler.Handle(ctx, out)
}

func (h inert) WithAttrs(as []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i] = inertAttr(a)
	}
	return inert{h.Handler.WithAttrs(out)}
}

func (h inert) WithGroup(name string) slog.Handler { return inert{h.Handler.WithGroup(name)} }

func inertAttr(a slog.Attr) slog.Attr {
	a.Value = a.Value.Resolve()
	switch a.Value.Kind() {
	case slog.KindGroup:
		g := a.Value.Group()
		out := make([]slog.Attr, len(g))
		for i, m := range g {
			out[i] = inertAttr(m)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(out...)}
	case slog.KindString:
		if s := a.Value.String(); needsEscape(s) {
			a.Value = slog.StringValue(escape(s))
		}
	case slog.KindAny:
		if s := fmt.Sprint(a.Value.Any()); needsEscape(s) {
			a.Value = slog.StringValue(escape(s))
		}
	}
	return a
}
