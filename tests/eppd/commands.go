package eppd

import (
	"cmp"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hostplane/hostplane/internal/eppxml"
	bolt "go.etcd.io/bbolt"
)

// eppErr is a refusal answered with an EPP result code.
type eppErr struct {
	code   int
	reason string
}

func (e *eppErr) Error() string { return fmt.Sprintf("%d %s", e.code, e.reason) }

func refuse(code int, format string, a ...any) error {
	return &eppErr{code, fmt.Sprintf(format, a...)}
}

// answer is a response before its transaction ids are added.
type answer struct {
	code    int
	reason  string
	resData *eppxml.ResData
	ext     *eppxml.Extension
	msgQ    *eppxml.MsgQ
}

var querySeq atomic.Uint64

// response builds the response document.
func response(a answer, clTRID, svTRID string) *eppxml.EPP {
	if a.code == 0 {
		a.code = eppxml.CodeOK
	}
	r := eppxml.Result{Code: a.code, Msg: eppxml.Message(a.code)}
	if a.reason != "" {
		r.ExtValue = []eppxml.ExtValue{{Reason: a.reason}}
	}
	return &eppxml.EPP{Response: &eppxml.Response{Results: []eppxml.Result{r}, MsgQ: a.msgQ, ResData: a.resData,
		Extension: a.ext, TrID: eppxml.TrID{ClTRID: clTRID, SvTRID: svTRID}}}
}

func querySvTRID() string { return fmt.Sprintf("EPPD-Q%d", querySeq.Add(1)) }

func (ss *session) reply(a answer, clTRID string) []byte {
	b, err := eppxml.Marshal(response(a, clTRID, querySvTRID()))
	if err != nil {
		ss.srv.log.Error("marshal", "err", err)
		return nil
	}
	return b
}

// handle answers one frame: the bytes to send (nil: none) and whether the
// session goes on.
func (ss *session) handle(frame []byte) ([]byte, bool) {
	s := ss.srv
	e, err := eppxml.Unmarshal(frame)
	if err != nil {
		return ss.reply(answer{code: eppxml.CodeSyntax, reason: err.Error()}, ""), true
	}
	if e.Hello != nil {
		b, _ := eppxml.Marshal(s.greeting())
		return b, true
	}
	c := e.Command
	if c == nil {
		return ss.reply(answer{code: eppxml.CodeSyntax, reason: "expected <hello> or <command>"}, ""), true
	}
	if c.Login != nil {
		return ss.login(c)
	}
	if ss.clID == "" {
		return ss.reply(answer{code: eppxml.CodeUseError, reason: "log in first"}, c.ClTRID), true
	}
	if c.Logout != nil {
		return ss.reply(answer{code: eppxml.CodeBye}, c.ClTRID), false
	}
	f := s.takeFault(verbOf(c))
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	switch {
	case f.dropBefore:
		s.log.Info("injected: connection dropped before the command", "clid", ss.clID, "cltrid", c.ClTRID)
		return nil, false
	case f.failCode != 0:
		s.log.Info("injected: command failed", "clid", ss.clID, "cltrid", c.ClTRID, "code", f.failCode)
		return ss.reply(answer{code: f.failCode, reason: "injected failure"}, c.ClTRID), f.failCode < 2500
	}
	out := ss.dispatch(c)
	if f.dropAfter {
		s.log.Info("injected: connection dropped after the command", "clid", ss.clID, "cltrid", c.ClTRID)
		return nil, false
	}
	return out, true
}

func (ss *session) login(c *eppxml.Command) ([]byte, bool) {
	s, l := ss.srv, c.Login
	if ss.clID != "" {
		return ss.reply(answer{code: eppxml.CodeUseError, reason: "already logged in"}, c.ClTRID), true
	}
	if l.Options.Version != "1.0" {
		return ss.reply(answer{code: eppxml.CodeUnimplVersion, reason: "version 1.0 only"}, c.ClTRID), true
	}
	if pw, ok := s.cfg.Clients[l.ClID]; !ok || pw != l.PW {
		ss.fails++
		s.log.Info("login refused", "clid", l.ClID, "remote", ss.raw.RemoteAddr())
		if ss.fails >= 3 {
			return ss.reply(answer{code: eppxml.CodeAuthClosing}, c.ClTRID), false
		}
		return ss.reply(answer{code: eppxml.CodeAuthentication}, c.ClTRID), true
	}
	if l.NewPW != "" {
		return ss.reply(answer{code: eppxml.CodeUnimplOption, reason: "password change is not supported"}, c.ClTRID), true
	}
	for _, u := range l.Svcs.ObjURI {
		if u != eppxml.NSDomain && u != eppxml.NSContact && u != eppxml.NSHost {
			return ss.reply(answer{code: eppxml.CodeUnimplService, reason: "object " + u + " is not offered"}, c.ClTRID), true
		}
	}
	if l.Svcs.SvcExtension != nil {
		for _, u := range l.Svcs.SvcExtension.ExtURI {
			if u != eppxml.NSPrivacy {
				return ss.reply(answer{code: eppxml.CodeUnimplExtension, reason: "extension " + u + " is not offered"}, c.ClTRID), true
			}
			ss.privacy = true
		}
	}
	ss.clID = l.ClID
	s.log.Info("login", "clid", l.ClID, "remote", ss.raw.RemoteAddr())
	return ss.reply(answer{}, c.ClTRID), true
}

