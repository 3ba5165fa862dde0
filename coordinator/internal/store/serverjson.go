package store

import (
	"net/netip"
	"strconv"
	"time"

	"github.com/hostplane/hostplane/internal/plainjson"
	"github.com/hostplane/hostplane/pkg/api"
)

// EncodeServer writes s as json.Marshal writes it, without reflection, or
// gives up (ok false: use encoding/json) when s holds snapshots or PTRs, an
// address whose prefixes are not valid, or a time that is not UTC within
// years 0-9999. A bought server is written by its order and again by its
// provisioning's end on every replica (TestServerEncodingMatchesEncodingJSON
// and FuzzEncodeServer hold it to encoding/json's bytes).
func EncodeServer(s *Server) ([]byte, bool) {
	n := 512 + len(s.ID) + len(s.Label) + len(s.Hostname) + len(s.VMName) + len(s.InvoiceID)
	for i := range s.Addrs {
		n += 128 + len(s.Addrs[i].Pool) + len(s.Addrs[i].Gateway)
	}
	return AppendServer(make([]byte, 0, n), s)
}

// AppendServer is EncodeServer appending to b (nil when it gives up).
func AppendServer(b []byte, s *Server) ([]byte, bool) {
	if len(s.Snapshots) > 0 || len(s.PTRs) > 0 || len(s.PTRAt) > 0 {
		return nil, false
	}
	for i := range s.Addrs {
		if !s.Addrs[i].Unit.IsValid() || !s.Addrs[i].Addr.IsValid() {
			return nil, false
		}
	}
	b, ok := appendServerFields(b, &s.Server)
	if !ok {
		return nil, false
	}
	b = plainjson.AppendStringField(b, `,"account_id":`, s.AccountID)
	b = plainjson.AppendStringField(b, `,"node_id":`, s.NodeID)
	b = plainjson.AppendStringField(b, `,"vm_name":`, s.VMName)
	b = appendOmitEmpty(b, `,"power_state":`, s.PowerState)
	if len(s.Addrs) > 0 {
		b = append(b, `,"addrs":`...)
		b = plainjson.AppendArray(b, s.Addrs, func(b []byte, a *ServerAddr) []byte {
			b = plainjson.AppendStringField(b, `{"pool":`, a.Pool)
			// A valid prefix's text is digits, hex, '.', ':' and '/'.
			b = append(b, `,"unit":"`...)
			b, _ = a.Unit.AppendText(b)
			b = append(b, `","addr":"`...)
			b, _ = a.Addr.AppendText(b)
			b = append(b, '"')
			b = appendOmitEmpty(b, `,"gateway":`, a.Gateway)
			return append(b, '}')
		})
	}
	if s.MonthlyUsdCents != 0 {
		b = append(b, `,"monthly_usd_cents":`...)
		b = strconv.AppendInt(b, s.MonthlyUsdCents, 10)
	}
	b = appendOmitEmpty(b, `,"invoice_id":`, s.InvoiceID)
	if r := s.Renewal; r != nil {
		b = plainjson.AppendStringField(b, `,"renewal":{"invoice_id":`, r.InvoiceID)
		b = append(b, `,"period_start":`...)
		if b, ok = plainjson.AppendTime(b, r.PeriodStart); ok {
			b = append(b, `,"period_end":`...)
			b, ok = plainjson.AppendTime(b, r.PeriodEnd)
		}
		b = append(b, '}')
	}
	if u := s.Suspension; u != nil && ok {
		b = plainjson.AppendStringField(b, `,"suspension":{"by":`, u.By)
		b = plainjson.AppendStringField(b, `,"reason":`, u.Reason)
		b = appendOmitEmpty(b, `,"invoice_id":`, u.InvoiceID)
		b = append(b, `,"at":`...)
		b, ok = plainjson.AppendTime(b, u.At)
		b = append(b, '}')
	}
	return closeObject(b, ok)
}

