package registrar

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Memory is an in-memory registry for unit tests of pure logic (the
// coordinator's intent/commit/rollback bookkeeping, say). It keeps the
// interface's contract — a repeated ClTRID is applied once and answers the
// original result — and has simple failure injection. Tests of the
// registry path itself use the EPP client against tests/eppd instead.
type Memory struct {
	mu       sync.Mutex
	now      func() time.Time
	tlds     []string
	domains  map[string]*Domain
	contacts map[string]Contact
	hosts    map[string][]string
	seen     map[string]memResult // ClTRID → first answer
	msgs     []Message
	nextID   int

	down      bool
	failNext  int
	unknownNx int
	applied   int
}

type memResult struct {
	op  string
	val any
	err error
}

// NewMemory returns an empty registry offering the given TLDs (without
// dots, e.g. "test", "example"); now is its clock (time.Now when nil).
func NewMemory(now func() time.Time, tlds ...string) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{now: now, tlds: tlds, domains: map[string]*Domain{}, contacts: map[string]Contact{}, seen: map[string]memResult{}}
}

// SetDown makes every call fail with KindUnavailable (true) or serve again.
func (m *Memory) SetDown(down bool) { m.mu.Lock(); m.down = down; m.mu.Unlock() }

// FailNext makes the next n mutating calls fail with KindUnavailable
// without applying them.
func (m *Memory) FailNext(n int) { m.mu.Lock(); m.failNext = n; m.mu.Unlock() }

// LoseNextAnswers makes the next n mutating calls apply and then answer
// KindUnknown, as when the connection drops after the command was sent.
func (m *Memory) LoseNextAnswers(n int) { m.mu.Lock(); m.unknownNx = n; m.mu.Unlock() }

// Applied counts the mutating commands applied (repeats of a ClTRID not
// counted).
func (m *Memory) Applied() int { m.mu.Lock(); defer m.mu.Unlock(); return m.applied }

func (m *Memory) offered(name string) bool {
	i := strings.IndexByte(name, '.')
	return i > 0 && slices.Contains(m.tlds, name[i+1:])
}

// mutated is mutate with the answer of type T (apply's, or the one recorded
// for clTRID).
func mutated[T any](m *Memory, op, object, clTRID string, apply func() (any, error)) (T, error) {
	v, err := m.mutate(op, object, clTRID, apply)
	if err != nil {
		var none T
		return none, err
	}
	return v.(T), nil
}

// mutatedDomain is mutated applied to the domain name (lower-cased) holds:
// one it does not hold is the registry's "object does not exist".
func mutatedDomain[T any](m *Memory, op, name, clTRID string, apply func(d *Domain) (any, error)) (T, error) {
	name = strings.ToLower(name)
	return mutated[T](m, op, name, clTRID, func() (any, error) {
		d, err := m.domain(name)
		if err != nil {
			return nil, err
		}
		return apply(d)
	})
}

// mutate runs apply once per ClTRID under the lock.
func (m *Memory) mutate(op, object, clTRID string, apply func() (any, error)) (any, error) {
	if err := ValidClTRID(clTRID); err != nil {
		return nil, &Error{Kind: KindRefused, Op: op, Object: object, Code: 2005, Reason: err.Error()}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return nil, &Error{Kind: KindUnavailable, Op: op, Object: object, Reason: "registry down"}
	}
	if r, ok := m.seen[clTRID]; ok {
		if r.op != op {
			return nil, &Error{Kind: KindRefused, Op: op, Object: object, Code: 2306, Reason: "clTRID " + clTRID + " was used for " + r.op}
		}
		return r.val, r.err
	}
	if m.failNext > 0 {
		m.failNext--
		return nil, &Error{Kind: KindUnavailable, Op: op, Object: object, Code: 2400, Reason: "command failed (injected)"}
	}
	val, err := apply()
	if e, ok := err.(*Error); ok {
		e.Op, e.Object, e.ClTRID = op, object, clTRID
	}
	m.seen[clTRID] = memResult{op: op, val: val, err: err}
	if err == nil {
		m.applied++
	}
	if m.unknownNx > 0 {
		m.unknownNx--
		return nil, &Error{Kind: KindUnknown, Op: op, Object: object, Reason: "answer lost (injected)"}
	}
	return val, err
}