// dispatch runs a command of a logged-in session.
func (ss *session) dispatch(c *eppxml.Command) []byte {
	switch {
	case c.Check != nil && c.Check.Domain != nil:
		return ss.query(c, "domain:check", on(ss.domainCheck, c.Check.Domain.Names))
	case c.Check != nil && c.Check.Host != nil:
		return ss.query(c, "host:check", on(ss.hostCheck, c.Check.Host.Names))
	case c.Create != nil && c.Create.Host != nil:
		return ss.transform(c, "host:create", lower(c.Create.Host.Name), on(ss.hostCreate, c.Create.Host))
	case c.Info != nil && c.Info.Host != nil:
		return ss.query(c, "host:info", on(ss.hostInfo, lower(c.Info.Host.Name)))
	case c.Update != nil && c.Update.Host != nil:
		return ss.transform(c, "host:update", lower(c.Update.Host.Name), on(ss.hostUpdate, c.Update.Host))
	case c.Delete != nil && c.Delete.Host != nil:
		return ss.transform(c, "host:delete", lower(c.Delete.Host.Name), on(ss.hostDelete, lower(c.Delete.Host.Name)))
	case c.Check != nil && c.Check.Contact != nil:
		return ss.query(c, "contact:check", on(ss.contactCheck, c.Check.Contact.IDs))
	case c.Info != nil && c.Info.Domain != nil:
		return ss.query(c, "domain:info", on(ss.domainInfo, c.Info.Domain))
	case c.Info != nil && c.Info.Contact != nil:
		return ss.query(c, "contact:info", on(ss.contactInfo, c.Info.Contact))
	case c.Poll != nil:
		return ss.poll(c)
	case c.Transfer != nil && c.Transfer.Domain != nil && c.Transfer.Op == "query":
		return ss.query(c, "domain:transfer", on(ss.transferQuery, c.Transfer.Domain))
	case c.Transfer != nil && c.Transfer.Domain != nil:
		return ss.transform(c, "domain:transfer:"+c.Transfer.Op, lower(c.Transfer.Domain.Name), on2(ss.domainTransfer, c.Transfer.Op, c.Transfer.Domain))
	case c.Create != nil && c.Create.Domain != nil:
		return ss.transform(c, "domain:create", lower(c.Create.Domain.Name), on2(ss.domainCreate, c.Create.Domain, c.Extension))
	case c.Create != nil && c.Create.Contact != nil:
		return ss.transform(c, "contact:create", c.Create.Contact.ID, on(ss.contactCreate, c.Create.Contact))
	case c.Renew != nil && c.Renew.Domain != nil:
		return ss.transform(c, "domain:renew", lower(c.Renew.Domain.Name), on(ss.domainRenew, c.Renew.Domain))
	case c.Update != nil && c.Update.Domain != nil:
		return ss.transform(c, "domain:update", lower(c.Update.Domain.Name), on2(ss.domainUpdate, c.Update.Domain, c.Extension))
	case c.Update != nil && c.Update.Contact != nil:
		return ss.transform(c, "contact:update", c.Update.Contact.ID, on(ss.contactUpdate, c.Update.Contact))
	case c.Delete != nil && c.Delete.Domain != nil:
		return ss.transform(c, "domain:delete", lower(c.Delete.Domain.Name), on(ss.domainDelete, lower(c.Delete.Domain.Name)))
	case c.Delete != nil && c.Delete.Contact != nil:
		return ss.transform(c, "contact:delete", c.Delete.Contact.ID, on(ss.contactDelete, c.Delete.Contact.ID))
	}
	return ss.reply(answer{code: eppxml.CodeUnimplCommand, reason: "command or object not implemented"}, c.ClTRID)
}

// on and on2 bind a command's handler to the command's arguments, giving the
// transaction step query and transform run.
func on[A any](fn func(*bolt.Tx, A) (answer, error), a A) func(*bolt.Tx) (answer, error) {
	return func(tx *bolt.Tx) (answer, error) { return fn(tx, a) }
}

func on2[A, B any](fn func(*bolt.Tx, A, B) (answer, error), a A, b B) func(*bolt.Tx) (answer, error) {
	return func(tx *bolt.Tx) (answer, error) { return fn(tx, a, b) }
}

