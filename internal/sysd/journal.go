package sysd

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/coreos/go-systemd/v22/journal"
)

// JournalAvailable reports whether the systemd journal's socket is reachable.
func JournalAvailable() bool { return journal.Enabled() }

// JournalHandler is a slog.Handler that writes native journald entries: the
// message as MESSAGE, the level as PRIORITY, and every attribute as its own
// field (request_id → REQUEST_ID, action_id → ACTION_ID, node_id → NODE_ID;
// groups are prefixed: session.peer → SESSION_PEER), so journalctl can filter
// on them (journalctl -u hostplane-coordinator REQUEST_ID=…).
type JournalHandler struct {
	level  slog.Leveler
	ident  string
	attrs  map[string]string
	prefix string
	send   func(msg string, p journal.Priority, vars map[string]string) error
}

var _ slog.Handler = (*JournalHandler)(nil)

// NewJournalHandler returns a handler that logs to journald with
// SYSLOG_IDENTIFIER ident at level and above.
func NewJournalHandler(ident string, level slog.Leveler) *JournalHandler {
	return &JournalHandler{level: level, ident: ident, attrs: map[string]string{}, send: journal.Send}
}

// Enabled implements slog.Handler.
func (h *JournalHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

// Handle implements slog.Handler.
func (h *JournalHandler) Handle(_ context.Context, r slog.Record) error {
	vars := make(map[string]string, len(h.attrs)+r.NumAttrs()+2)
	for k, v := range h.attrs {
		vars[k] = v
	}
	r.Attrs(func(a slog.Attr) bool { addAttr(vars, h.prefix, a); return true })
	vars["SYSLOG_IDENTIFIER"] = h.ident
	vars["LEVEL"] = r.Level.String()
	return h.send(r.Message, priority(r.Level), vars)
}

// WithAttrs implements slog.Handler.
func (h *JournalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := h.clone()
	for _, a := range as {
		addAttr(c.attrs, c.prefix, a)
	}
	return c
}

// WithGroup implements slog.Handler.
func (h *JournalHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := h.clone()
	c.prefix = h.prefix + fieldName(name) + "_"
	return c
}

func (h *JournalHandler) clone() *JournalHandler {
	c := *h
	c.attrs = make(map[string]string, len(h.attrs))
	for k, v := range h.attrs {
		c.attrs[k] = v
	}
	return &c
}

func priority(l slog.Level) journal.Priority {
	switch {
	case l >= slog.LevelError:
		return journal.PriErr
	case l >= slog.LevelWarn:
		return journal.PriWarning
	case l >= slog.LevelInfo:
		return journal.PriInfo
	default:
		return journal.PriDebug
	}
}

func addAttr(vars map[string]string, prefix string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += fieldName(a.Key) + "_"
		}
		for _, g := range a.Value.Group() {
			addAttr(vars, p, g)
		}
		return
	}
	vars[prefix+fieldName(a.Key)] = fmt.Sprint(a.Value.Any())
}

// fieldName turns an attribute key into a journald field name: upper case
// letters, digits and '_', not starting with '_' or a digit (journald drops
// such fields from clients).
func fieldName(k string) string {
	var b strings.Builder
	for _, c := range strings.ToUpper(k) {
		if c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
		} else {
			b.WriteByte('_')
		}
	}
	s := strings.TrimLeft(b.String(), "_0123456789")
	if s == "" {
		s = "FIELD"
	}
	switch s {
	case "MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "CODE_FILE", "CODE_LINE", "CODE_FUNC", "MESSAGE_ID":
		s = "ATTR_" + s
	}
	return s
}