func (m *Memory) read(op string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return &Error{Kind: KindUnavailable, Op: op, Reason: "registry down"}
	}
	return nil
}

func (m *Memory) domain(name string) (*Domain, error) {
	d, ok := m.domains[strings.ToLower(name)]
	if !ok {
		return nil, &Error{Kind: KindNotFound, Code: 2303, Reason: "object does not exist"}
	}
	return d, nil
}

func (m *Memory) tx(clTRID string) Tx {
	m.nextID++
	return Tx{ClTRID: clTRID, SvTRID: fmt.Sprintf("MEM-%d", m.nextID)}
}

// Check implements Registrar.
func (m *Memory) Check(ctx context.Context, names ...string) ([]CheckResult, error) {
	if err := m.read("domain:check"); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]CheckResult, 0, len(names))
	for _, n := range names {
		n = strings.ToLower(n)
		r := CheckResult{Name: n, Available: true}
		if !m.offered(n) {
			r.Available, r.Reason = false, "tld not offered"
		} else if _, ok := m.domains[n]; ok {
			r.Available, r.Reason = false, "registered"
		}
		out = append(out, r)
	}
	return out, nil
}

// Register implements Registrar.
func (m *Memory) Register(ctx context.Context, req RegisterRequest) (Domain, error) {
	name := strings.ToLower(req.Name)
	return mutated[Domain](m, "domain:create", name, req.ClTRID, func() (any, error) {
		if !m.offered(name) {
			return nil, &Error{Kind: KindRefused, Code: 2306, Reason: "tld not offered"}
		}
		if _, ok := m.domains[name]; ok {
			return nil, &Error{Kind: KindExists, Code: 2302, Reason: "object exists"}
		}
		if req.Years < 1 || req.Years > 10 {
			return nil, &Error{Kind: KindRefused, Code: 2004, Reason: "period must be 1-10 years"}
		}
		now := m.now().UTC()
		d := &Domain{Tx: m.tx(req.ClTRID), Name: name, ROID: fmt.Sprintf("D%d-MEM", m.nextID), Status: []string{"ok"},
			Contacts: req.Contacts, Nameservers: slices.Clone(req.Nameservers), Sponsor: "memory",
			Created: now, Expires: now.AddDate(req.Years, 0, 0), Privacy: req.Privacy, AuthCode: req.AuthCode}
		m.domains[name] = d
		return *d, nil
	})
}

// Renew implements Registrar.
func (m *Memory) Renew(ctx context.Context, req RenewRequest) (RenewResult, error) {
	return mutatedDomain[RenewResult](m, "domain:renew", req.Name, req.ClTRID, func(d *Domain) (any, error) {
		if !sameDate(d.Expires, req.CurrentExpiry) {
			return nil, &Error{Kind: KindRefused, Code: 2306, Reason: "curExpDate is not the current expiry date"}
		}
		d.Expires = d.Expires.AddDate(req.Years, 0, 0)
		return RenewResult{Tx: m.tx(req.ClTRID), Expires: d.Expires}, nil
	})
}

func sameDate(a, b time.Time) bool {
	a, b = a.UTC(), b.UTC()
	return a.Year() == b.Year() && a.YearDay() == b.YearDay()
}

// Transfer implements Registrar: a correct auth code moves the domain at
// once (serverApproved).
func (m *Memory) Transfer(ctx context.Context, req TransferRequest) (TransferResult, error) {
	return mutatedDomain[TransferResult](m, "domain:transfer", req.Name, req.ClTRID, func(d *Domain) (any, error) {
		if d.AuthCode == "" || d.AuthCode != req.AuthCode {
			return nil, &Error{Kind: KindRefused, Code: 2202, Reason: "invalid authorization information"}
		}
		if d.Locked {
			return nil, &Error{Kind: KindRefused, Code: 2304, Reason: "object status prohibits operation"}
		}
		years := max(req.Years, 1)
		d.Expires = d.Expires.AddDate(years, 0, 0)
		return TransferResult{Tx: m.tx(req.ClTRID), Status: "serverApproved", Expires: d.Expires}, nil
	})
}