func lower(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

func (ss *session) logCmd(verb, object, clTRID string, code int, replay bool) {
	ss.srv.log.Info("command", "clid", ss.clID, "verb", verb, "object", object, "cltrid", clTRID, "code", code, "replay", replay)
}

func (ss *session) query(c *eppxml.Command, verb string, fn func(tx *bolt.Tx) (answer, error)) []byte {
	var a answer
	err := ss.srv.db.View(func(tx *bolt.Tx) error {
		var err error
		a, err = fn(tx)
		return err
	})
	a = ss.settle(a, err, verb, c.ClTRID)
	ss.logCmd(verb, "", c.ClTRID, a.code, false)
	ss.srv.count(false, false)
	return ss.reply(a, c.ClTRID)
}

// settle turns a refusal into its answer and any other error into 2400.
func (ss *session) settle(a answer, err error, verb, clTRID string) answer {
	var pe *eppErr
	switch {
	case errors.As(err, &pe):
		return answer{code: pe.code, reason: pe.reason}
	case err != nil:
		ss.srv.log.Error("command failed", "verb", verb, "cltrid", clTRID, "err", err)
		return answer{code: eppxml.CodeFailed, reason: "internal error"}
	}
	return a
}

var errRefused = errors.New("refused")

// transform runs a command that changes objects. With a clTRID, the
// command's answer is recorded with the change in one transaction; a repeat
// of the clTRID for the same verb and object is answered with the recorded
// bytes and changes nothing. Refusals are recorded too (a repeat is refused
// the same way); an internal failure (2400) is not, so a repeat may succeed.
func (ss *session) transform(c *eppxml.Command, verb, object string, fn func(tx *bolt.Tx) (answer, error)) []byte {
	s := ss.srv
	key := tridKey(ss.clID, c.ClTRID)
	var out []byte
	var replay bool
	var refusal *eppErr
	// lookup answers from the record when clTRID was seen (done=true).
	lookup := func(tx *bolt.Tx) (bool, error) {
		if c.ClTRID == "" {
			return false, nil
		}
		var rec tridRec
		found, err := getJSON(tx, bucketTRIDs, key, &rec)
		if err != nil || !found {
			return false, err
		}
		if rec.Verb == verb && rec.Object == object {
			out, replay = rec.Response, true
			return true, nil
		}
		out = ss.reply(answer{code: eppxml.CodePolicy,
			reason: fmt.Sprintf("clTRID %s was used for another command (%s %s)", c.ClTRID, rec.Verb, rec.Object)}, c.ClTRID)
		return true, nil
	}
	record := func(tx *bolt.Tx, a answer) error {
		seq, err := nextSeq(tx)
		if err != nil {
			return err
		}
		b, err := eppxml.Marshal(response(a, c.ClTRID, fmt.Sprintf("EPPD-%d", seq)))
		if err != nil {
			return err
		}
		if c.ClTRID != "" {
			if err := putJSON(tx, bucketTRIDs, key, tridRec{Verb: verb, Object: object, Response: b}); err != nil {
				return err
			}
		}
		out = b
		return nil
	}
	code := 0
	// A repeat is answered from a read transaction (no write, no fsync);
	// the write transaction looks again, for a repeat racing the first.
	var done bool
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		done, err = lookup(tx)
		return err
	})
	if err == nil && !done {
		err = s.db.Update(func(tx *bolt.Tx) error {
			if done, err := lookup(tx); done || err != nil {
				return err
			}
			a, err := fn(tx)
			if errors.As(err, &refusal) {
				return errRefused // nothing fn wrote is kept
			}
			if err != nil {
				return err
			}
			code = max(a.code, eppxml.CodeOK)
			return record(tx, a)
		})
	}
	if errors.Is(err, errRefused) {
		code = refusal.code
		err = s.db.Update(func(tx *bolt.Tx) error {
			if done, err := lookup(tx); done || err != nil {
				return err
			}
			return record(tx, answer{code: refusal.code, reason: refusal.reason})
		})
	}
	if err != nil {
		s.log.Error("command failed", "verb", verb, "cltrid", c.ClTRID, "err", err)
		return ss.reply(answer{code: eppxml.CodeFailed, reason: "internal error"}, c.ClTRID)
	}
	ss.logCmd(verb, object, c.ClTRID, code, replay)
	s.count(code != 0 && code < 2000 && !replay, replay)
	return out
}

func (s *Server) count(applied, replayed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Commands++
	if applied {
		s.stats.Applied++
	}
	if replayed {
		s.stats.Replayed++
	}
}

const dateTime = "2006-01-02T15:04:05Z"

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(dateTime)
}

func (s *Server) nowSec() time.Time { return s.now().UTC().Truncate(time.Second) }

func newAuthCode() string {
	return rand.Text()[:16]
}

func getDomain(tx *bolt.Tx, name string) (*domainRec, error) {
	return getExisting[domainRec](tx, bucketDomains, "domain", name)
}

// getExisting reads the record of kind ("domain", "contact") at key in
// bucket, refusing with 2303 when there is none.
func getExisting[T any](tx *bolt.Tx, bucket []byte, kind, key string) (*T, error) {
	var v T
	found, err := getJSON(tx, bucket, key, &v)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, refuse(eppxml.CodeNotExist, "%s %s does not exist", kind, key)
	}
	return &v, nil
}

