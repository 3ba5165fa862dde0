package epp

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/registrar"
	"github.com/hostplane/hostplane/internal/eppxml"
)

// normName is how names are sent: lower case, no trailing dot.
func normName(s string) string { return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".") }

func normNames(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if n := normName(s); n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// badAnswer is a success answer missing what the command returns.
func badAnswer(op, object, what string) error {
	return &registrar.Error{Kind: registrar.KindUnavailable, Op: op, Object: object, Reason: reasonBadAnswer, Err: errors.New(what)}
}

// local is a request refused before anything is sent.
func local(op, object string, code int, format string, a ...any) error {
	return &registrar.Error{Kind: registrar.KindRefused, Op: op, Object: object, Code: code,
		Reason: fmt.Sprintf(format, a...) + " (checked before sending)"}
}

func checkTRID(op, object, clTRID string) error {
	if err := registrar.ValidClTRID(clTRID); err != nil {
		return local(op, object, eppxml.CodeParamMissing, "%v", err)
	}
	return nil
}

// checkPeriod is checkTRID for a command that takes a period (create,
// renew): it must also be 1 to 10 years, the range EPP allows.
func checkPeriod(op, object, clTRID string, years int) error {
	if err := checkTRID(op, object, clTRID); err != nil {
		return err
	}
	if years < 1 || years > 10 {
		return local(op, object, eppxml.CodeValueRange, "years must be 1-10, got %d", years)
	}
	return nil
}

func tx(r *eppxml.Response) registrar.Tx {
	return registrar.Tx{ClTRID: r.TrID.ClTRID, SvTRID: r.TrID.SvTRID, Pending: r.Results[0].Code == eppxml.CodePending}
}

// parseTime reads an EPP dateTime (RFC 3339, fractional seconds allowed);
// an empty or malformed value is the zero time.
func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(s))
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

func newAuthCode() string {
	// 26 base32 characters from crypto/rand, with a digit and a symbol for
	// registries with composition rules.
	return rand.Text()[:20] + "-9a"
}

// delegation is names as host objects or attributes (Config.HostObjects).
func (c *Client) delegation(names []string) *eppxml.NS {
	if c.cfg.HostObjects && len(names) > 0 {
		return &eppxml.NS{HostObj: names}
	}
	return eppxml.HostAttrs(names)
}

// ensureHosts creates the host objects among names that do not exist yet
// (Config.HostObjects), each under a clTRID derived from the caller's and
// the host name, so a repeat of the caller's command repeats the same
// creations.
func (c *Client) ensureHosts(ctx context.Context, op, object, clTRID string, names []string) error {
	if !c.cfg.HostObjects || len(names) == 0 {
		return nil
	}
	resp, err := c.exchange(ctx, "host:check", strings.Join(names, ","), &eppxml.Command{
		Check: &eppxml.CheckCmd{Host: &eppxml.DomainNames{Names: names}}, ClTRID: c.queryID()}, false)
	if err != nil {
		return err
	}
	if resp.ResData == nil || resp.ResData.HostChk == nil {
		return badAnswer("host:check", strings.Join(names, ","), "answer has no host:chkData")
	}
	for _, cd := range resp.ResData.HostChk.CD {
		h := normName(cd.Name.Name)
		if !cd.Name.Avail || !slices.Contains(names, h) {
			continue // exists (ours or another registrar's: both can be delegated to)
		}
		sum := sha256.Sum256([]byte(clTRID + "\x00" + h))
		_, err := c.exchange(ctx, "host:create", h, &eppxml.Command{Create: &eppxml.CreateCmd{Host: &eppxml.HostCreate{Name: h}},
			ClTRID: "hh-" + hex.EncodeToString(sum[:12])}, true)
		if err != nil && registrar.KindOf(err) != registrar.KindExists {
			return retag(err, op, object)
		}
	}
	return nil
}