// EncodeAPIServerOrder writes o as json.Marshal writes an api.ServerOrder
// (the answer to POST /v1/servers: the order's server, action and paid
// invoice), with spare capacity for extra more bytes, or gives up (ok
// false: use encoding/json) when one of its times is not UTC within years
// 0-9999. The leader writes it to answer every order, and every replica
// once more into the order's idempotency record
// (TestServerOrderBodyMatchesEncodingJSON, FuzzEncodeServerOrderBody).
func EncodeAPIServerOrder(o *api.ServerOrder, extra int) ([]byte, bool) {
	n := 1024 + extra + len(o.Server.Label) + len(o.Server.Hostname) + len(o.RootPassword)
	for i := range o.Invoice.Lines {
		n += 100 + len(o.Invoice.Lines[i].Description)
	}
	n += 160 * len(o.Invoice.Payments)
	b := append(make([]byte, 0, n), `{"server":`...)
	b, ok := AppendAPIServer(b, &o.Server)
	if ok {
		b, ok = AppendAPIAction(append(b, `,"action":`...), &o.Action)
	}
	if ok {
		b, ok = AppendAPIInvoice(append(b, `,"invoice":`...), &o.Invoice)
	}
	if !ok {
		return nil, false
	}
	if o.RootPassword != "" {
		b = plainjson.AppendJSONString(append(b, `,"root_password":`...), o.RootPassword)
	}
	return append(b, '}'), true
}

// AppendAPIServer appends s as json.Marshal writes an api.Server (what a
// customer is shown), or gives up (ok false: use encoding/json) when one
// of its times is not UTC within years 0-9999.
func AppendAPIServer(b []byte, s *api.Server) ([]byte, bool) {
	return closeObject(appendServerFields(b, s))
}

// appendServerFields appends api.Server's object as json.Marshal writes it
// but for its closing brace (ok false: a time json.Marshal writes otherwise
// or refuses), for Server and AppendAPIServer.
func appendServerFields(b []byte, s *api.Server) ([]byte, bool) {
	b = plainjson.AppendStringField(b, `{"id":`, s.ID)
	b = plainjson.AppendStringField(b, `,"label":`, s.Label)
	b = plainjson.AppendStringField(b, `,"hostname":`, s.Hostname)
	b = plainjson.AppendStringField(b, `,"status":`, s.Status)
	b = plainjson.AppendStringField(b, `,"plan":{"slug":`, s.Plan.Slug)
	b = append(b, `,"vcpus":`...)
	b = strconv.AppendUint(b, uint64(s.Plan.VCPUs), 10)
	b = append(b, `,"memory_mib":`...)
	b = strconv.AppendUint(b, s.Plan.MemoryMiB, 10)
	b = append(b, `,"disk_gib":`...)
	b = strconv.AppendUint(b, s.Plan.DiskGiB, 10)
	b = plainjson.AppendStringField(b, `},"os_template":`, s.OSTemplate)
	b = plainjson.AppendStringField(b, `,"os":`, s.OS)
	b = appendOmitEmpty(b, `,"ipv4":`, s.IPv4)
	b = appendOmitEmpty(b, `,"ipv6":`, s.IPv6)
	b = appendOmitEmpty(b, `,"location":`, s.Location)
	b = appendOmitEmpty(b, `,"action_id":`, s.ActionID)
	b = append(b, `,"created_at":`...)
	b, ok := plainjson.AppendTime(b, s.CreatedAt)
	if ok {
		b = append(b, `,"updated_at":`...)
		b, ok = plainjson.AppendTime(b, s.UpdatedAt)
	}
	for _, t := range [...]struct {
		key string
		at  *time.Time
	}{{`,"terminated_at":`, s.TerminatedAt}, {`,"paid_until":`, s.PaidUntil}} {
		if t.at != nil && ok {
			b = append(b, t.key...)
			b, ok = plainjson.AppendTime(b, *t.at)
		}
	}
	return b, ok
}

// closeObject closes the object b holds, or gives up (nil, false) when its
// writer did (ok false).
func closeObject(b []byte, ok bool) ([]byte, bool) {
	if !ok {
		return nil, false
	}
	return append(b, '}'), true
}

// appendOmitEmpty appends key and s unless s is empty (omitempty).
func appendOmitEmpty(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	return plainjson.AppendStringField(b, key, s)
}

// serverKeys are Server's JSON keys in the order json.Marshal writes them.
var serverKeys = [...]string{"id", "label", "hostname", "status", "plan", "os_template", "os", "ipv4", "ipv6", "location", "action_id",
	"created_at", "updated_at", "terminated_at", "paid_until", "account_id", "node_id", "vm_name", "snapshots", "power_state",
	"ptrs", "ptr_at", "addrs", "monthly_usd_cents", "invoice_id", "renewal", "suspension"}

var (
	serverPlanKeys = []string{"slug", "vcpus", "memory_mib", "disk_gib"}
	serverAddrKeys = []string{"pool", "unit", "addr", "gateway"}
	renewalKeys    = []string{"invoice_id", "period_start", "period_end"}
	suspensionKeys = []string{"by", "reason", "invoice_id", "at"}
)