func (ss *session) sponsored(tx *bolt.Tx, name string) (*domainRec, error) {
	d, err := getDomain(tx, name)
	if err != nil {
		return nil, err
	}
	if d.ClID != ss.clID {
		return nil, refuse(eppxml.CodeAuthorization, "domain %s is sponsored by another registrar", name)
	}
	if d.Pending != nil {
		return nil, refuse(eppxml.CodePendingTransfer, "a transfer of %s is pending", name)
	}
	return d, nil
}

func (ss *session) domainCheck(tx *bolt.Tx, names []string) (answer, error) {
	cd, err := checkNames(tx, bucketDomains, names, func(n string) string {
		if e := ss.srv.registrable(n); e != nil {
			return e.reason
		}
		return ""
	})
	return answer{resData: &eppxml.ResData{DomainChk: cd}}, err
}

// checkNames answers a domain or host check: each name is unavailable with
// why's reason, or when bucket holds it ("In use").
func checkNames(tx *bolt.Tx, bucket []byte, names []string, why func(string) string) (*eppxml.DomainChkData, error) {
	if len(names) == 0 || len(names) > 50 {
		return nil, refuse(eppxml.CodeValueRange, "check 1-50 names, got %d", len(names))
	}
	out := &eppxml.DomainChkData{}
	for _, n := range names {
		n = lower(n)
		cd := eppxml.DomainCD{Name: eppxml.CheckName{Name: n, Avail: true}}
		if r := why(n); r != "" {
			cd.Name.Avail, cd.Reason = false, r
		} else if tx.Bucket(bucket).Get([]byte(n)) != nil {
			cd.Name.Avail, cd.Reason = false, "In use"
		}
		out.CD = append(out.CD, cd)
	}
	return out, nil
}

func statusList(st []string) []eppxml.Status {
	if len(st) == 0 {
		return []eppxml.Status{{S: "ok"}}
	}
	out := make([]eppxml.Status, len(st))
	for i, s := range st {
		out[i] = eppxml.Status{S: s}
	}
	return out
}

func (ss *session) domainInfo(tx *bolt.Tx, q *eppxml.DomainInfo) (answer, error) {
	d, err := getDomain(tx, lower(q.Name.Name))
	if err != nil {
		return answer{}, err
	}
	st := d.Status
	if d.Pending != nil {
		st = append(slices.Clone(st), "pendingTransfer")
	}
	inf := &eppxml.DomainInfData{Name: d.Name, ROID: d.ROID, Status: statusList(st), Registrant: d.Registrant,
		Contacts: d.Contacts, NS: nsOut(d), ClID: d.ClID, CrID: d.CrID, CrDate: fmtTime(d.CrDate),
		UpID: d.UpID, UpDate: fmtTime(d.UpDate), ExDate: fmtTime(d.ExDate), TrDate: fmtTime(d.TrDate)}
	authorized := d.ClID == ss.clID || (q.AuthInfo != nil && q.AuthInfo.PW == d.AuthPW)
	if authorized {
		inf.AuthInfo = &eppxml.AuthInfo{PW: d.AuthPW}
	}
	// RFC 5731 §3.1.2: hosts="all" (the default) answers the delegation
	// (<domain:ns>) and the subordinate host objects (<domain:host>, to
	// an authorized client), "del" the delegation, "sub" the subordinate
	// hosts, "none" neither.
	switch h := strings.TrimSpace(q.Name.Hosts); h {
	case "", "all", "del", "sub", "none":
		if h == "sub" || h == "none" {
			inf.NS = nil
		}
		if authorized && h != "del" && h != "none" {
			subs, err := subordinates(tx, d.Name)
			if err != nil {
				return answer{}, err
			}
			for _, rec := range subs {
				inf.Host = append(inf.Host, rec.Name)
			}
		}
	default:
		return answer{}, refuse(eppxml.CodeValueSyntax, "hosts=%q: all, del, sub or none", h)
	}
	a := answer{resData: &eppxml.ResData{DomainInf: inf}}
	if ss.privacy {
		a.ext = &eppxml.Extension{PrivacyInfo: &eppxml.Privacy{Enabled: d.Privacy}}
	}
	return a, nil
}

// years checks a period (1–10 years, or the months equivalent); def when
// absent.
func years(p *eppxml.Period, def int) (int, error) {
	if p == nil {
		return def, nil
	}
	n := p.Value
	switch p.Unit {
	case "y":
	case "m":
		if n%12 != 0 {
			return 0, refuse(eppxml.CodePolicy, "periods are whole years")
		}
		n /= 12
	default:
		return 0, refuse(eppxml.CodeValueSyntax, "period unit %q (y or m)", p.Unit)
	}
	if n < 1 || n > 10 {
		return 0, refuse(eppxml.CodeValueRange, "period of %d years is outside 1-10", n)
	}
	return n, nil
}