// Check implements registrar.Registrar.
func (c *Client) Check(ctx context.Context, names ...string) ([]registrar.CheckResult, error) {
	ns := normNames(names)
	out := make([]registrar.CheckResult, 0, len(ns))
	for chunk := range slices.Chunk(ns, 50) {
		got, err := query(ctx, c, "domain:check", strings.Join(chunk, ","), &eppxml.Command{
			Check: &eppxml.CheckCmd{Domain: &eppxml.DomainNames{Names: chunk}}},
			func(resp *eppxml.Response) ([]registrar.CheckResult, error) { return checkResults(resp, chunk) })
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	return out, nil
}

// checkResults reads a domain:check answer for names, in their order.
func checkResults(resp *eppxml.Response, names []string) ([]registrar.CheckResult, error) {
	if resp.ResData == nil || resp.ResData.DomainChk == nil {
		return nil, badAnswer("domain:check", strings.Join(names, ","), "answer has no domain:chkData")
	}
	by := map[string]registrar.CheckResult{}
	for _, cd := range resp.ResData.DomainChk.CD {
		n := normName(cd.Name.Name)
		by[n] = registrar.CheckResult{Name: n, Available: cd.Name.Avail, Reason: strings.TrimSpace(cd.Reason)}
	}
	out := make([]registrar.CheckResult, 0, len(names))
	for _, n := range names {
		r, ok := by[n]
		if !ok {
			return nil, badAnswer("domain:check", n, "answer does not mention the name")
		}
		if !r.Available && r.Reason == "" {
			r.Reason = "not available"
		}
		out = append(out, r)
	}
	return out, nil
}

// Register implements registrar.Registrar.
func (c *Client) Register(ctx context.Context, req registrar.RegisterRequest) (registrar.Domain, error) {
	const op = "domain:create"
	name := normName(req.Name)
	if err := checkPeriod(op, name, req.ClTRID, req.Years); err != nil {
		return registrar.Domain{}, err
	}
	auth := req.AuthCode
	if auth == "" {
		auth = newAuthCode()
	}
	ns := normNames(req.Nameservers)
	if err := c.ensureHosts(ctx, op, name, req.ClTRID, ns); err != nil {
		return registrar.Domain{}, err
	}
	cr := &eppxml.DomainCreate{Name: name, Period: &eppxml.Period{Unit: "y", Value: req.Years}, NS: c.delegation(ns),
		AuthInfo: eppxml.AuthInfo{PW: auth}}
	ct := req.Contacts
	if ct.Registrant != "" {
		cr.Registrant = ct.Registrant
		for _, x := range []struct{ typ, id string }{{"admin", ct.Admin}, {"tech", ct.Tech}, {"billing", ct.Billing}} {
			cr.Contacts = append(cr.Contacts, eppxml.DomainContact{Type: x.typ, ID: cmp.Or(x.id, ct.Registrant)})
		}
	}
	cmd := &eppxml.Command{Create: &eppxml.CreateCmd{Domain: cr}, ClTRID: req.ClTRID}
	if req.Privacy {
		cmd.Extension = &eppxml.Extension{PrivacyCreate: &eppxml.Privacy{Enabled: true}}
	}
	resp, err := c.exchange(ctx, op, name, cmd, true)
	if err != nil {
		return registrar.Domain{}, err
	}
	d := registrar.Domain{Tx: tx(resp), Name: name, Nameservers: ns, Sponsor: c.cfg.ClientID, Privacy: req.Privacy, AuthCode: auth,
		Status: []string{"ok"}}
	if cr.Registrant != "" {
		d.Contacts = registrar.Contacts{Registrant: ct.Registrant, Admin: cr.Contacts[0].ID, Tech: cr.Contacts[1].ID, Billing: cr.Contacts[2].ID}
	}
	if cd := resp.ResData; cd != nil && cd.DomainCre != nil {
		d.Created, d.Expires = parseTime(cd.DomainCre.CrDate), parseTime(cd.DomainCre.ExDate)
	}
	return d, nil
}

// Renew implements registrar.Registrar.
func (c *Client) Renew(ctx context.Context, req registrar.RenewRequest) (registrar.RenewResult, error) {
	const op = "domain:renew"
	name := normName(req.Name)
	if err := checkPeriod(op, name, req.ClTRID, req.Years); err != nil {
		return registrar.RenewResult{}, err
	}
	if req.CurrentExpiry.IsZero() {
		return registrar.RenewResult{}, local(op, name, eppxml.CodeParamMissing, "the current expiry is required")
	}
	resp, err := c.exchange(ctx, op, name, &eppxml.Command{Renew: &eppxml.RenewCmd{Domain: &eppxml.DomainRenew{
		Name: name, CurExpDate: req.CurrentExpiry.UTC().Format("2006-01-02"), Period: &eppxml.Period{Unit: "y", Value: req.Years}}},
		ClTRID: req.ClTRID}, true)
	if err != nil {
		return registrar.RenewResult{}, err
	}
	out := registrar.RenewResult{Tx: tx(resp)}
	if rd := resp.ResData; rd != nil && rd.DomainRen != nil {
		out.Expires = parseTime(rd.DomainRen.ExDate)
	}
	return out, nil
}

// Transfer implements registrar.Registrar.
func (c *Client) Transfer(ctx context.Context, req registrar.TransferRequest) (registrar.TransferResult, error) {
	const op = "domain:transfer"
	name := normName(req.Name)
	if err := checkTRID(op, name, req.ClTRID); err != nil {
		return registrar.TransferResult{}, err
	}
	if req.AuthCode == "" {
		return registrar.TransferResult{}, local(op, name, eppxml.CodeParamMissing, "the auth code is required")
	}
	t := &eppxml.DomainTransfer{Name: name, AuthInfo: &eppxml.AuthInfo{PW: req.AuthCode}}
	if req.Years > 0 {
		t.Period = &eppxml.Period{Unit: "y", Value: req.Years}
	}
	resp, err := c.exchange(ctx, op, name, &eppxml.Command{Transfer: &eppxml.TransferCmd{Op: "request", Domain: t}, ClTRID: req.ClTRID}, true)
	if err != nil {
		return registrar.TransferResult{}, err
	}
	out := registrar.TransferResult{Tx: tx(resp), Status: "pending"}
	if rd := resp.ResData; rd != nil && rd.DomainTrn != nil {
		out.Status, out.Expires = strings.TrimSpace(rd.DomainTrn.TrStatus), parseTime(rd.DomainTrn.ExDate)
	}
	return out, nil
}

// Info implements registrar.Registrar.
func (c *Client) Info(ctx context.Context, name string) (registrar.Domain, error) {
	name = normName(name)
	return query(ctx, c, "domain:info", name, &eppxml.Command{Info: &eppxml.InfoCmd{Domain: &eppxml.DomainInfo{
		Name: eppxml.HostsName{Hosts: "all", Name: name}}}}, func(resp *eppxml.Response) (registrar.Domain, error) { return domainInfo(resp, name) })
}

// domainInfo reads a domain:info answer.
func domainInfo(resp *eppxml.Response, name string) (registrar.Domain, error) {
	if resp.ResData == nil || resp.ResData.DomainInf == nil {
		return registrar.Domain{}, badAnswer("domain:info", name, "answer has no domain:infData")
	}
	inf := resp.ResData.DomainInf
	d := registrar.Domain{Name: normName(inf.Name), ROID: strings.TrimSpace(inf.ROID), Sponsor: strings.TrimSpace(inf.ClID),
		Nameservers: normNames(inf.NS.Names()), Hosts: normNames(inf.Host), Created: parseTime(inf.CrDate), Expires: parseTime(inf.ExDate), Updated: parseTime(inf.UpDate)}
	if len(d.Hosts) == 0 {
		d.Hosts = nil
	}
	d.Contacts.Registrant = strings.TrimSpace(inf.Registrant)
	for _, ct := range inf.Contacts {
		switch ct.Type {
		case "admin":
			d.Contacts.Admin = strings.TrimSpace(ct.ID)
		case "tech":
			d.Contacts.Tech = strings.TrimSpace(ct.ID)
		case "billing":
			d.Contacts.Billing = strings.TrimSpace(ct.ID)
		}
	}
	for _, s := range inf.Status {
		d.Status = append(d.Status, s.S)
		if s.S == "clientTransferProhibited" {
			d.Locked = true
		}
	}
	if inf.AuthInfo != nil {
		d.AuthCode = inf.AuthInfo.PW
	}
	if x := resp.Extension; x != nil && x.PrivacyInfo != nil {
		d.Privacy = x.PrivacyInfo.Enabled
	}
	if d.Name == "" {
		d.Name = name
	}
	return d, nil
}

// update sends a domain:update.
func (c *Client) update(ctx context.Context, clTRID string, u *eppxml.DomainUpdate, ext *eppxml.Extension) (registrar.Tx, error) {
	return c.command(ctx, "domain:update", u.Name, clTRID, &eppxml.Command{Update: &eppxml.UpdateCmd{Domain: u}, Extension: ext})
}

// command sends a mutating command under the caller's clTRID and answers
// its transaction ids.
func (c *Client) command(ctx context.Context, op, object, clTRID string, cmd *eppxml.Command) (registrar.Tx, error) {
	cmd.ClTRID = clTRID
	resp, err := c.exchange(ctx, op, object, cmd, true)
	if err != nil {
		return registrar.Tx{}, err
	}
	return tx(resp), nil
}

// query sends a read-only command under a generated clTRID and reads its
// answer with read.
func query[T any](ctx context.Context, c *Client, op, object string, cmd *eppxml.Command, read func(*eppxml.Response) (T, error)) (T, error) {
	cmd.ClTRID = c.queryID()
	resp, err := c.exchange(ctx, op, object, cmd, false)
	if err != nil {
		var none T
		return none, err
	}
	return read(resp)
}

// SetNameservers implements registrar.Registrar: it reads the delegation
// (domain:info) and sends the difference. When the registry already holds
// exactly Nameservers — a repeat of a change that was applied — nothing is
// sent and the Tx has no SvTRID.
func (c *Client) SetNameservers(ctx context.Context, req registrar.NameserversRequest) (registrar.Tx, error) {
	const op = "domain:update"
	name := normName(req.Name)
	if err := checkTRID(op, name, req.ClTRID); err != nil {
		return registrar.Tx{}, err
	}
	want := normNames(req.Nameservers)
	cur, err := c.Info(ctx, name)
	if err != nil {
		return registrar.Tx{}, err
	}
	var add, rem []string
	for _, h := range want {
		if !slices.Contains(cur.Nameservers, h) {
			add = append(add, h)
		}
	}
	for _, h := range cur.Nameservers {
		if !slices.Contains(want, h) {
			rem = append(rem, h)
		}
	}
	if len(add) == 0 && len(rem) == 0 {
		return registrar.Tx{ClTRID: req.ClTRID}, nil
	}
	if err := c.ensureHosts(ctx, op, name, req.ClTRID, add); err != nil {
		return registrar.Tx{}, err
	}
	u := &eppxml.DomainUpdate{Name: name}
	if len(add) > 0 {
		u.Add = &eppxml.DomainAddRem{NS: c.delegation(add)}
	}
	if len(rem) > 0 {
		u.Rem = &eppxml.DomainAddRem{NS: c.delegation(rem)}
	}
	return c.update(ctx, req.ClTRID, u, nil)
}

// SetLock implements registrar.Registrar (status clientTransferProhibited).
// When the lock is already as asked, nothing is sent.
func (c *Client) SetLock(ctx context.Context, req registrar.LockRequest) (registrar.Tx, error) {
	const op = "domain:update"
	name := normName(req.Name)
	if err := checkTRID(op, name, req.ClTRID); err != nil {
		return registrar.Tx{}, err
	}
	cur, err := c.Info(ctx, name)
	if err != nil {
		return registrar.Tx{}, err
	}
	if cur.Locked == req.Locked {
		return registrar.Tx{ClTRID: req.ClTRID}, nil
	}
	st := &eppxml.DomainAddRem{Status: []eppxml.Status{{S: "clientTransferProhibited"}}}
	u := &eppxml.DomainUpdate{Name: name}
	if req.Locked {
		u.Add = st
	} else {
		u.Rem = st
	}
	return c.update(ctx, req.ClTRID, u, nil)
}

// SetPrivacy implements registrar.Registrar through the privacy extension.
func (c *Client) SetPrivacy(ctx context.Context, req registrar.PrivacyRequest) (registrar.Tx, error) {
	name := normName(req.Name)
	if err := checkTRID("domain:update", name, req.ClTRID); err != nil {
		return registrar.Tx{}, err
	}
	return c.update(ctx, req.ClTRID, &eppxml.DomainUpdate{Name: name}, &eppxml.Extension{PrivacyUpdate: &eppxml.Privacy{Enabled: req.Enabled}})
}

// AuthCode implements registrar.Registrar: the auth code domain:info shows
// the sponsoring registrar.
func (c *Client) AuthCode(ctx context.Context, name string) (string, error) {
	d, err := c.Info(ctx, name)
	if err != nil {
		return "", err
	}
	if d.AuthCode == "" {
		return "", &registrar.Error{Kind: registrar.KindRefused, Op: "domain:info", Object: normName(name), Code: eppxml.CodeAuthorization,
			Reason: "the registry shows no auth code (the domain is sponsored by another registrar)"}
	}
	return d.AuthCode, nil
}

// SetAuthCode implements registrar.Registrar.
func (c *Client) SetAuthCode(ctx context.Context, req registrar.AuthCodeRequest) (registrar.Tx, error) {
	const op = "domain:update"
	name := normName(req.Name)
	if err := checkTRID(op, name, req.ClTRID); err != nil {
		return registrar.Tx{}, err
	}
	if req.AuthCode == "" {
		return registrar.Tx{}, local(op, name, eppxml.CodeParamMissing, "the new auth code is required")
	}
	return c.update(ctx, req.ClTRID, &eppxml.DomainUpdate{Name: name, Chg: &eppxml.DomainChg{AuthInfo: &eppxml.AuthInfo{PW: req.AuthCode}}}, nil)
}

// Delete implements registrar.Registrar.
func (c *Client) Delete(ctx context.Context, req registrar.DeleteRequest) (registrar.Tx, error) {
	const op = "domain:delete"
	name := normName(req.Name)
	if err := checkTRID(op, name, req.ClTRID); err != nil {
		return registrar.Tx{}, err
	}
	return c.command(ctx, op, name, req.ClTRID, &eppxml.Command{Delete: &eppxml.DeleteCmd{Domain: &eppxml.DomainName{Name: name}}})
}

func postalInfo(ct registrar.Contact) []eppxml.PostalInfo {
	return []eppxml.PostalInfo{{Type: "int", Name: ct.Name, Org: ct.Org,
		Addr: eppxml.Addr{Street: ct.Street, City: ct.City, SP: ct.SP, PC: ct.PC, CC: strings.ToUpper(ct.CC)}}}
}

// CreateContact implements registrar.Registrar.
func (c *Client) CreateContact(ctx context.Context, req registrar.ContactRequest) (registrar.Tx, error) {
	const op = "contact:create"
	ct := req.Contact
	if err := checkTRID(op, ct.ID, req.ClTRID); err != nil {
		return registrar.Tx{}, err
	}
	return c.command(ctx, op, ct.ID, req.ClTRID, &eppxml.Command{Create: &eppxml.CreateCmd{Contact: &eppxml.ContactCreate{
		ID: ct.ID, PostalInfo: postalInfo(ct), Voice: ct.Voice, Email: ct.Email, AuthInfo: eppxml.AuthInfo{PW: newAuthCode()}}}})
}

// UpdateContact implements registrar.Registrar.
func (c *Client) UpdateContact(ctx context.Context, req registrar.ContactRequest) (registrar.Tx, error) {
	const op = "contact:update"
	ct := req.Contact
	if err := checkTRID(op, ct.ID, req.ClTRID); err != nil {
		return registrar.Tx{}, err
	}
	return c.command(ctx, op, ct.ID, req.ClTRID, &eppxml.Command{Update: &eppxml.UpdateCmd{Contact: &eppxml.ContactUpdate{
		ID: ct.ID, Chg: &eppxml.ContactChg{PostalInfo: postalInfo(ct), Voice: &ct.Voice, Email: &ct.Email}}}})
}

// ContactInfo implements registrar.Registrar.
func (c *Client) ContactInfo(ctx context.Context, id string) (registrar.Contact, error) {
	return query(ctx, c, "contact:info", id, &eppxml.Command{Info: &eppxml.InfoCmd{Contact: &eppxml.ContactRef{ID: id}}},
		func(resp *eppxml.Response) (registrar.Contact, error) { return contactInfo(resp, id) })
}

func contactInfo(resp *eppxml.Response, id string) (registrar.Contact, error) {
	if resp.ResData == nil || resp.ResData.ContactInf == nil {
		return registrar.Contact{}, badAnswer("contact:info", id, "answer has no contact:infData")
	}
	inf := resp.ResData.ContactInf
	out := registrar.Contact{ID: strings.TrimSpace(inf.ID), Voice: strings.TrimSpace(inf.Voice), Email: strings.TrimSpace(inf.Email)}
	// Prefer the internationalized (ASCII) form.
	var pi *eppxml.PostalInfo
	for i := range inf.PostalInfo {
		if pi == nil || inf.PostalInfo[i].Type == "int" {
			pi = &inf.PostalInfo[i]
		}
	}
	if pi != nil {
		out.Name, out.Org = pi.Name, pi.Org
		out.Street, out.City, out.SP, out.PC, out.CC = pi.Addr.Street, pi.Addr.City, pi.Addr.SP, pi.Addr.PC, pi.Addr.CC
	}
	return out, nil
}

// Poll implements registrar.Registrar.
func (c *Client) Poll(ctx context.Context) (*registrar.Message, error) {
	return query(ctx, c, "poll", "req", &eppxml.Command{Poll: &eppxml.Poll{Op: "req"}}, pollMessage)
}

func pollMessage(resp *eppxml.Response) (*registrar.Message, error) {
	if resp.Results[0].Code == eppxml.CodeNoMessages {
		return nil, nil
	}
	q := resp.MsgQ
	if q == nil || q.ID == "" {
		return nil, badAnswer("poll", "req", "answer has no msgQ")
	}
	m := &registrar.Message{ID: strings.TrimSpace(q.ID), Queued: parseTime(q.QDate), Text: strings.TrimSpace(q.Msg), Count: q.Count}
	if rd := resp.ResData; rd != nil && rd.DomainTrn != nil {
		m.Domain, m.TransferStatus = normName(rd.DomainTrn.Name), strings.TrimSpace(rd.DomainTrn.TrStatus)
	}
	return m, nil
}

// Ack implements registrar.Registrar.
func (c *Client) Ack(ctx context.Context, msgID string) error {
	_, err := c.exchange(ctx, "poll", msgID, &eppxml.Command{Poll: &eppxml.Poll{Op: "ack", MsgID: msgID}, ClTRID: c.queryID()}, true)
	return err
}

// hostAddrs is addrs as glue addresses with their ip attribute, canonical
// (netip); one that does not parse is refused before anything is sent.
func hostAddrs(op, name string, addrs []string) ([]eppxml.HostAddr, error) {
	out := make([]eppxml.HostAddr, 0, len(addrs))
	for _, a := range addrs {
		ip, err := netip.ParseAddr(strings.TrimSpace(a))
		if err != nil || ip.Zone() != "" {
			return nil, local(op, name, eppxml.CodeValueSyntax, "glue address %q is not an IP address", a)
		}
		ip = ip.Unmap()
		v := "v4"
		if ip.Is6() {
			v = "v6"
		}
		if !slices.ContainsFunc(out, func(h eppxml.HostAddr) bool { return h.Addr == ip.String() }) {
			out = append(out, eppxml.HostAddr{IP: v, Addr: ip.String()})
		}
	}
	return out, nil
}

// noHostObjects refuses a host object command of a client that delegates
// with host attributes (Config.HostObjects off): it did not log in to the
// host mapping.
func (c *Client) noHostObjects(op, name string) error {
	if c.cfg.HostObjects {
		return nil
	}
	return local(op, name, eppxml.CodePolicy, "this registrar delegates with host attributes: host objects need the registry's host mapping (registrar-epp-host-objects)")
}

// HostObjects implements registrar.Registrar (Config.HostObjects).
func (c *Client) HostObjects() bool { return c.cfg.HostObjects }

// HostInfo implements registrar.Registrar.
func (c *Client) HostInfo(ctx context.Context, name string) (registrar.Host, error) {
	name = normName(name)
	if err := c.noHostObjects("host:info", name); err != nil {
		return registrar.Host{}, err
	}
	return query(ctx, c, "host:info", name, &eppxml.Command{Info: &eppxml.InfoCmd{Host: &eppxml.DomainName{Name: name}}},
		func(resp *eppxml.Response) (registrar.Host, error) { return hostInfo(resp, name) })
}

// hostInfo reads a host:info answer.
func hostInfo(resp *eppxml.Response, name string) (registrar.Host, error) {
	if resp.ResData == nil || resp.ResData.HostInf == nil {
		return registrar.Host{}, badAnswer("host:info", name, "answer has no host:infData")
	}
	inf := resp.ResData.HostInf
	h := registrar.Host{Name: cmp.Or(normName(inf.Name), name)}
	for _, a := range inf.Addr {
		ip, err := netip.ParseAddr(strings.TrimSpace(a.Addr))
		if err != nil {
			return registrar.Host{}, badAnswer("host:info", name, fmt.Sprintf("glue address %q is not an IP address", a.Addr))
		}
		h.Addrs = append(h.Addrs, ip.Unmap().String())
	}
	for _, s := range inf.Status {
		h.Linked = h.Linked || s.S == "linked"
	}
	return h, nil
}

// SetHost implements registrar.Registrar: it reads the host (host:info)
// and creates it with its addresses, or sends the difference, under
// req.ClTRID. When the registry already holds exactly req.Addrs — a repeat
// of a call that was applied — nothing is sent and the Tx has no SvTRID.
func (c *Client) SetHost(ctx context.Context, req registrar.HostRequest) (registrar.Tx, error) {
	name := normName(req.Name)
	if err := checkTRID("host:update", name, req.ClTRID); err != nil {
		return registrar.Tx{}, err
	}
	if err := c.noHostObjects("host:update", name); err != nil {
		return registrar.Tx{}, err
	}
	want, err := hostAddrs("host:update", name, req.Addrs)
	if err != nil {
		return registrar.Tx{}, err
	}
	cur, err := c.HostInfo(ctx, name)
	if registrar.KindOf(err) == registrar.KindNotFound {
		return c.command(ctx, "host:create", name, req.ClTRID, &eppxml.Command{Create: &eppxml.CreateCmd{Host: &eppxml.HostCreate{Name: name, Addr: want}}})
	} else if err != nil {
		return registrar.Tx{}, err
	}
	u := &eppxml.HostUpdate{Name: name}
	for _, a := range want {
		if !slices.Contains(cur.Addrs, a.Addr) {
			u.Add = cmp.Or(u.Add, &eppxml.HostAddRem{})
			u.Add.Addr = append(u.Add.Addr, a)
		}
	}
	// cur.Addrs are canonical already (hostInfo parsed them): netip's text,
	// in which only IPv6 has a colon.
	for _, a := range cur.Addrs {
		gone := !slices.ContainsFunc(want, func(w eppxml.HostAddr) bool { return w.Addr == a })
		if gone && (u.Rem == nil || !slices.ContainsFunc(u.Rem.Addr, func(r eppxml.HostAddr) bool { return r.Addr == a })) {
			v := "v4"
			if strings.Contains(a, ":") {
				v = "v6"
			}
			u.Rem = cmp.Or(u.Rem, &eppxml.HostAddRem{})
			u.Rem.Addr = append(u.Rem.Addr, eppxml.HostAddr{IP: v, Addr: a})
		}
	}
	if u.Add == nil && u.Rem == nil {
		return registrar.Tx{ClTRID: req.ClTRID}, nil
	}
	return c.command(ctx, "host:update", name, req.ClTRID, &eppxml.Command{Update: &eppxml.UpdateCmd{Host: u}})
}

// DeleteHost implements registrar.Registrar. A host the registry does not
// hold (a repeat of a delete that was applied) sends nothing.
func (c *Client) DeleteHost(ctx context.Context, req registrar.DeleteRequest) (registrar.Tx, error) {
	const op = "host:delete"
	name := normName(req.Name)
	if err := checkTRID(op, name, req.ClTRID); err != nil {
		return registrar.Tx{}, err
	}
	if err := c.noHostObjects(op, name); err != nil {
		return registrar.Tx{}, err
	}
	if _, err := c.HostInfo(ctx, name); registrar.KindOf(err) == registrar.KindNotFound {
		return registrar.Tx{ClTRID: req.ClTRID}, nil
	} else if err != nil {
		return registrar.Tx{}, err
	}
	return c.command(ctx, op, name, req.ClTRID, &eppxml.Command{Delete: &eppxml.DeleteCmd{Host: &eppxml.DomainName{Name: name}}})
}
