package store

import (
	"strconv"
	"time"

	"github.com/hostplane/hostplane/internal/plainjson"
)

// EncodeServer writes s as json.Marshal writes it, without reflection, or
// gives up (ok false: use encoding/json) when s holds snapshots or PTRs, an
// address whose prefixes are not valid, or a time that is not UTC within
// years 0-9999. A bought server is written by its order and again by its
// provisioning's end on every replica (TestServerEncodingMatchesEncodingJSON
// and FuzzEncodeServer hold it to encoding/json's bytes).
func EncodeServer(s *Server) ([]byte, bool) {
	if len(s.Snapshots) > 0 || len(s.PTRs) > 0 || len(s.PTRAt) > 0 {
		return nil, false
	}
	n := 512 + len(s.ID) + len(s.Label) + len(s.Hostname) + len(s.VMName) + len(s.InvoiceID)
	for i := range s.Addrs {
		if !s.Addrs[i].Unit.IsValid() || !s.Addrs[i].Addr.IsValid() {
			return nil, false
		}
		n += 128 + len(s.Addrs[i].Pool) + len(s.Addrs[i].Gateway)
	}
	b := make([]byte, 0, n)
	b = append(b, `{"id":`...)
	b = plainjson.AppendJSONString(b, s.ID)
	b = append(b, `,"label":`...)
	b = plainjson.AppendJSONString(b, s.Label)
	b = append(b, `,"hostname":`...)
	b = plainjson.AppendJSONString(b, s.Hostname)
	b = append(b, `,"status":`...)
	b = plainjson.AppendJSONString(b, s.Status)
	b = append(b, `,"plan":{"slug":`...)
	b = plainjson.AppendJSONString(b, s.Plan.Slug)
	b = append(b, `,"vcpus":`...)
	b = strconv.AppendUint(b, uint64(s.Plan.VCPUs), 10)
	b = append(b, `,"memory_mib":`...)
	b = strconv.AppendUint(b, s.Plan.MemoryMiB, 10)
	b = append(b, `,"disk_gib":`...)
	b = strconv.AppendUint(b, s.Plan.DiskGiB, 10)
	b = append(b, `},"os_template":`...)
	b = plainjson.AppendJSONString(b, s.OSTemplate)
	b = append(b, `,"os":`...)
	b = plainjson.AppendJSONString(b, s.OS)
	b = appendOmitEmpty(b, `,"ipv4":`, s.IPv4)
	b = appendOmitEmpty(b, `,"ipv6":`, s.IPv6)
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
	if !ok {
		return nil, false
	}
	b = append(b, `,"account_id":`...)
	b = plainjson.AppendJSONString(b, s.AccountID)
	b = append(b, `,"node_id":`...)
	b = plainjson.AppendJSONString(b, s.NodeID)
	b = append(b, `,"vm_name":`...)
	b = plainjson.AppendJSONString(b, s.VMName)
	b = appendOmitEmpty(b, `,"power_state":`, s.PowerState)
	if len(s.Addrs) > 0 {
		b = append(b, `,"addrs":[`...)
		for i := range s.Addrs {
			a := &s.Addrs[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"pool":`...)
			b = plainjson.AppendJSONString(b, a.Pool)
			// A valid prefix's text is digits, hex, '.', ':' and '/'.
			b = append(b, `,"unit":"`...)
			b, _ = a.Unit.AppendText(b)
			b = append(b, `","addr":"`...)
			b, _ = a.Addr.AppendText(b)
			b = append(b, '"')
			b = appendOmitEmpty(b, `,"gateway":`, a.Gateway)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if s.MonthlyUsdCents != 0 {
		b = append(b, `,"monthly_usd_cents":`...)
		b = strconv.AppendInt(b, s.MonthlyUsdCents, 10)
	}
	b = appendOmitEmpty(b, `,"invoice_id":`, s.InvoiceID)
	if r := s.Renewal; r != nil {
		b = append(b, `,"renewal":{"invoice_id":`...)
		b = plainjson.AppendJSONString(b, r.InvoiceID)
		b = append(b, `,"period_start":`...)
		if b, ok = plainjson.AppendTime(b, r.PeriodStart); ok {
			b = append(b, `,"period_end":`...)
			b, ok = plainjson.AppendTime(b, r.PeriodEnd)
		}
		b = append(b, '}')
	}
	if u := s.Suspension; u != nil && ok {
		b = append(b, `,"suspension":{"by":`...)
		b = plainjson.AppendJSONString(b, u.By)
		b = append(b, `,"reason":`...)
		b = plainjson.AppendJSONString(b, u.Reason)
		b = appendOmitEmpty(b, `,"invoice_id":`, u.InvoiceID)
		b = append(b, `,"at":`...)
		b, ok = plainjson.AppendTime(b, u.At)
		b = append(b, '}')
	}
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
	return plainjson.AppendJSONString(append(b, key...), s)
}