func (ss *session) checkNS(ns []string) error {
	if len(ns) > 13 {
		return refuse(eppxml.CodeValueRange, "%d name servers, at most 13", len(ns))
	}
	seen := map[string]bool{}
	for _, h := range ns {
		if r := checkHostName(h); r != "" || !strings.Contains(h, ".") {
			return refuse(eppxml.CodeValueSyntax, "name server %q: %s", h, cmp.Or(r, "not a host name"))
		}
		if seen[h] {
			return refuse(eppxml.CodeValueSyntax, "name server %s given twice", h)
		}
		seen[h] = true
	}
	return nil
}

func lowerAll(in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = lower(s)
	}
	return out
}

func (ss *session) checkContacts(tx *bolt.Tx, registrant string, cs []eppxml.DomainContact) error {
	ids := []string{}
	if registrant != "" {
		ids = append(ids, registrant)
	}
	for _, c := range cs {
		if c.Type != "admin" && c.Type != "tech" && c.Type != "billing" {
			return refuse(eppxml.CodeValueSyntax, "contact type %q (admin, tech or billing)", c.Type)
		}
		ids = append(ids, c.ID)
	}
	for _, id := range ids {
		if tx.Bucket(bucketContacts).Get([]byte(id)) == nil {
			return refuse(eppxml.CodeNotExist, "contact %s does not exist", id)
		}
	}
	return nil
}

func (ss *session) domainCreate(tx *bolt.Tx, c *eppxml.DomainCreate, ext *eppxml.Extension) (answer, error) {
	name := lower(c.Name)
	if e := ss.srv.registrable(name); e != nil {
		return answer{}, e
	}
	n, err := years(c.Period, 1)
	if err != nil {
		return answer{}, err
	}
	if tx.Bucket(bucketDomains).Get([]byte(name)) != nil {
		return answer{}, refuse(eppxml.CodeExists, "domain %s is registered", name)
	}
	ns := lowerAll(c.NS.Names())
	if err := checkHostObjs(tx, c.NS); err != nil {
		return answer{}, err
	}
	if err := checkGlue(tx, name, c.NS); err != nil {
		return answer{}, err
	}
	if err := ss.checkNS(ns); err != nil {
		return answer{}, err
	}
	if err := ss.checkContacts(tx, c.Registrant, c.Contacts); err != nil {
		return answer{}, err
	}
	roid, err := newAuthROID(tx, "D", c.AuthInfo.PW)
	if err != nil {
		return answer{}, err
	}
	now := ss.srv.nowSec()
	d := domainRec{Name: name, ROID: roid, Registrant: c.Registrant, Contacts: c.Contacts, NS: ns, HostObj: c.NS != nil && len(c.NS.HostObj) > 0,
		ClID: ss.clID, CrID: ss.clID, CrDate: now, ExDate: now.AddDate(n, 0, 0), AuthPW: c.AuthInfo.PW}
	if ext != nil && ext.PrivacyCreate != nil {
		d.Privacy = ext.PrivacyCreate.Enabled
	}
	if err := putJSON(tx, bucketDomains, name, d); err != nil {
		return answer{}, err
	}
	return answer{resData: &eppxml.ResData{DomainCre: &eppxml.DomainCreData{Name: name, CrDate: fmtTime(d.CrDate), ExDate: fmtTime(d.ExDate)}}}, nil
}

func (ss *session) domainRenew(tx *bolt.Tx, r *eppxml.DomainRenew) (answer, error) {
	d, err := ss.sponsored(tx, lower(r.Name))
	if err != nil {
		return answer{}, err
	}
	if slices.Contains(d.Status, "clientRenewProhibited") {
		return answer{}, refuse(eppxml.CodeStatusProhibits, "clientRenewProhibited is set")
	}
	cur, err := time.Parse("2006-01-02", strings.TrimSpace(r.CurExpDate))
	if err != nil {
		return answer{}, refuse(eppxml.CodeValueSyntax, "curExpDate %q is not a date (YYYY-MM-DD)", r.CurExpDate)
	}
	if exp := d.ExDate.Format("2006-01-02"); cur.Format("2006-01-02") != exp {
		return answer{}, refuse(eppxml.CodePolicy, "curExpDate %s is not the expiry date %s", r.CurExpDate, exp)
	}
	n, err := years(r.Period, 1)
	if err != nil {
		return answer{}, err
	}
	next := d.ExDate.AddDate(n, 0, 0)
	if next.After(ss.srv.now().AddDate(10, 0, 1)) {
		return answer{}, refuse(eppxml.CodePolicy, "expiry %s would be more than 10 years ahead", next.Format("2006-01-02"))
	}
	d.ExDate, d.UpID, d.UpDate = next, ss.clID, ss.srv.nowSec()
	if err := putJSON(tx, bucketDomains, d.Name, d); err != nil {
		return answer{}, err
	}
	return answer{resData: &eppxml.ResData{DomainRen: &eppxml.DomainRenData{Name: d.Name, ExDate: fmtTime(d.ExDate)}}}, nil
}

