// Package logsetup builds the slog logger both daemons log through, with
// the characters that can disguise customer text in a terminal or journal
// (C1 controls, bidi controls) written as inert \u escapes.
package logsetup

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"unicode/utf8"

	"github.com/hostplane/hostplane/internal/sysd"
)

// New returns the logger format asks for at level ("debug", "info", "warn",
// "error"; anything else is info): "text" lines on w, "journal" native
// journald entries under SYSLOG_IDENTIFIER ident (JSON lines on w when no
// journal is reachable), otherwise JSON lines on w. Every string value, and
// every error value's text, has its C1 and bidi control characters escaped
// (Escape): a log carries customer text (a request path, say), and a reader
// must not see it reorder or hide the rest of the line.
func New(format, level, ident string, w io.Writer) *slog.Logger {
	lvl := new(slog.LevelVar)
	_ = lvl.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lvl, ReplaceAttr: ReplaceAttr}
	switch {
	case format == "text":
		return slog.New(slog.NewTextHandler(w, opts))
	case format == "journal" && sysd.JournalAvailable():
		return slog.New(inert{sysd.NewJournalHandler(ident, lvl)})
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// ReplaceAttr is a slog.HandlerOptions.ReplaceAttr that escapes C1 and bidi
// control characters in a string value or an error value's text (Escape);
// other values are returned unchanged. The JSON handler escapes C0 controls
// and U+2028/2029 itself but writes these raw.
func ReplaceAttr(_ []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindString:
		if s := a.Value.String(); needsEscape(s) {
			a.Value = slog.StringValue(Escape(s))
		}
	case slog.KindAny:
		if err, ok := a.Value.Any().(error); ok && err != nil {
			if s := err.Error(); needsEscape(s) {
				a.Value = slog.StringValue(Escape(s))
			}
		}
	}
	return a
}

// Escape returns s with every C1 control (U+0080–U+009F) and bidi control
// (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069) written as a \u
// escape of four lower-case hex digits (U+202E → `\u202e`), the rest
// unchanged. Text without a byte ≥ 0x80 is returned as is, unallocated.
func Escape(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for _, r := range s {
		if escaped(r) {
			fmt.Fprintf(&b, `\u%04x`, r)
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func needsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			for _, r := range s[i:] {
				if escaped(r) {
					return true
				}
			}
			return false
		}
	}
	return false
}

func escaped(r rune) bool {
	switch {
	case r >= 0x80 && r <= 0x9f, r == 0x061c, r == 0x200e, r == 0x200f,
		r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}

// inert wraps a handler that takes no ReplaceAttr (the journal's): the
// message and every attribute, in groups too, pass through ReplaceAttr.
type inert struct{ slog.Handler }

func (h inert) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, Escape(r.Message), r.PC)
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
	if a.Value.Kind() != slog.KindGroup {
		return ReplaceAttr(nil, a)
	}
	g := a.Value.Group()
	out := make([]slog.Attr, len(g))
	for i, m := range g {
		out[i] = inertAttr(m)
	}
	return slog.Attr{Key: a.Key, Value: slog.GroupValue(out...)}
}
