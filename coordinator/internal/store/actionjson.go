package store

import (
	"strconv"
	"time"

	"github.com/hostplane/hostplane/internal/plainjson"
	"github.com/hostplane/hostplane/pkg/api"
)

// An action record is written by every command of its life (created with
// its server's order, then each progress and its end) and read by each of
// those after the first, on every replica: EncodeAction and readAction do
// that without reflection for the records actions hold in practice, and
// give up (ok false: use encoding/json) outside that subset.
// TestActionCodecMatchesEncodingJSON, FuzzEncodeAction and FuzzReadAction
// hold them to encoding/json's bytes and values.

// EncodeAction writes a as json.Marshal writes it, or gives up (ok false)
// when a carries a snapshot or meta, params outside plainjson's plain subset
// (PlainValue), or a time that is not UTC within years 0-9999.
func EncodeAction(a *Action) ([]byte, bool) {
	return AppendAction(make([]byte, 0, 384+len(a.Params)+len(a.ID)+len(a.Command)+len(a.ResourceID)+len(a.AccountID)+len(a.NodeID)+len(a.Target)+len(a.Step)), a)
}

// AppendAction is EncodeAction appending to b (nil when it gives up).
func AppendAction(b []byte, a *Action) ([]byte, bool) {
	if a.Snapshot != nil || len(a.Meta) > 0 || (len(a.Params) > 0 && !plainjson.PlainValue(a.Params)) {
		return nil, false
	}
	b, ok := appendActionFields(b, &a.Action)
	if !ok {
		return nil, false
	}
	b = plainjson.AppendStringField(b, `,"account_id":`, a.AccountID)
	b = plainjson.AppendStringField(b, `,"node_id":`, a.NodeID)
	b = plainjson.AppendStringField(b, `,"target":`, a.Target)
	if len(a.Params) > 0 {
		b = append(b, `,"params":`...)
		b = append(b, a.Params...)
	}
	if a.NeedsSecret {
		b = append(b, `,"needs_secret":true`...)
	}
	b = append(b, `,"mutating":`...)
	b = strconv.AppendBool(b, a.Mutating)
	b = append(b, `,"deadline":`...)
	if b, ok = plainjson.AppendTime(b, a.Deadline); !ok {
		return nil, false
	}
	if a.Step != "" {
		b = plainjson.AppendStringField(b, `,"step":`, a.Step)
	}
	if a.SnapshotID != "" {
		b = plainjson.AppendStringField(b, `,"snapshot_id":`, a.SnapshotID)
	}
	return append(b, '}'), true
}

// AppendAPIAction appends a as json.Marshal writes an api.Action (what a
// customer is shown), or gives up (ok false: use encoding/json) when one of
// its times is not UTC within years 0-9999.
func AppendAPIAction(b []byte, a *api.Action) ([]byte, bool) {
	return closeObject(appendActionFields(b, a))
}

// appendActionFields appends api.Action's object as json.Marshal writes it
// but for its closing brace (ok false: a time json.Marshal writes otherwise
// or refuses), for Action and AppendAPIAction.
func appendActionFields(b []byte, a *api.Action) ([]byte, bool) {
	if a.CurrentTask != "" {
		return nil, false // worked out when read, never stored: not this codec's
	}
	b = plainjson.AppendStringField(b, `{"id":`, a.ID)
	b = plainjson.AppendStringField(b, `,"command":`, a.Command)
	b = plainjson.AppendStringField(b, `,"status":`, a.Status)
	b = append(b, `,"progress":`...)
	b = strconv.AppendInt(b, int64(a.Progress), 10)
	b = plainjson.AppendStringField(b, `,"resource_type":`, a.ResourceType)
	b = plainjson.AppendStringField(b, `,"resource_id":`, a.ResourceID)
	b = append(b, `,"created_at":`...)
	b, ok := plainjson.AppendTime(b, a.CreatedAt)
	if a.StartedAt != nil && ok {
		b = append(b, `,"started_at":`...)
		b, ok = plainjson.AppendTime(b, *a.StartedAt)
	}
	if a.FinishedAt != nil && ok {
		b = append(b, `,"finished_at":`...)
		b, ok = plainjson.AppendTime(b, *a.FinishedAt)
	}
	if !ok {
		return nil, false
	}
	if a.Error != nil {
		b = plainjson.AppendStringField(b, `,"error":{"code":`, a.Error.Code)
		b = plainjson.AppendStringField(b, `,"message":`, a.Error.Message)
		b = append(b, '}')
	}
	if a.Method != "" {
		b = plainjson.AppendStringField(b, `,"method":`, a.Method)
	}
	return b, true
}

// actionKeys are Action's JSON keys in the order json.Marshal writes them.
var actionKeys = [...]string{"id", "command", "status", "progress", "resource_type", "resource_id", "created_at", "started_at", "finished_at", "error",
	"method", "account_id", "node_id", "target", "params", "needs_secret", "mutating", "deadline", "step", "snapshot_id"}

var actionErrorKeys = []string{"code", "message"}

// readAction reads an action record in plainjson's subset with keys in
// field order (no snapshot, no meta, no null), giving exactly what
// json.Unmarshal gives; anything else fails it (ok false) and the caller
// decodes with encoding/json.
func readAction(b []byte) (Action, bool) { return readWhole(b, ReadAction) }

// ReadAction is readAction of the value at rd (an order command's action),
// into the zero Action a.
func ReadAction(rd *plainjson.Reader, a *Action) bool {
	// strings are the string fields by key index (nil: another kind).
	strings := [len(actionKeys)]*string{0: &a.ID, 1: &a.Command, 2: &a.Status, 4: &a.ResourceType, 5: &a.ResourceID,
		10: &a.Method, 11: &a.AccountID, 12: &a.NodeID, 13: &a.Target, 18: &a.Step, 19: &a.SnapshotID}
	return rd.Object(actionKeys[:], func(i int) (ok bool) {
		if p := strings[i]; p != nil {
			*p, ok = rd.String()
			return ok
		}
		switch actionKeys[i] {
		case "progress":
			a.Progress, ok = rd.Int()
		case "created_at":
			a.CreatedAt, ok = rd.Time()
		case "started_at":
			a.StartedAt, ok = readTimePtr(rd)
		case "finished_at":
			a.FinishedAt, ok = readTimePtr(rd)
		case "error":
			var e api.ActionError
			ok = rd.Fields(actionErrorKeys, &e.Code, &e.Message)
			a.Error = &e
		case "params":
			var raw []byte
			if raw, ok = rd.Raw(); ok && string(raw) != "null" {
				a.Params = append([]byte(nil), raw...)
			} else {
				ok = false
			}
		case "needs_secret":
			a.NeedsSecret, ok = rd.Bool()
		case "mutating":
			a.Mutating, ok = rd.Bool()
		case "deadline":
			a.Deadline, ok = rd.Time()
		}
		return ok
	})
}

func readTimePtr(rd *plainjson.Reader) (*time.Time, bool) {
	t, ok := rd.Time()
	return &t, ok
}