var clientStatuses = []string{"clientDeleteProhibited", "clientHold", "clientRenewProhibited", "clientTransferProhibited", "clientUpdateProhibited"}

func (ss *session) domainUpdate(tx *bolt.Tx, u *eppxml.DomainUpdate, ext *eppxml.Extension) (answer, error) {
	d, err := ss.sponsored(tx, lower(u.Name))
	if err != nil {
		return answer{}, err
	}
	add, rem := u.Add, u.Rem
	if add == nil {
		add = &eppxml.DomainAddRem{}
	}
	if rem == nil {
		rem = &eppxml.DomainAddRem{}
	}
	hasPrivacy := ext != nil && ext.PrivacyUpdate != nil
	if u.Add == nil && u.Rem == nil && u.Chg == nil && !hasPrivacy {
		return answer{}, refuse(eppxml.CodeParamMissing, "nothing to update (add, rem, chg or the privacy extension)")
	}
	if slices.Contains(d.Status, "clientUpdateProhibited") &&
		!slices.ContainsFunc(rem.Status, func(s eppxml.Status) bool { return s.S == "clientUpdateProhibited" }) {
		return answer{}, refuse(eppxml.CodeStatusProhibits, "clientUpdateProhibited is set on %s", d.Name)
	}
	for _, s := range rem.Status {
		i := slices.Index(d.Status, s.S)
		if i < 0 {
			return answer{}, refuse(eppxml.CodePolicy, "status %s is not set", s.S)
		}
		d.Status = slices.Delete(d.Status, i, i+1)
	}
	for _, s := range add.Status {
		if !slices.Contains(clientStatuses, s.S) {
			return answer{}, refuse(eppxml.CodePolicy, "status %s cannot be set by a client", s.S)
		}
		if slices.Contains(d.Status, s.S) {
			return answer{}, refuse(eppxml.CodePolicy, "status %s is already set", s.S)
		}
		d.Status = append(d.Status, s.S)
	}
	slices.Sort(d.Status)
	for _, h := range lowerAll(rem.NS.Names()) {
		i := slices.Index(d.NS, h)
		if i < 0 {
			return answer{}, refuse(eppxml.CodePolicy, "name server %s is not delegated", h)
		}
		d.NS = slices.Delete(d.NS, i, i+1)
	}
	if err := checkHostObjs(tx, add.NS); err != nil {
		return answer{}, err
	}
	if err := checkGlue(tx, d.Name, add.NS); err != nil {
		return answer{}, err
	}
	if add.NS != nil && len(add.NS.Names()) > 0 {
		if objs := len(add.NS.HostObj) > 0; len(d.NS) == 0 {
			d.HostObj = objs
		} else if objs != d.HostObj || (objs && len(add.NS.HostAttr) > 0) {
			return answer{}, refuse(eppxml.CodePolicy, "a domain's name servers are all host objects or all host attributes")
		}
	}
	for _, h := range lowerAll(add.NS.Names()) {
		if slices.Contains(d.NS, h) {
			return answer{}, refuse(eppxml.CodePolicy, "name server %s is already delegated", h)
		}
		d.NS = append(d.NS, h)
	}
	if err := ss.checkNS(d.NS); err != nil {
		return answer{}, err
	}
	for _, c := range rem.Contacts {
		i := slices.Index(d.Contacts, c)
		if i < 0 {
			return answer{}, refuse(eppxml.CodePolicy, "contact %s (%s) is not attached", c.ID, c.Type)
		}
		d.Contacts = slices.Delete(d.Contacts, i, i+1)
	}
	if err := ss.checkContacts(tx, "", add.Contacts); err != nil {
		return answer{}, err
	}
	d.Contacts = append(d.Contacts, add.Contacts...)
	if ch := u.Chg; ch != nil {
		if ch.Registrant != nil {
			if err := ss.checkContacts(tx, *ch.Registrant, nil); err != nil {
				return answer{}, err
			}
			d.Registrant = *ch.Registrant
		}
		if ch.AuthInfo != nil {
			if ch.AuthInfo.PW == "" {
				return answer{}, refuse(eppxml.CodeParamMissing, "authInfo pw is empty")
			}
			d.AuthPW = ch.AuthInfo.PW
		}
	}
	if hasPrivacy {
		d.Privacy = ext.PrivacyUpdate.Enabled
	}
	d.UpID, d.UpDate = ss.clID, ss.srv.nowSec()
	return answer{}, putJSON(tx, bucketDomains, d.Name, d)
}

