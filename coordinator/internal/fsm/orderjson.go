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

// serverOrderHandler decodes the payload without reflection when it can
// (readServerOrder), as encoding/json would.
func serverOrderHandler(c *applyCtx) (any, error) {
	if p, ok := readServerOrder(c.env.Data); ok {
		return applyServerOrder(c, p)
	}
	return typed(applyServerOrder)(c)
}
