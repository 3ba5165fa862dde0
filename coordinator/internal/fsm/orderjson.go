package fsm

import (
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/internal/plainjson"
)

// serverOrderKeys and serverCreateKeys are ServerOrder's and ServerCreate's
// JSON keys in field order.
var (
	serverOrderKeys  = []string{"plan_slug", "create", "invoice_id", "payment_id", "tx_id"}
	serverCreateKeys = []string{"server", "action", "addresses", "cpu_overcommit"}
)

// readServerOrder reads a ServerOrder payload as json.Marshal writes it
// (keys in field order) in plainjson's subset, without addresses and with
// an integer overcommit, giving exactly what json.Unmarshal gives; anything
// else fails it (ok false) and the caller decodes with encoding/json
// (FuzzReadServerOrder). Every order command is decoded so on every replica.
func readServerOrder(b []byte) (p ServerOrder, ok bool) {
	rd := plainjson.NewReader(b)
	strings := [...]*string{0: &p.PlanSlug, 2: &p.InvoiceID, 3: &p.PaymentID, 4: &p.TxID}
	ok = rd.Object(serverOrderKeys, func(i int) (ok bool) {
		if s := strings[i]; s != nil {
			*s, ok = rd.String()
			return ok
		}
		return rd.Object(serverCreateKeys, func(i int) bool {
			switch i {
			case 0:
				return store.ReadServer(rd, &p.Create.Server)
			case 1:
				return store.ReadAction(rd, &p.Create.Action)
			case 3:
				// A non-negative integer within float64's exact range
				// reads as json.Unmarshal reads it into a float64.
				n, ok := rd.Uint(53)
				p.Create.CPUOvercommit = float64(n)
				return ok
			}
			return false // addresses: left to encoding/json
		})
	})
	return p, ok && rd.End()
}

// fastTyped is typed(h) reading the payload with read first (a reader that
// gives what json.Unmarshal gives, or ok false to leave it to typed).
func fastTyped[P any](read func([]byte) (P, bool), h func(c *applyCtx, p P) (any, error)) handlerFunc {
	slow := typed(h)
	return func(c *applyCtx) (any, error) {
		if p, ok := read(c.env.Data); ok {
			return h(c, p)
		}
		return slow(c)
	}
}

var (
	actionProgressKeys = []string{"id", "at", "percent", "step"}
	actionFinishKeys   = []string{"id", "success", "error_code", "error_message", "result"}
)

// readActionProgress reads an ActionProgress payload in plainjson's subset
// with keys in field order, as json.Unmarshal does (FuzzReadActionPayloads).
func readActionProgress(b []byte) (p ActionProgress, ok bool) {
	rd := plainjson.NewReader(b)
	ok = rd.Object(actionProgressKeys, func(i int) (ok bool) {
		switch i {
		case 0:
			p.ID, ok = rd.String()
		case 1:
			p.At, ok = rd.Time()
		case 2:
			p.Percent, ok = rd.Int()
		default:
			p.Step, ok = rd.String()
		}
		return ok
	})
	return p, ok && rd.End()
}

// readActionFinish reads an ActionFinish payload in plainjson's subset
// with keys in field order (a result that is not null), as json.Unmarshal
// does (FuzzReadActionPayloads). Every provisioning ends with one.
func readActionFinish(b []byte) (p ActionFinish, ok bool) {
	rd := plainjson.NewReader(b)
	ok = rd.Object(actionFinishKeys, func(i int) (ok bool) {
		switch i {
		case 0:
			p.ID, ok = rd.String()
		case 1:
			p.Success, ok = rd.Bool()
		case 2:
			p.ErrorCode, ok = rd.String()
		case 3:
			p.ErrorMessage, ok = rd.String()
		default:
			var raw []byte
			raw, ok = rd.Raw()
			if ok && string(raw) != "null" {
				p.Result = append([]byte(nil), raw...)
				return true
			}
			return false
		}
		return ok
	})
	return p, ok && rd.End()
}