func (ss *session) domainDelete(tx *bolt.Tx, name string) (answer, error) {
	d, err := ss.sponsored(tx, name)
	if err != nil {
		return answer{}, err
	}
	if slices.Contains(d.Status, "clientDeleteProhibited") {
		return answer{}, refuse(eppxml.CodeStatusProhibits, "clientDeleteProhibited is set on %s", name)
	}
	// RFC 5731 §3.2.2: a domain with subordinate host objects is not
	// deleted (their glue would be left without a domain).
	if subs, err := subordinates(tx, d.Name); err != nil {
		return answer{}, err
	} else if len(subs) > 0 {
		names := make([]string, len(subs))
		for i, h := range subs {
			names[i] = h.Name
		}
		return answer{}, refuse(eppxml.CodeAssocProhibits, "domain %s has subordinate host objects (%s): delete them first", name, strings.Join(names, ", "))
	}
	return answer{}, tx.Bucket(bucketDomains).Delete([]byte(name))
}

func checkContactID(id string) error {
	if len(id) < 3 || len(id) > 16 {
		return refuse(eppxml.CodeValueSyntax, "contact id %q must be 3-16 characters", id)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c > '~' {
			return refuse(eppxml.CodeValueSyntax, "contact id %q has a character that is not printable ASCII", id)
		}
	}
	return nil
}

func (ss *session) contactCheck(tx *bolt.Tx, ids []string) (answer, error) {
	if len(ids) == 0 || len(ids) > 50 {
		return answer{}, refuse(eppxml.CodeValueRange, "check 1-50 ids, got %d", len(ids))
	}
	out := &eppxml.ContactChkData{}
	for _, id := range ids {
		cd := eppxml.ContactCD{ID: eppxml.CheckName{Name: id, Avail: true}}
		if err := checkContactID(id); err != nil {
			cd.ID.Avail, cd.Reason = false, err.(*eppErr).reason
		} else if tx.Bucket(bucketContacts).Get([]byte(id)) != nil {
			cd.ID.Avail, cd.Reason = false, "In use"
		}
		out.CD = append(out.CD, cd)
	}
	return answer{resData: &eppxml.ResData{ContactChk: out}}, nil
}

func getContact(tx *bolt.Tx, id string) (*contactRec, error) {
	return getExisting[contactRec](tx, bucketContacts, "contact", id)
}

func (ss *session) contactInfo(tx *bolt.Tx, q *eppxml.ContactRef) (answer, error) {
	c, err := getContact(tx, q.ID)
	if err != nil {
		return answer{}, err
	}
	inf := &eppxml.ContactInfData{ID: c.ID, ROID: c.ROID, Status: statusList(nil), PostalInfo: c.PostalInfo, Voice: c.Voice,
		Email: c.Email, ClID: c.ClID, CrID: c.ClID, CrDate: fmtTime(c.CrDate), UpDate: fmtTime(c.UpDate)}
	if c.ClID == ss.clID || (q.AuthInfo != nil && q.AuthInfo.PW == c.AuthPW) {
		inf.AuthInfo = &eppxml.AuthInfo{PW: c.AuthPW}
	}
	return answer{resData: &eppxml.ResData{ContactInf: inf}}, nil
}

func checkPostal(pi []eppxml.PostalInfo) error {
	if len(pi) == 0 || len(pi) > 2 {
		return refuse(eppxml.CodeParamMissing, "1 or 2 postalInfo elements are required")
	}
	for _, p := range pi {
		switch {
		case p.Type != "int" && p.Type != "loc":
			return refuse(eppxml.CodeValueSyntax, "postalInfo type %q (int or loc)", p.Type)
		case strings.TrimSpace(p.Name) == "":
			return refuse(eppxml.CodeParamMissing, "postalInfo name is required")
		case strings.TrimSpace(p.Addr.City) == "":
			return refuse(eppxml.CodeParamMissing, "postalInfo addr city is required")
		case len(p.Addr.CC) != 2 || strings.ToUpper(p.Addr.CC) != p.Addr.CC:
			return refuse(eppxml.CodeValueSyntax, "postalInfo addr cc %q is not a two-letter country code", p.Addr.CC)
		case len(p.Addr.Street) > 3:
			return refuse(eppxml.CodeValueRange, "at most 3 street lines")
		}
	}
	return nil
}

func checkEmail(e string) error {
	if i := strings.IndexByte(e, '@'); i < 1 || i == len(e)-1 || strings.ContainsAny(e, " \t\r\n") {
		return refuse(eppxml.CodeValueSyntax, "email %q is not an address", e)
	}
	return nil
}

