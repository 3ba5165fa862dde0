package fsm

import (
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/internal/plainjson"
)

// encodeEvent writes an outbox event as json.Marshal writes it, without
// reflection, or gives up (ok false: the caller uses json.Marshal): its id,
// type and account must be plain strings (plainjson.Plain) and its time UTC
// within years 0-9999. Its Data must be json.Marshal's output (emit's), which
// json.Marshal copies unchanged (it is compact and escaped already). Every
// command that changes something writes one or more events, so this is on the
// hot path of every write (TestEventEncodingMatchesEncodingJSON and its
// fuzzer hold it to encoding/json's bytes).
func encodeEvent(ev *store.Event) ([]byte, bool) {
	if !plainjson.Plain(ev.ID) || !plainjson.Plain(ev.Type) || !plainjson.Plain(ev.AccountID) ||
		!plainjson.PlainTime(ev.CreatedAt) || len(ev.Data) == 0 {
		return nil, false
	}
	b := make([]byte, 0, 96+len(ev.ID)+len(ev.Type)+len(ev.AccountID)+len(ev.Data))
	b = append(b, '{')
	b = plainjson.AppendString(plainjson.AppendKey(b, "id"), ev.ID)
	b = append(b, ',')
	b = plainjson.AppendString(plainjson.AppendKey(b, "type"), ev.Type)
	b = append(b, ',')
	b = plainjson.AppendString(plainjson.AppendKey(b, "account_id"), ev.AccountID)
	b = append(b, ',')
	b, _ = plainjson.AppendTime(plainjson.AppendKey(b, "created_at"), ev.CreatedAt) // plain: checked above
	b = append(b, ',')
	b = append(plainjson.AppendKey(b, "data"), ev.Data...)
	return append(b, '}'), true
}
