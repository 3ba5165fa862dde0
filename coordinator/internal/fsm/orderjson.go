package fsm

import (
	"math"
	"strconv"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/internal/plainjson"
)

// serverOrderKeys and serverCreateKeys are ServerOrder's and ServerCreate's
// JSON keys in field order.
var (
	serverOrderKeys  = []string{"plan_slug", "create", "invoice_id", "payment_id", "tx_id"}
	serverCreateKeys = []string{"server", "action", "addresses", "cpu_overcommit", "locations"}
)

// readServerOrder reads a ServerOrder payload as json.Marshal writes it
// (keys in field order) in plainjson's subset, without addresses, with an
// integer overcommit and locations of plain strings, giving exactly what
// json.Unmarshal gives; anything else fails it (ok false) and the caller
// decodes with encoding/json (FuzzReadServerOrder). Every order command is decoded so on every replica.
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
			case 4:
				var ok bool
				p.Create.Locations, ok = rd.Strings()
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
	ok = rd.Fields(actionProgressKeys, &p.ID, &p.At, &p.Percent, &p.Step)
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

// invoiceEventData is the data of an invoice.created (with its status) or
// invoice.paid event of inv, as json.Marshal writes the map emit was given
// (keys sorted) (TestOrderEventDataMatchesEncodingJSON,
// FuzzOrderEventData).
func invoiceEventData(inv *store.Invoice, withStatus bool) []byte {
	b := make([]byte, 0, 112+len(inv.Currency)+len(inv.ID)+len(inv.Number)+len(inv.Status))
	b = plainjson.AppendStringField(b, `{"currency":`, inv.Currency)
	b = plainjson.AppendStringField(b, `,"invoiceId":`, inv.ID)
	b = plainjson.AppendStringField(b, `,"invoiceNumber":`, inv.Number)
	if withStatus {
		b = plainjson.AppendStringField(b, `,"status":`, inv.Status)
	}
	b = append(b, `,"totalUsdCents":`...)
	b = strconv.AppendInt(b, inv.TotalUsdCents, 10)
	return append(b, '}')
}

// serverCreatedData is the data of s's server.created event, as json.Marshal
// writes the map applyResult gave emit (keys sorted; ipv4 null without a
// primary IPv4 address).
func serverCreatedData(s *store.Server) []byte {
	b := make([]byte, 0, 128+len(s.Hostname)+len(s.Label)+len(s.Plan.Slug)+len(s.ID)+len(s.Status))
	b = plainjson.AppendStringField(b, `{"hostname":`, s.Hostname)
	b = append(b, `,"ipv4":`...)
	if ip, ok := primaryIPv4(*s).(string); ok {
		b = plainjson.AppendJSONString(b, ip)
	} else {
		b = append(b, "null"...)
	}
	b = plainjson.AppendStringField(b, `,"label":`, s.Label)
	b = plainjson.AppendStringField(b, `,"planSlug":`, s.Plan.Slug)
	b = plainjson.AppendStringField(b, `,"serverId":`, s.ID)
	b = plainjson.AppendStringField(b, `,"status":`, s.Status)
	return append(b, '}')
}

// invoiceNumber is fmt.Sprintf("INV-%06d", n), or with year
// fmt.Sprintf("INV-%d-%06d", year, n), without fmt.
func invoiceNumber(n uint64, year int, withYear bool) string {
	b := make([]byte, 0, 32)
	b = append(b, "INV-"...)
	if withYear {
		b = strconv.AppendInt(b, int64(year), 10)
		b = append(b, '-')
	}
	var digits [20]byte
	d := strconv.AppendUint(digits[:0], n, 10)
	for i := len(d); i < 6; i++ {
		b = append(b, '0')
	}
	return string(append(b, d...))
}

// plainPayload writes a payload of the types with a hand-written encoder
// as json.Marshal writes it; ok false for any other payload, or one outside
// its encoder's subset (NewEnvelope then uses json.Marshal). The leader
// encodes every server order so.
func plainPayload(payload any) (raw []byte, ok bool) {
	switch p := payload.(type) {
	case ServerOrder:
		return encodeServerOrder(&p)
	case ServerCreate:
		return encodeServerCreate(nil, &p)
	}
	return nil, false
}

// encodeServerOrder writes p as json.Marshal writes it, without reflection,
// or gives up (ok false) where encodeServerCreate does
// (TestServerOrderEncodingMatchesEncodingJSON, FuzzEncodeServerOrder).
func encodeServerOrder(p *ServerOrder) ([]byte, bool) {
	b := make([]byte, 0, 1280)
	b = plainjson.AppendStringField(b, `{"plan_slug":`, p.PlanSlug)
	b = append(b, `,"create":`...)
	b, ok := encodeServerCreate(b, &p.Create)
	if !ok {
		return nil, false
	}
	b = plainjson.AppendStringField(b, `,"invoice_id":`, p.InvoiceID)
	b = plainjson.AppendStringField(b, `,"payment_id":`, p.PaymentID)
	b = plainjson.AppendStringField(b, `,"tx_id":`, p.TxID)
	return append(b, '}'), true
}

// encodeServerCreate appends c to b as json.Marshal writes it, or gives up
// (ok false) when its server or action is outside store.EncodeServer's or
// store.EncodeAction's subset, it allocates addresses, or its overcommit is
// not a whole number of at most 2^53 (json.Marshal writes those as
// strconv.AppendInt does).
func encodeServerCreate(b []byte, c *ServerCreate) ([]byte, bool) {
	oc := c.CPUOvercommit
	if c.Addresses != nil || oc != math.Trunc(oc) || math.Abs(oc) > 1<<53 {
		return nil, false
	}
	if b == nil {
		b = make([]byte, 0, 1024)
	}
	b = append(b, `{"server":`...)
	b, ok := store.AppendServer(b, &c.Server)
	if !ok {
		return nil, false
	}
	b = append(b, `,"action":`...)
	if b, ok = store.AppendAction(b, &c.Action); !ok {
		return nil, false
	}
	if oc != 0 {
		b = append(b, `,"cpu_overcommit":`...)
		b = strconv.AppendInt(b, int64(oc), 10)
	}
	if len(c.Locations) > 0 {
		b = append(b, `,"locations":`...)
		b = plainjson.AppendArray(b, c.Locations, func(b []byte, l *string) []byte { return plainjson.AppendJSONString(b, *l) })
	}
	return append(b, '}'), true
}