func (ss *session) contactCreate(tx *bolt.Tx, c *eppxml.ContactCreate) (answer, error) {
	if err := checkContactID(c.ID); err != nil {
		return answer{}, err
	}
	if tx.Bucket(bucketContacts).Get([]byte(c.ID)) != nil {
		return answer{}, refuse(eppxml.CodeExists, "contact %s exists", c.ID)
	}
	if err := checkPostal(c.PostalInfo); err != nil {
		return answer{}, err
	}
	if err := checkEmail(c.Email); err != nil {
		return answer{}, err
	}
	roid, err := newAuthROID(tx, "C", c.AuthInfo.PW)
	if err != nil {
		return answer{}, err
	}
	now := ss.srv.nowSec()
	rec := contactRec{ID: c.ID, ROID: roid, PostalInfo: c.PostalInfo, Voice: c.Voice, Email: c.Email,
		ClID: ss.clID, CrDate: now, AuthPW: c.AuthInfo.PW}
	if err := putJSON(tx, bucketContacts, c.ID, rec); err != nil {
		return answer{}, err
	}
	return answer{resData: &eppxml.ResData{ContactCre: &eppxml.ContactCreData{ID: c.ID, CrDate: fmtTime(now)}}}, nil
}

func (ss *session) contactUpdate(tx *bolt.Tx, u *eppxml.ContactUpdate) (answer, error) {
	c, err := getContact(tx, u.ID)
	if err != nil {
		return answer{}, err
	}
	if c.ClID != ss.clID {
		return answer{}, refuse(eppxml.CodeAuthorization, "contact %s is sponsored by another registrar", u.ID)
	}
	if u.Chg == nil {
		return answer{}, refuse(eppxml.CodeParamMissing, "nothing to update (chg)")
	}
	if len(u.Chg.PostalInfo) > 0 {
		if err := checkPostal(u.Chg.PostalInfo); err != nil {
			return answer{}, err
		}
		c.PostalInfo = u.Chg.PostalInfo
	}
	if u.Chg.Voice != nil {
		c.Voice = *u.Chg.Voice
	}
	if u.Chg.Email != nil {
		if err := checkEmail(*u.Chg.Email); err != nil {
			return answer{}, err
		}
		c.Email = *u.Chg.Email
	}
	c.UpDate = ss.srv.nowSec()
	return answer{}, putJSON(tx, bucketContacts, c.ID, c)
}

func (ss *session) contactDelete(tx *bolt.Tx, id string) (answer, error) {
	c, err := getContact(tx, id)
	if err != nil {
		return answer{}, err
	}
	if c.ClID != ss.clID {
		return answer{}, refuse(eppxml.CodeAuthorization, "contact %s is sponsored by another registrar", id)
	}
	linked := false
	err = tx.Bucket(bucketDomains).ForEach(func(_, v []byte) error {
		var d domainRec
		if err := json.Unmarshal(v, &d); err != nil {
			return err
		}
		if d.Registrant == id || slices.ContainsFunc(d.Contacts, func(c eppxml.DomainContact) bool { return c.ID == id }) {
			linked = true
		}
		return nil
	})
	if err != nil {
		return answer{}, err
	}
	if linked {
		return answer{}, refuse(eppxml.CodeAssocProhibits, "contact %s is linked to a domain", id)
	}
	return answer{}, tx.Bucket(bucketContacts).Delete([]byte(id))
}

// poll answers poll req (the oldest message, 1301, or 1300) and poll ack
// (removes the message).
func (ss *session) poll(c *eppxml.Command) []byte {
	var a answer
	var err error
	switch c.Poll.Op {
	case "req":
		err = ss.srv.db.View(func(tx *bolt.Tx) error {
			m, n, err := firstPoll(tx, ss.clID)
			if err != nil || m == nil {
				a = answer{code: eppxml.CodeNoMessages}
				return err
			}
			a = answer{code: eppxml.CodeAckToDequeue, msgQ: &eppxml.MsgQ{Count: n, ID: fmt.Sprint(m.ID), QDate: fmtTime(m.QDate), Msg: m.Msg}}
			if m.Trn != nil {
				a.resData = &eppxml.ResData{DomainTrn: m.Trn}
			}
			return nil
		})
	case "ack":
		err = ss.srv.db.Update(func(tx *bolt.Tx) error {
			id, perr := strconv.ParseUint(c.Poll.MsgID, 10, 64)
			if perr != nil {
				return refuse(eppxml.CodeValueSyntax, "msgID %q", c.Poll.MsgID)
			}
			b := tx.Bucket(bucketPoll)
			if b.Get(pollKey(ss.clID, id)) == nil {
				return refuse(eppxml.CodeNotExist, "message %s does not exist", c.Poll.MsgID)
			}
			if err := b.Delete(pollKey(ss.clID, id)); err != nil {
				return err
			}
			m, n, err := firstPoll(tx, ss.clID)
			if err != nil {
				return err
			}
			a = answer{msgQ: &eppxml.MsgQ{Count: n}}
			if m != nil {
				a.msgQ.ID = fmt.Sprint(m.ID)
			}
			return nil
		})
	default:
		err = refuse(eppxml.CodeValueSyntax, "poll op %q (req or ack)", c.Poll.Op)
	}
	a = ss.settle(a, err, "poll", c.ClTRID)
	ss.logCmd("poll:"+c.Poll.Op, c.Poll.MsgID, c.ClTRID, a.code, false)
	ss.srv.count(false, false)
	return ss.reply(a, c.ClTRID)
}