// readServer reads a server record in plainjson's subset with keys in field
// order (no snapshots, no PTRs, no null), giving exactly what json.Unmarshal
// gives; anything else fails it (ok false) and the caller decodes with
// encoding/json (FuzzReadServer).
func readServer(b []byte) (Server, bool) { return readWhole(b, ReadServer) }

// readWhole reads b whole with read (ReadServer, ReadAction: the value at
// rd into the zero T): ok false when read gives up or anything follows the
// value.
func readWhole[T any](b []byte, read func(*plainjson.Reader, *T) bool) (T, bool) {
	var v T
	rd := plainjson.NewReader(b)
	ok := read(rd, &v) && rd.End()
	return v, ok
}

// ReadServer is readServer of the value at rd (an order command's server),
// into the zero Server s.
func ReadServer(rd *plainjson.Reader, s *Server) bool {
	strings := [len(serverKeys)]*string{0: &s.ID, 1: &s.Label, 2: &s.Hostname, 3: &s.Status, 5: &s.OSTemplate, 6: &s.OS, 7: &s.IPv4, 8: &s.IPv6,
		9: &s.Location, 10: &s.ActionID, 15: &s.AccountID, 16: &s.NodeID, 17: &s.VMName, 19: &s.PowerState, 24: &s.InvoiceID}
	return rd.Object(serverKeys[:], func(i int) (ok bool) {
		if p := strings[i]; p != nil {
			*p, ok = rd.String()
			return ok
		}
		switch serverKeys[i] {
		case "plan":
			return rd.Object(serverPlanKeys, func(i int) (ok bool) {
				if i == 0 {
					s.Plan.Slug, ok = rd.String()
					return ok
				}
				return ReadPlanSize(rd, i-1, &s.Plan.VCPUs, &s.Plan.MemoryMiB, &s.Plan.DiskGiB)
			})
		case "created_at":
			s.CreatedAt, ok = rd.Time()
		case "updated_at":
			s.UpdatedAt, ok = rd.Time()
		case "terminated_at":
			s.TerminatedAt, ok = readTimePtr(rd)
		case "paid_until":
			s.PaidUntil, ok = readTimePtr(rd)
		case "addrs":
			s.Addrs = []ServerAddr{}
			return rd.Array(func() bool {
				var a ServerAddr
				ok := rd.Object(serverAddrKeys, func(i int) (ok bool) {
					switch i {
					case 0:
						a.Pool, ok = rd.String()
					case 1:
						ok = readPrefix(rd, &a.Unit)
					case 2:
						ok = readPrefix(rd, &a.Addr)
					default:
						a.Gateway, ok = rd.String()
					}
					return ok
				})
				s.Addrs = append(s.Addrs, a)
				return ok
			})
		case "monthly_usd_cents":
			var n int
			n, ok = rd.Int()
			s.MonthlyUsdCents = int64(n)
		case "renewal":
			s.Renewal = &Renewal{}
			return rd.Fields(renewalKeys, &s.Renewal.InvoiceID, &s.Renewal.PeriodStart, &s.Renewal.PeriodEnd)
		case "suspension":
			s.Suspension = &Suspension{}
			return rd.Fields(suspensionKeys, &s.Suspension.By, &s.Suspension.Reason, &s.Suspension.InvoiceID, &s.Suspension.At)
		}
		return ok // snapshots, ptrs, ptr_at: left to encoding/json
	})
}

// ReadPlanSize reads the i-th of a plan's sizes as json.Unmarshal reads
// them: 0 vcpus (a uint32), 1 memory_mib, 2 disk_gib (uint64s).
func ReadPlanSize(rd *plainjson.Reader, i int, vcpus *uint32, memoryMiB, diskGiB *uint64) (ok bool) {
	switch i {
	case 0:
		var n uint64
		n, ok = rd.Uint(32)
		*vcpus = uint32(n)
	case 1:
		*memoryMiB, ok = rd.Uint(64)
	default:
		*diskGiB, ok = rd.Uint(64)
	}
	return ok
}

// readPrefix reads a string into p through UnmarshalText, as json.Unmarshal
// does.
func readPrefix(rd *plainjson.Reader, p *netip.Prefix) bool {
	s, ok := rd.String()
	return ok && p.UnmarshalText([]byte(s)) == nil
}