// Info implements Registrar.
func (m *Memory) Info(ctx context.Context, name string) (Domain, error) {
	if err := m.read("domain:info"); err != nil {
		return Domain{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	d, err := m.domain(name)
	if err != nil {
		err.(*Error).Op, err.(*Error).Object = "domain:info", name
		return Domain{}, err
	}
	out := *d
	out.Tx = Tx{}
	out.Nameservers = slices.Clone(d.Nameservers)
	out.Status = slices.Clone(d.Status)
	return out, nil
}

func (m *Memory) update(op string, clTRID, name string, f func(d *Domain) error) (Tx, error) {
	return mutatedDomain[Tx](m, op, name, clTRID, func(d *Domain) (any, error) {
		if err := f(d); err != nil {
			return nil, err
		}
		d.Updated = m.now().UTC()
		return m.tx(clTRID), nil
	})
}

// SetNameservers implements Registrar.
func (m *Memory) SetNameservers(ctx context.Context, req NameserversRequest) (Tx, error) {
	return m.update("domain:update", req.ClTRID, req.Name, func(d *Domain) error {
		d.Nameservers = slices.Clone(req.Nameservers)
		return nil
	})
}

// SetLock implements Registrar.
func (m *Memory) SetLock(ctx context.Context, req LockRequest) (Tx, error) {
	return m.update("domain:update", req.ClTRID, req.Name, func(d *Domain) error {
		d.Locked = req.Locked
		d.Status = slices.DeleteFunc(d.Status, func(s string) bool { return s == "clientTransferProhibited" || s == "ok" })
		if req.Locked {
			d.Status = append(d.Status, "clientTransferProhibited")
		}
		if len(d.Status) == 0 {
			d.Status = []string{"ok"}
		}
		return nil
	})
}

// SetPrivacy implements Registrar.
func (m *Memory) SetPrivacy(ctx context.Context, req PrivacyRequest) (Tx, error) {
	return m.update("domain:update", req.ClTRID, req.Name, func(d *Domain) error {
		d.Privacy = req.Enabled
		return nil
	})
}

// AuthCode implements Registrar.
func (m *Memory) AuthCode(ctx context.Context, name string) (string, error) {
	d, err := m.Info(ctx, name)
	return d.AuthCode, err
}

// SetAuthCode implements Registrar.
func (m *Memory) SetAuthCode(ctx context.Context, req AuthCodeRequest) (Tx, error) {
	return m.update("domain:update", req.ClTRID, req.Name, func(d *Domain) error {
		d.AuthCode = req.AuthCode
		return nil
	})
}

// Delete implements Registrar.
func (m *Memory) Delete(ctx context.Context, req DeleteRequest) (Tx, error) {
	name := strings.ToLower(req.Name)
	return mutatedDomain[Tx](m, "domain:delete", name, req.ClTRID, func(*Domain) (any, error) {
		delete(m.domains, name)
		return m.tx(req.ClTRID), nil
	})
}

// SetHost implements Registrar.
func (m *Memory) SetHost(ctx context.Context, req HostRequest) (Tx, error) {
	name := strings.ToLower(req.Name)
	return mutated[Tx](m, "host:update", name, req.ClTRID, func() (any, error) {
		if m.hosts == nil {
			m.hosts = map[string][]string{}
		}
		m.hosts[name] = slices.Clone(req.Addrs)
		return m.tx(req.ClTRID), nil
	})
}

// DeleteHost implements Registrar: refused (2305) while a domain delegates
// to the host.
func (m *Memory) DeleteHost(ctx context.Context, req DeleteRequest) (Tx, error) {
	name := strings.ToLower(req.Name)
	return mutated[Tx](m, "host:delete", name, req.ClTRID, func() (any, error) {
		for _, d := range m.domains {
			if slices.Contains(d.Nameservers, name) {
				return nil, &Error{Kind: KindRefused, Code: 2305, Reason: "host " + name + " is a name server of " + d.Name}
			}
		}
		delete(m.hosts, name)
		return m.tx(req.ClTRID), nil
	})
}

// HostObjects implements Registrar: the memory registry keeps hosts.
func (m *Memory) HostObjects() bool { return true }

// HostInfo implements Registrar.
func (m *Memory) HostInfo(ctx context.Context, name string) (Host, error) {
	name = strings.ToLower(name)
	return readObject(m, "host:info", name, func() (Host, bool) {
		addrs, ok := m.hosts[name]
		h := Host{Name: name, Addrs: slices.Clone(addrs)}
		for _, d := range m.domains {
			h.Linked = h.Linked || slices.Contains(d.Nameservers, name)
		}
		return h, ok
	})
}

// readObject is a read-only command's answer: what get finds under the
// lock, or the registry's "object does not exist".
func readObject[T any](m *Memory, op, object string, get func() (T, bool)) (T, error) {
	var none T
	if err := m.read(op); err != nil {
		return none, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := get()
	if !ok {
		return none, &Error{Kind: KindNotFound, Op: op, Object: object, Code: 2303, Reason: "object does not exist"}
	}
	return v, nil
}

// CreateContact implements Registrar.
func (m *Memory) CreateContact(ctx context.Context, req ContactRequest) (Tx, error) {
	return mutated[Tx](m, "contact:create", req.Contact.ID, req.ClTRID, func() (any, error) {
		if _, ok := m.contacts[req.Contact.ID]; ok {
			return nil, &Error{Kind: KindExists, Code: 2302, Reason: "object exists"}
		}
		m.contacts[req.Contact.ID] = req.Contact
		return m.tx(req.ClTRID), nil
	})
}

// UpdateContact implements Registrar.
func (m *Memory) UpdateContact(ctx context.Context, req ContactRequest) (Tx, error) {
	return mutated[Tx](m, "contact:update", req.Contact.ID, req.ClTRID, func() (any, error) {
		if _, ok := m.contacts[req.Contact.ID]; !ok {
			return nil, &Error{Kind: KindNotFound, Code: 2303, Reason: "object does not exist"}
		}
		m.contacts[req.Contact.ID] = req.Contact
		return m.tx(req.ClTRID), nil
	})
}

// ContactInfo implements Registrar.
func (m *Memory) ContactInfo(ctx context.Context, id string) (Contact, error) {
	return readObject(m, "contact:info", id, func() (Contact, bool) { c, ok := m.contacts[id]; return c, ok })
}

// Poll implements Registrar (the memory registry queues no messages unless
// a test adds them with Queue).
func (m *Memory) Poll(ctx context.Context) (*Message, error) {
	if err := m.read("poll"); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.msgs) == 0 {
		return nil, nil
	}
	msg := m.msgs[0]
	msg.Count = len(m.msgs)
	return &msg, nil
}

// Queue adds a poll message.
func (m *Memory) Queue(msg Message) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nextID++
	if msg.ID == "" {
		msg.ID = fmt.Sprint(m.nextID)
	}
	m.msgs = append(m.msgs, msg)
}

// Ack implements Registrar.
func (m *Memory) Ack(ctx context.Context, msgID string) error {
	if err := m.read("poll"); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	i := slices.IndexFunc(m.msgs, func(x Message) bool { return x.ID == msgID })
	if i < 0 {
		return &Error{Kind: KindNotFound, Op: "poll", Object: msgID, Code: 2303, Reason: "message not found"}
	}
	m.msgs = slices.Delete(m.msgs, i, i+1)
	return nil
}

// Close implements Registrar.
func (m *Memory) Close() error { return nil }

var _ Registrar = (*Memory)(nil)
