package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/domainreg"
	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/raftnode"
	"github.com/hostplane/hostplane/coordinator/internal/registrar"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
	"golang.org/x/net/idna"
)

// DomainDeps is what the registered-domain routes need beyond the state:
// the registry (for availability checks; the leader's domainreg driver
// makes every change) and the driver's kick.
type DomainDeps struct {
	Registrar registrar.Registrar
	// Kick wakes the leader's driver after an operation was recorded.
	Kick func()
	// SealAuthCode seals a transfer's auth code under id before it is
	// recorded (nil: transfers are refused).
	SealAuthCode func(id, code string) (string, error)
	// Wait is how long POST and PATCH wait for the registry's answer
	// before answering 202 with the operation pending (0: 10 s; with the
	// registry check's 10 s it stays inside a follower's 30 s forwarding).
	Wait time.Duration
}

// wait is how long a request waits for the registry (Wait, 10 s unset).
func (d *DomainDeps) wait() time.Duration {
	if d.Wait <= 0 {
		return 10 * time.Second
	}
	return d.Wait
}

// SetDomainDeps enables the registered-domain routes.
func (a *API) SetDomainDeps(d *DomainDeps) { a.domainReg.Store(d) }

func (a *API) domainDeps() (*DomainDeps, error) {
	d := a.domainReg.Load()
	if d == nil || d.Registrar == nil {
		// Not a 503: nothing will change until an operator configures a
		// registrar, so a client must not be told to retry.
		return nil, errf(http.StatusNotFound, "domains_not_offered", "this provider does not sell domains (no registrar is configured)")
	}
	return d, nil
}

const regDomainIDPrefix = "dom"

// domainRegRoutes are the /v1/domains operations (registered domains; the
// custom domains of hosting accounts are customdomains.go's).
func (a *API) domainRegRoutes() []Route {
	return []Route{
		{Method: "GET", Path: "/v1/domains", Scope: api.ScopeDomainsRead, handler: a.listDomains},
		// A registration spends money: MCP asks for a double confirmation.
		// A replay of an order, a transfer or a change whose first send still
		// waits for the registry answers what that send answers (domainOpReplay).
		{Method: "POST", Path: "/v1/domains", Scope: api.ScopeOrdersWrite, Idempotent: true, SpendsMoney: true, Quote: "POST /v1/domains/quote", handler: a.orderDomain, replayAnswer: a.domainOpReplay("registration_failed")},
		// The price and availability of the same body, without ordering (MCP shows it before the confirmation).
		{Method: "POST", Path: "/v1/domains/quote", Scope: api.ScopeOrdersWrite, handler: a.quoteDomain},
		{Method: "POST", Path: "/v1/domains/transfer", Scope: api.ScopeOrdersWrite, Idempotent: true, SpendsMoney: true, Quote: "POST /v1/domains/transfer/quote", handler: a.transferDomain, replayAnswer: a.domainOpReplay("transfer_failed")},
		// Its price, refusing what the transfer refuses (domaintransferquote.go).
		{Method: "POST", Path: "/v1/domains/transfer/quote", Scope: api.ScopeOrdersWrite, handler: a.quoteDomainTransfer},
		{Method: "GET", Path: "/v1/domains/check", Scope: api.ScopeDomainsRead, handler: a.checkDomain},
		{Method: "GET", Path: "/v1/domains/{id}", Scope: api.ScopeDomainsRead, handler: a.getDomain},
		{Method: "PATCH", Path: "/v1/domains/{id}", Scope: api.ScopeDomainsWrite, Idempotent: true, handler: a.updateDomain, replayAnswer: a.domainOpReplay("")},
		// A child name server with its glue addresses (domainhosts.go).
		{Method: "PUT", Path: "/v1/domains/{id}/hosts/{name}", Scope: api.ScopeDomainsWrite, Idempotent: true, handler: a.putDomainHost},
		{Method: "DELETE", Path: "/v1/domains/{id}/hosts/{name}", Scope: api.ScopeDomainsWrite, Idempotent: true, handler: a.deleteDomainHost},
	}
}

func regDomainView(d store.RegDomain) api.Domain { return d.Domain }

func (a *API) listDomains(rq *request) (int, any, error) {
	return listWalk(a, rq, rq.caller.accountID, regDomainIDPrefix, store.ReadTx.RegDomainsAt, regDomainView)
}

func (a *API) loadRegDomain(rq *request) (store.RegDomain, error) {
	return readOwned(a, rq, regDomainIDPrefix, "domain", store.ReadTx.OwnedRegDomain)
}

func (a *API) getDomain(rq *request) (int, any, error) {
	d, err := a.loadRegDomain(rq)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, d.Domain, nil
}

// Contact and nameserver limits (EPP: RFC 5733 postal info, RFC 5731 hosts).
const (
	minNameservers = 2
	maxNameservers = 13
)

var (
	voiceRE = regexp.MustCompile(`^\+[0-9]{1,3}\.[0-9]{1,14}$`)
	emailRE = regexp.MustCompile(`^[A-Za-z0-9.!#$%&'*+/=?^_{|}~-]{1,64}@[A-Za-z0-9.-]{1,253}$`)
)

// asciiText checks an EPP "int" postal field: printable ASCII (the
// registry's international form), min to max characters.
func asciiText(field, s string, min, max int) error {
	if err := text(field, s, min, max); err != nil {
		return err
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return invalidField(field, "must be printable ASCII (the registry's international postal form)")
		}
	}
	return nil
}

func domainContact(c api.DomainContact) error {
	if err := asciiText("contact.name", c.Name, 1, 255); err != nil {
		return err
	}
	if err := asciiText("contact.org", c.Org, 0, 255); err != nil {
		return err
	}
	if len(c.Street) < 1 || len(c.Street) > 3 {
		return invalidField("contact.street", "must have 1 to 3 lines")
	}
	for i, l := range c.Street {
		if err := asciiText(fmt.Sprintf("contact.street[%d]", i), l, 1, 255); err != nil {
			return err
		}
	}
	if err := asciiText("contact.city", c.City, 1, 255); err != nil {
		return err
	}
	if err := asciiText("contact.sp", c.SP, 0, 255); err != nil {
		return err
	}
	if err := asciiText("contact.pc", c.PC, 0, 16); err != nil {
		return err
	}
	if !isCountry(c.CC) {
		return invalidField("contact.cc", "must be the ISO 3166-1 alpha-2 code of a country, in upper case (TR, DE)")
	}
	if c.Voice != "" && !voiceRE.MatchString(c.Voice) {
		return invalidField("contact.voice", "must be +CC.NUMBER (+90.2125550000)")
	}
	if c.Email == "" {
		return invalidField("contact.email", "is required")
	}
	if len(c.Email) > 254 || !emailRE.MatchString(c.Email) || strings.Contains(c.Email, "..") {
		return invalidField("contact.email", "must be an email address")
	}
	if err := contactEmailDomain(c.Email[strings.IndexByte(c.Email, '@')+1:]); err != nil {
		return invalidField("contact.email", "must be an email address with a domain name")
	}
	return nil
}

// contactEmailDomain checks a contact e-mail address's domain with the
// host-name rule's folding (validate.LowerASCII): ASCII capitals are
// lower-cased, a non-ASCII capital is refused rather than folded into
// another name (U+212A KELVIN SIGN is not "k"). A trailing dot stays
// refused: an address's domain has none. emailRE admits ASCII only there
// today; this does not rely on it.
func contactEmailDomain(d string) error {
	_, err := validate.Domain(validate.LowerASCII(d))
	return err
}

// requestedDomainName checks a request's name: given, and a domain name
// under the host-name input rule (validate.DomainInput: capitals and one
// trailing dot are accepted), and returns its canonical ASCII form; whether
// its TLD is offered is for offeredName.
func requestedDomainName(name string) (string, error) {
	if name == "" {
		return "", invalidField("name", "is required")
	}
	ascii, err := validate.DomainInput(name)
	if err != nil {
		return "", invalidField("name", "%s", validate.Reason(err))
	}
	return ascii, nil
}

// domainNameservers checks a delegation: 2 to 13 distinct host names
// (validate.DomainInput), returned in their canonical form, the form they
// are kept in; nil (none given) is left nil.
func domainNameservers(ns []string) ([]string, error) {
	if ns == nil {
		return nil, nil
	}
	if len(ns) < minNameservers || len(ns) > maxNameservers {
		return nil, invalidField("nameservers", "must list %d to %d host names", minNameservers, maxNameservers)
	}
	out := make([]string, 0, len(ns))
	for i, n := range ns {
		h, err := validate.DomainInput(n)
		if err != nil {
			return nil, invalidField(fmt.Sprintf("nameservers[%d]", i), "%s", validate.Reason(err))
		}
		if slices.Contains(out, h) {
			return nil, invalidField(fmt.Sprintf("nameservers[%d]", i), "repeats %s", h)
		}
		out = append(out, h)
	}
	return out, nil
}

// outOfBailiwick refuses a name server inside the domain it serves (the
// domain itself or a name under it, ns1.example.com for example.com) that
// is not one of the domain's child name servers (hosts, with their glue
// addresses at the registry): a registry takes such a host only with its
// glue, so the registration or change would be refused by the registry
// after it was paid or recorded. A 400 naming the name server instead. A
// domain being ordered has no child name servers yet.
func outOfBailiwick(domain string, ns []string, hosts []api.DomainHost) error {
	for i, h := range ns {
		if slices.ContainsFunc(hosts, func(x api.DomainHost) bool { return x.Name == h }) {
			continue
		}
		if h == domain || strings.HasSuffix(h, "."+domain) {
			return invalidField(fmt.Sprintf("nameservers[%d]", i),
				"%s is inside %s: a registry takes such a name server only with its glue addresses; register with name servers outside %s (your DNS provider's), then add %s with its addresses (PUT /v1/domains/{id}/hosts/%s) and name it",
				h, domain, domain, h, h)
		}
	}
	return nil
}

// DecodeDomainOrder validates POST /v1/domains (everything but whether the
// TLD is offered, which needs the catalogue); every refusal names its field.
// An omitted years is one year.
func DecodeDomainOrder(body []byte) (api.DomainOrderRequest, error) {
	return decodeChecked(body, func(req *api.DomainOrderRequest) error {
		name, err := requestedDomainName(req.Name)
		if err != nil {
			return err
		}
		req.Name = name
		if req.Years == 0 {
			// Omitted is a year; an explicit 0 (or null) is a client's
			// mistake, refused rather than billed as a year.
			var sent struct {
				Years json.RawMessage `json:"years"`
			}
			if json.Unmarshal(body, &sent) == nil && sent.Years != nil {
				return invalidField("years", "must be 1 to %d", fsm.MaxDomainYears)
			}
			req.Years = 1
		}
		if req.Years < 1 || req.Years > fsm.MaxDomainYears {
			return invalidField("years", "must be 1 to %d", fsm.MaxDomainYears)
		}
		ns, err := domainNameservers(req.Nameservers)
		if err != nil {
			return err
		}
		if err := outOfBailiwick(req.Name, ns, nil); err != nil {
			return err
		}
		req.Nameservers = ns
		return domainContact(req.Contact)
	})
}

// DecodeDomainUpdate validates PATCH /v1/domains/{id}.
func DecodeDomainUpdate(body []byte) (api.DomainUpdateRequest, error) {
	return decodeChecked(body, func(req *api.DomainUpdateRequest) error {
		if req.AutoRenew == nil && req.TransferLock == nil && req.WhoisPrivacy == nil && req.Nameservers == nil {
			return badRequest("nothing to change: send auto_renew, transfer_lock, whois_privacy or nameservers")
		}
		ns, err := domainNameservers(req.Nameservers)
		if err != nil {
			return err
		}
		req.Nameservers = ns
		return nil
	})
}

// offeredName resolves a name to register: its ASCII and Unicode forms and
// the domain product of its TLD, or a 400 naming field: the TLD is not
// offered, or the name is not exactly one label under it.
func (a *API) offeredName(field, name string) (ascii, unicode string, prod api.AdminProduct, err error) {
	ascii, err = validate.DomainInput(name)
	if err != nil {
		return "", "", prod, invalidField(field, "%s", validate.Reason(err))
	}
	var prods []api.AdminProduct
	if err := a.state.Read(func(r store.ReadTx) (err error) { prods, err = r.Products(); return }); err != nil {
		return "", "", prod, err
	}
	var offered []string
	for _, p := range prods {
		if p.Category != api.ProductDomain || p.Retired {
			continue
		}
		offered = append(offered, "."+p.Tld)
		if strings.HasSuffix(ascii, "."+p.Tld) && len(p.Tld) > len(prod.Tld) {
			prod = p
		}
	}
	if prod.Slug == "" {
		slices.Sort(offered)
		list := strings.Join(offered, ", ")
		if list == "" {
			list = "none"
		}
		return "", "", prod, invalidField(field, "is under a TLD this provider does not offer (offered: %s)", list)
	}
	label := strings.TrimSuffix(ascii, "."+prod.Tld)
	if strings.Contains(label, ".") {
		return "", "", prod, invalidField(field, "must be one label under .%s (register %s, not a subdomain of it)", prod.Tld, label[strings.LastIndexByte(label, '.')+1:]+"."+prod.Tld)
	}
	unicode = ascii
	if strings.Contains(ascii, "xn--") {
		if u, err := idna.ToUnicode(ascii); err == nil {
			unicode = u
		}
	}
	if unicode == ascii {
		unicode = ""
	}
	return ascii, unicode, prod, nil
}

// contactID is the registrant's contact object id at the registry (EPP
// clIDType: 3-16 characters), derived from the domain id.
func contactID(domainID string) string {
	sum := sha256.Sum256([]byte(domainID))
	return "hp" + hex.EncodeToString(sum[:7])
}

// orderDomain buys a registration from the wallet: the registry is asked
// whether the name is free (nothing is charged when it is not, or cannot be
// asked), then one command debits the wallet and records the registration
// as registering; the leader's driver registers it (exactly once, by the
// order's transaction ids) and ends it: active with domain.registered, or
// failed with the order refunded.
func (a *API) orderDomain(rq *request) (int, any, error) {
	deps, req, err := a.domainOrderRequest(rq)
	if err != nil {
		return 0, nil, err
	}
	o, res, err := a.newDomainOrder(rq, deps, req.Name, "is not available: it is registered here already")
	if err != nil {
		return 0, nil, err
	}
	if !res.Available {
		return 0, nil, errf(http.StatusConflict, "domain_unavailable", "%s is not available (%s); nothing was charged", o.Name, res.Reason)
	}
	o.Years, o.Nameservers, o.Contact, o.WhoisPrivacy = req.Years, req.Nameservers, req.Contact, req.WhoisPrivacy
	o.AutoRenew = autoRenewOr(req.AutoRenew)
	return a.placeDomainOrder(rq, deps, o, "registration_failed")
}

// newDomainOrder starts the order of name by the caller, as a registration
// and a transfer-in both do: the name must be offered here (its TLD a
// product) and held by no domain here (409 domain_unavailable, "<name>
// <heldWhy>"); the registry is asked about it (503 when it cannot be). The
// order has a new domain id, the caller's account, the name and its product;
// res is the registry's answer. None of these refusals charges anything.
func (a *API) newDomainOrder(rq *request, deps *DomainDeps, name, heldWhy string) (o fsm.DomainOrder, res registrar.CheckResult, err error) {
	ascii, unicode, prod, err := a.offeredName("name", name)
	if err != nil {
		return o, res, err
	}
	if err := a.notHeldHere(ascii, heldWhy); err != nil {
		return o, res, err
	}
	if res, err = a.registryCheck(rq.Context(), deps, ascii); err != nil {
		return o, res, err
	}
	return fsm.DomainOrder{
		ID: ids.New(regDomainIDPrefix, rq.now), AccountID: rq.caller.accountID,
		Name: ascii, UnicodeName: unicode, Tld: prod.Tld, ProductSlug: prod.Slug,
	}, res, nil
}

// domainOrderRequest is the domain dependencies (404 when domains are not
// offered) and the validated body of an order or a quote.
func (a *API) domainOrderRequest(rq *request) (*DomainDeps, api.DomainOrderRequest, error) {
	deps, err := a.domainDeps()
	if err != nil {
		return nil, api.DomainOrderRequest{}, err
	}
	req, err := DecodeDomainOrder(rq.body)
	return deps, req, err
}

// autoRenewOr is a request's auto_renew, on when left out.
func autoRenewOr(v *bool) bool { return v == nil || *v }

// notHeldHere refuses (409 domain_unavailable, nothing charged) a name a
// domain of this provider holds already.
func (a *API) notHeldHere(ascii, why string) error {
	taken, err := readOne(a, "domain", func(r store.ReadTx) (string, error) { return r.RegDomainNameTaken(ascii), nil })
	if err != nil {
		return err
	}
	if taken != "" {
		return errf(http.StatusConflict, "domain_unavailable", "%s %s; nothing was charged", ascii, why)
	}
	return nil
}

// placeDomainOrder proposes o (a registration or a transfer-in; its
// contact, transaction and money ids are made here) as one command that
// debits the wallet (402 naming the shortfall), then waits for the leader's
// driver to end it: 201 with the domain, 202 while the registry has not
// answered, 409 failCode with the registry's reason when it refused (the
// order is refunded). A replayed answer (Idempotency-Key) is returned as it
// was stored (the FSM's replay of a record it already held; withIdempotency
// answers a replay before this runs: domainOpReplay).
func (a *API) placeDomainOrder(rq *request, deps *DomainDeps, o fsm.DomainOrder, failCode string) (int, any, error) {
	o.ContactID, o.ClTRID = contactID(o.ID), fsm.DomainClTRID(o.ID)
	o.InvoiceID, o.PaymentID, o.TxID = ids.New("inv", rq.now), ids.New("pay", rq.now), ids.New("wtx", rq.now)
	status, v, err := a.propose(rq.Context(), rq, fsm.CmdDomainOrder, o, http.StatusAccepted)
	if err != nil {
		return 0, nil, shortfall(err)
	}
	if _, ok := v.(api.Domain); !ok {
		if a.replaysByLevel(rq) {
			return a.replayedAnswer(rq, failCode)
		}
		return status, v, nil // a replayed response (Idempotency-Key)
	}
	a.log.Info("domain ordered", "domain", o.ID, "name", o.Name, "account", o.AccountID, "years", o.Years, "transfer", o.Transfer)
	return a.answerOp(rq, deps, o.AccountID, o.ID, o.ID, v, func(d store.RegDomain) (int, any, error) { return orderEnded(d, failCode) })
}

// answerOp is the first send's answer to operation opID of domain domainID
// (of accountID), which its command has just opened: the log's
// (logAnswer) when the key's answer is the log's (answerLogged), else by
// the clocks: 202 with the domain when the operation has not ended within
// DomainDeps.Wait, or its end (ended) recorded as the key's answer.
func (a *API) answerOp(rq *request, deps *DomainDeps, accountID, domainID, opID string, v any, ended func(store.RegDomain) (int, any, error)) (int, any, error) {
	if rq.idem != nil {
		logged, err := a.answerLogged(rq.idem.Scope, rq.idem.ReqHash, accountID, domainID, opID)
		switch {
		case err != nil && a.state.ClusterLevel() >= fsm.LevelDomainAnswer:
			return a.unreadAnswer(rq, deps, rq.idem.Scope, rq.idem.ReqHash, accountID, domainID, opID, v, ended, err)
		case err != nil:
			// Below level 14 the command opened no window (the level
			// never falls): the read could not have said yes, and the
			// clocks answer, as they would have.
			a.log.Warn("domain operation applied; its answer could not be read back, answered by the clocks", "domain", domainID, "op", opID, "err", err)
		case logged:
			return a.logAnswer(rq, deps, rq.idem.Scope, rq.idem.ReqHash, accountID, domainID, opID)
		}
	}
	d, done := a.waitDomainOp(rq.Context(), deps, accountID, domainID, opID)
	if !done {
		return http.StatusAccepted, d.Domain, nil
	}
	return a.recordEnded(rq)(ended(d))
}

// orderEnded is the answer to a domain order whose operation has ended:
// 201 with the domain, or 409 failCode with the registry's reason when it
// refused (the order refunded).
func orderEnded(d store.RegDomain, failCode string) (int, any, error) {
	if d.Status == api.DomainFailed {
		return 0, nil, errf(http.StatusConflict, failCode, "domain %s (%s): %s", d.Name, d.ID, d.StatusReason)
	}
	return http.StatusCreated, d.Domain, nil
}

// changeEnded is the answer to a domain change chID whose operation has
// ended: 200 with the domain, or 409 change_failed with the reason when
// the registry refused it (rolled back).
func changeEnded(d store.RegDomain, chID string) (int, any, error) {
	if d.Change != nil && d.Change.ID == chID && d.Change.Status == api.ChangeFailed {
		return 0, nil, errf(http.StatusConflict, "change_failed", "the change of domain %s was rolled back (change %s): %s", d.Name, chID, d.Change.Reason)
	}
	return http.StatusOK, d.Domain, nil
}

// recordEnded records an ended operation's answer to rq (status and body,
// or the refusal err) as what the request's key replays (recordAnswer) and
// returns it.
func (a *API) recordEnded(rq *request) func(status int, body any, err error) (int, any, error) {
	return func(status int, body any, err error) (int, any, error) {
		var he *httpError
		if errors.As(err, &he) {
			a.recordAnswer(rq, he.status, api.NewError(he.status, he.code, he.msg))
			return 0, nil, he
		}
		a.recordAnswer(rq, status, body)
		return status, body, nil
	}
}

// domainReplayGrace is how long a replay that saw its operation end waits
// for the first send's answer to be recorded (recordAnswer: one Raft entry,
// proposed as soon as that send sees the end).
const domainReplayGrace = 3 * time.Second

// domainOpReplay answers a replay of an Idempotency-Key of a domain order,
// a transfer (failCode their refusal's code) or a change (failCode "")
// (Route.replayAnswer). Their command stores the key's record with its own
// answer (202 with the domain registering; a change's, 200 with the change
// pending) before the first send waits for the registry (DomainDeps.Wait);
// that send then answers 201 (200 applied) or 409 and records that answer,
// or, its wait run out, answers 202 and records nothing. A replay finding
// the command's answer while the operation is pending (the first send still
// waiting, on this coordinator or another) answered 202 where the first
// answered 201. It waits as the first send does, the same bound, and
// answers what the first send answers (SPEC: the same key and body return
// the first response):
//   - the answer the first send records, once it has;
//   - the end (201/200 or 409, as orderEnded and changeEnded) when the
//     operation ended before the first send's wait could have run out (that
//     send answered the end, or never answered: its coordinator stopped)
//     and no record came within domainReplayGrace;
//   - else 202 with the stored domain: the first send's wait ran out (the
//     operation still pending, or ended after its wait), or its record was
//     lost with its coordinator's leadership.
//
// Any other record (an ended operation's, a change with nothing for the
// registry, a change of another request pending) is replayed as stored.
// From level 14, a replay whose read-back of the window (answerLogged)
// fails answers as a first send whose read-back failed does (unreadAnswer).
//
// From semantics level 14 (fsm.LevelDomainAnswer) a key whose answer the
// log decides reads none of these clocks (answerLogged: its operation has
// the key's answer window open, or, from level 15, its record is marked
// decided): the replay answers the record the log decided, waiting while the
// window is open and closing it itself once it has waited as long as the
// first send would (logAnswer). Any other key keeps the clocks at every
// level: its operation was opened below level 14, without a window, and its
// first send answers and records by them (review60 R6: answering its
// record at once said 202 where that send said 201), or its window was
// decided at level 14, before records were marked (answered by the clocks
// too: 202 once the replay has waited, or at once long after the first
// send; 201 only for an end before the first send's wait could have run
// out, which a close decided at 14 precedes only when an earlier release
// proposed it at once for a send whose client went away: logAnswer now
// waits its bound at 14).
//
// When the clocks can go: once no coordinator this code runs on can hold a
// key of either kind, that is, in a release that refuses to start on a
// cluster below level 15, for a cluster that has run level 15 for longer
// than its IdempotencyTTL (every record of a window-less operation, and
// every unmarked one, expired by then). Until then a cluster can still run
// at 13 or 14 (a rolling upgrade) and the clocks are the answer below 14.
func (a *API) domainOpReplay(failCode string) func(rq *request, scope string, rec store.IdemRecord) (int, any, error) {
	return func(rq *request, scope string, rec store.IdemRecord) (int, any, error) {
		stored := func() (int, any, error) { return rec.Status, json.RawMessage(rec.Body), nil }
		deps, err := a.domainDeps()
		if err != nil {
			return stored()
		}
		domainID, opID, since, ok := pendingOpOf(rq, rec, failCode != "")
		if !ok {
			return stored()
		}
		accepted := func() (int, any, error) { return http.StatusAccepted, json.RawMessage(rec.Body), nil }
		ended := func(d store.RegDomain) (int, any, error) {
			if failCode != "" {
				return orderEnded(d, failCode)
			}
			return changeEnded(d, opID)
		}
		if a.state.ClusterLevel() >= fsm.LevelDomainAnswer {
			logged, err := a.answerLogged(scope, rec.ReqHash, rq.caller.accountID, domainID, opID)
			if err != nil {
				// As the first send whose read-back failed answers
				// (answerOp): not the record as stored, which for a
				// change is its command's "200 pending" where the first
				// send answers 202.
				return a.unreadAnswer(rq, deps, scope, rec.ReqHash, rq.caller.accountID, domainID, opID, json.RawMessage(rec.Body), ended, err)
			}
			if logged {
				return a.logAnswer(rq, deps, scope, rec.ReqHash, rq.caller.accountID, domainID, opID)
			}
		}
		if deps.Kick != nil {
			deps.Kick()
		}
		wait := deps.wait()
		// Before firstWaits (the state's clock, with a margin for another
		// coordinator's) the first send was still waiting: its wait began
		// after its command was made at since. After firstOver it has
		// answered and recorded what it records (a registry check, its
		// command, its wait and its record).
		firstWaits := since.Add(wait - min(time.Second, wait/4))
		firstOver := since.Add(10*time.Second + 2*a.cfg.ApplyTimeout + wait)
		deadline := time.Now().Add(wait)
		var sawEnd, endedAt time.Time // when this replay saw the operation ended; when it ended
		for {
			if cur, ok := a.recordedAnswer(scope, rec); ok {
				return cur.Status, json.RawMessage(cur.Body), nil
			}
			var d store.RegDomain
			if err := a.state.Read(func(r store.ReadTx) (err error) { d, err = r.OwnedRegDomain(rq.caller.accountID, domainID); return }); err != nil {
				return stored()
			}
			now := time.Now()
			if d.Op != nil && d.Op.ID == opID {
				// Still pending: 202 once this send has waited as long as the
				// first did, or at once when the first answered long ago (a
				// transfer the losing registrar has not approved yet).
				if now.After(deadline) || a.now().After(firstOver) || rq.Context().Err() != nil {
					return accepted()
				}
			} else {
				if sawEnd.IsZero() {
					sawEnd, endedAt = now, a.now()
					if d.Change != nil && d.Change.ID == opID && d.Change.FinishedAt != nil {
						endedAt = *d.Change.FinishedAt
					}
				}
				early := endedAt.Before(firstWaits)
				if now.After(sawEnd.Add(domainReplayGrace)) || !early && a.now().After(firstOver) || rq.Context().Err() != nil {
					if early {
						return ended(d)
					}
					return accepted()
				}
			}
			time.Sleep(25 * time.Millisecond)
		}
	}
}

// unreadAnswer is the answer of the key scope (its request's hash
// reqHash) to operation opID of domain domainID (of accountID), which its
// keyed command opened at level 14 or later (v its answer), when the
// read-back of whether the log decides that answer (answerLogged) failed
// with readErr: at the first send after the apply (answerOp), or at a
// replay (domainOpReplay). The order (the change) went through: that error
// (a 404 or a 500) would tell the client it had not, and the record as
// stored (a change's "200 pending") is not what the first send answers.
// It answers as logAnswer does, with the reads it can make: it waits
// (awaitAnswerWindow, DomainDeps.Wait at most) while the key's answer
// window reads open, then, the window still open (or unreadable), proposes
// its close, so the log decides the key's record, and answers that record
// as read after the close: 202 with the domain pending, or the operation's
// end when the end was applied first. When the record cannot be read (or
// still holds its command's own "200 pending"), the answer is the one the
// close's apply gives: 202 with the domain the close applied to, the
// operation pending; or its end (ended). A close that cannot be proposed is
// that error (503 with Retry-After when this coordinator lost its
// leadership): the client sends the key again.
//
// The answer is the record's, not the domain the close returns (stop 62 left:
// another send's close between this send's wait and its own, then the
// registry's end, left the record at 202 while the domain the close
// returned showed the end).
func (a *API) unreadAnswer(rq *request, deps *DomainDeps, scope, reqHash, accountID, domainID, opID string, v any, ended func(store.RegDomain) (int, any, error), readErr error) (int, any, error) {
	a.log.Warn("domain operation applied; whether the log decides its answer could not be read back, answered as the log decides after the wait", "domain", domainID, "op", opID, "err", readErr)
	if deps.Kick != nil {
		deps.Kick()
	}
	var closed any
	deadline := time.Now().Add(deps.wait())
	if open, _ := a.awaitAnswerWindow(func() bool { return a.answerWaitOver(rq, deadline) }, scope, accountID, domainID, opID, nil); open {
		c, err := a.closeAnswer(rq, domainID, opID)
		if err != nil {
			return 0, nil, err
		}
		closed = c
	}
	var rec store.IdemRecord
	err := a.state.Read(func(r store.ReadTx) (err error) { rec, err = r.Idempotency(scope); return })
	if err == nil && rec.ReqHash == reqHash && answerDecided(rec, opID) {
		return rec.Status, json.RawMessage(rec.Body), nil
	}
	if closed == nil {
		c, err := a.closeAnswer(rq, domainID, opID)
		if err != nil {
			return 0, nil, err
		}
		closed = c
	}
	d, ok := closed.(api.Domain)
	if !ok {
		return http.StatusAccepted, v, nil
	}
	if opPending(d, opID) {
		return http.StatusAccepted, d, nil
	}
	return ended(store.RegDomain{Domain: d})
}

// awaitAnswerWindow waits while the answer window of the key scope on
// operation opID of domain domainID (of accountID) reads open, the state
// read every 25 ms (logAnswer and unreadAnswer wait here): it returns false
// as soon as a read shows the window decided (the operation's end or a close
// applied), true once over says the wait is done with the window still open.
// With rec the key's record is read too, in the same read as the domain, and
// a read that fails is that error; without, a read that fails counts as the
// window open (unreadable).
func (a *API) awaitAnswerWindow(over func() bool, scope, accountID, domainID, opID string, rec *store.IdemRecord) (bool, error) {
	for {
		var d store.RegDomain
		err := a.state.Read(func(r store.ReadTx) (err error) {
			if d, err = r.OwnedRegDomain(accountID, domainID); err != nil || rec == nil {
				return err
			}
			*rec, err = r.Idempotency(scope)
			return err
		})
		switch {
		case err != nil && rec != nil:
			return false, err
		case err == nil && !answerOpen(d, opID, scope):
			return false, nil
		case over():
			return true, nil
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// answerWaitOver is whether a send waiting on its key's answer window
// (logAnswer, awaitAnswerWindow) is done waiting: its deadline has passed,
// or, from level 15, its client has gone away. At level 14 a close leaves
// no mark, and a close before the first send's wait could have run out,
// followed by an end within that wait, is answered the end by a later
// send's clocks (domainOpReplay) where the first send answered the close's
// 202: there the send waits its bound, its client gone or not, so no close
// comes that early.
func (a *API) answerWaitOver(rq *request, deadline time.Time) bool {
	return time.Now().After(deadline) || rq.Context().Err() != nil && a.state.ClusterLevel() >= fsm.LevelDomainAnswerDecided
}

// answerDecided is whether rec, the record of the key whose command opened
// operation opID, holds an answer its answer window's end or close decided:
// any but a change's command's own "200 with the change pending" (a close
// decides 202, an end 200 with the change applied or 409; an order's
// command and its close both answer 202 with the domain registering).
func answerDecided(rec store.IdemRecord, opID string) bool {
	if rec.Decided || rec.Status != http.StatusOK {
		return true
	}
	var d api.Domain
	return json.Unmarshal(rec.Body, &d) != nil || !opPending(d, opID)
}

// closeAnswer proposes the close of the answer window of domainID's
// operation opID (CmdDomainAnswerClose), whether or not rq's client is
// still there, and returns the value its apply answered (unreadAnswer
// answers the domain in it).
func (a *API) closeAnswer(rq *request, domainID, opID string) (any, error) {
	env, err := fsm.NewEnvelope(fsm.CmdDomainAnswerClose, a.now(), fsm.DomainAnswerClose{DomainID: domainID, OpID: opID})
	if err != nil {
		return nil, err
	}
	res, err := a.apply(context.WithoutCancel(rq.Context()), env)
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, res.Err
	}
	return res.Value, nil
}

// opPending is whether domain d shows its operation opID pending: its
// registration or transfer (opID is the domain's id), or change opID.
func opPending(d api.Domain, opID string) bool {
	if opID == d.ID {
		return d.Status == api.DomainRegistering || d.Status == api.DomainTransferring
	}
	return d.Change != nil && d.Change.ID == opID && d.Change.Status == api.ChangePending
}

// answerLogged is whether the log decides the answer of the Idempotency-Key
// scope (its request's hash reqHash) to operation opID of domain domainID,
// for its first send or a replay, read from what the
// log did, after the key's command applied (review60 R7: the level read
// before the proposal could be 13 while the command applied at 14 and
// opened a window): the operation has the key's answer window open, or the
// key's record is marked decided (its window's end or close applied,
// fsm.LevelDomainAnswerDecided). Otherwise the command opened no window
// (applied below level 14, or rq has no key) and the clocks answer, or the
// window was decided at level 14 already (domainOpReplay says how that is
// answered).
func (a *API) answerLogged(scope, reqHash, accountID, domainID, opID string) (bool, error) {
	var d store.RegDomain
	var rec store.IdemRecord
	read := a.state.Read
	if a.readBack != nil {
		read = a.readBack
	}
	err := read(func(r store.ReadTx) (err error) {
		if d, err = r.OwnedRegDomain(accountID, domainID); err != nil {
			return err
		}
		if rec, err = r.Idempotency(scope); errors.Is(err, store.ErrNotFound) {
			err = nil
		}
		return err
	})
	if err != nil {
		return false, err
	}
	return answerOpen(d, opID, scope) || rec.Decided && rec.ReqHash == reqHash, nil
}

// replaysByLevel is whether a send of rq's key whose command the FSM
// answered with the key's record (the record not yet in this coordinator's
// state when the send began) is answered as a replay (domainOpReplay), from
// level 14, read after the proposal; below it the record as stored.
func (a *API) replaysByLevel(rq *request) bool {
	return rq.idem != nil && a.state.ClusterLevel() >= fsm.LevelDomainAnswer
}

// replayedAnswer answers a send whose command the FSM answered with the
// key's record (the same key proposed again: its record was not yet in this
// coordinator's state when the send began) as a replay does.
func (a *API) replayedAnswer(rq *request, failCode string) (int, any, error) {
	rec, err := readOne(a, "idempotency record", func(r store.ReadTx) (store.IdemRecord, error) { return r.Idempotency(rq.idem.Scope) })
	if err != nil {
		return 0, nil, err
	}
	return a.domainOpReplay(failCode)(rq, rq.idem.Scope, rec)
}

// answerOpen is whether operation opID of d still has the answer window of
// the key scope open: neither its end nor its window's close has decided
// the key's answer yet.
func answerOpen(d store.RegDomain, opID, scope string) bool {
	return d.Op != nil && d.Op.ID == opID && d.Op.Answer != nil && d.Op.Answer.Scope == scope
}

// logAnswer is the answer of the key scope (its request's hash reqHash) to
// operation opID of domain domainID, as the log decides it
// (fsm.LevelDomainAnswer), for the first send and every replay alike: it
// waits (DomainDeps.Wait at most; from level 15 no longer once its client
// has gone away) while the key's answer window is open,
// then, the window still open, proposes its close (fsm.CmdDomainAnswerClose;
// an end applied first wins), and answers the key's record: 201 (a change,
// 200) or 409 when the operation ended first, else 202 with the domain
// pending. A close that cannot be proposed (this coordinator lost its
// leadership) is that error (503 with Retry-After): the client sends the key
// again and is answered what the log decided.
func (a *API) logAnswer(rq *request, deps *DomainDeps, scope, reqHash, accountID, domainID, opID string) (int, any, error) {
	if deps.Kick != nil {
		deps.Kick()
	}
	deadline := time.Now().Add(deps.wait())
	var rec store.IdemRecord
	open, err := a.awaitAnswerWindow(func() bool { return a.answerWaitOver(rq, deadline) }, scope, accountID, domainID, opID, &rec)
	if err != nil {
		return 0, nil, err
	}
	if open {
		// A send whose client went away closes the window at once
		// from level 15 only (answerWaitOver says why).
		if _, err := a.closeAnswer(rq, domainID, opID); err != nil {
			return 0, nil, err
		}
		deadline = time.Now().Add(a.cfg.ApplyTimeout)
		if open, err = a.awaitAnswerWindow(func() bool { return time.Now().After(deadline) }, scope, accountID, domainID, opID, &rec); err != nil {
			return 0, nil, err
		}
		if open {
			// Applied, yet the window reads open: this state lags the
			// log the close was applied in.
			return 0, nil, fmt.Errorf("%w: the answer window of domain %s's operation %s reads open after its close", raftnode.ErrNotLeader, domainID, opID)
		}
	}
	if rec.ReqHash != reqHash {
		return 0, nil, fsm.ErrIdemMismatch
	}
	return rec.Status, json.RawMessage(rec.Body), nil
}

// pendingOpOf reads the record of a domain order (order) or change: the
// domain, the operation and the time its command was made at, when the
// record holds the command's own answer with the operation then pending
// (ok false otherwise). A change's record is its command's when the
// request's body changes a registry setting of the domain it answered
// (then that command made the change the answer shows pending; else the
// command changed auto_renew alone, or nothing).
func pendingOpOf(rq *request, rec store.IdemRecord, order bool) (domainID, opID string, since time.Time, ok bool) {
	var d api.Domain
	if json.Unmarshal(rec.Body, &d) != nil || d.ID == "" {
		return "", "", since, false
	}
	if order {
		return d.ID, d.ID, d.CreatedAt, rec.Status == http.StatusAccepted
	}
	if rec.Status != http.StatusOK || d.Change == nil || d.Change.Status != api.ChangePending {
		return "", "", since, false
	}
	req, err := DecodeDomainUpdate(rq.body)
	if err != nil {
		return "", "", since, false
	}
	registry := req.Nameservers != nil && !slices.Equal(req.Nameservers, d.Nameservers) ||
		req.TransferLock != nil && *req.TransferLock != d.TransferLock || req.WhoisPrivacy != nil && *req.WhoisPrivacy != d.WhoisPrivacy
	return d.ID, d.Change.ID, d.Change.RequestedAt, registry
}

// recordedAnswer is the record under scope when it is no longer rec: the
// answer the first send recorded (recordAnswer) after rec's command.
func (a *API) recordedAnswer(scope string, rec store.IdemRecord) (store.IdemRecord, bool) {
	var cur store.IdemRecord
	if err := a.state.Read(func(r store.ReadTx) (err error) { cur, err = r.Idempotency(scope); return }); err != nil {
		return cur, false
	}
	return cur, cur.ReqHash == rec.ReqHash && (cur.Status != rec.Status || !bytes.Equal(cur.Body, rec.Body))
}

// recordAnswer stores status and body as what the request's Idempotency-Key
// replays (fsm.CmdIdemAnswer), when the answer given is not the one its
// command stored: a domain order's command stores 202 registering (a
// domain change's, 200 with the change pending), and the client was
// answered 201 (200 applied) or 409 once the registry answered; SPEC.md
// promises a replay the first response. When it cannot be stored the replay
// stays the command's answer (the domain, followed with GET /domains/{id}).
func (a *API) recordAnswer(rq *request, status int, body any) {
	if rq.idem == nil {
		return
	}
	raw, err := json.Marshal(body)
	var env *fsm.Envelope
	if err == nil {
		env, err = fsm.NewEnvelope(fsm.CmdIdemAnswer, rq.now, fsm.IdemAnswer{Scope: rq.idem.Scope, ReqHash: rq.idem.ReqHash, Status: status, Body: raw})
	}
	if err == nil {
		_, err = a.apply(rq.Context(), env)
	}
	if err != nil {
		a.log.Warn("idempotent answer not recorded; a replay answers the command's", "status", status, "err", err)
	}
}

// registryCheck asks the registry whether name is free: a 503 when it
// cannot be asked.
func (a *API) registryCheck(ctx context.Context, deps *DomainDeps, name string) (registrar.CheckResult, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := deps.Registrar.Check(cctx, name)
	if err != nil || len(res) != 1 {
		a.log.Warn("registry check failed", "name", name, "err", err)
		return registrar.CheckResult{}, errf(http.StatusServiceUnavailable, "registry_unavailable", "the registry could not be asked whether %s is available; nothing was charged; retry shortly", name)
	}
	if !res[0].Available && res[0].Reason == "" {
		res[0].Reason = "taken"
	}
	return res[0], nil
}

// waitDomainOp kicks the driver and waits (DomainDeps.Wait at most) until
// operation opID of the domain has ended; done is false when it has not.
func (a *API) waitDomainOp(ctx context.Context, deps *DomainDeps, accountID, domainID, opID string) (store.RegDomain, bool) {
	if deps.Kick != nil {
		deps.Kick()
	}
	deadline := time.Now().Add(deps.wait())
	var d store.RegDomain
	for {
		err := a.state.Read(func(r store.ReadTx) (err error) { d, err = r.OwnedRegDomain(accountID, domainID); return })
		if err == nil && (d.Op == nil || d.Op.ID != opID) {
			return d, true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return d, false
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// updateDomain applies auto_renew at once and records a change of the
// registry settings as pending; the leader's driver pushes it and commits
// it, or rolls it back with the reason. The answer is the domain after the
// push (200: change applied), or with the change still pending (202); a
// failed push is a 409 change_failed with the reason.
func (a *API) updateDomain(rq *request) (int, any, error) {
	cur, req, err := loadAndBody(rq, a.loadRegDomain, DecodeDomainUpdate)
	if err != nil {
		return 0, nil, err
	}
	if err := outOfBailiwick(cur.Name, req.Nameservers, cur.Hosts); err != nil {
		return 0, nil, err
	}
	if cur.Status != api.DomainActive {
		return 0, nil, errf(http.StatusConflict, "domain_not_active", "%s", userMessage(&fsm.DomainStateError{DomainID: cur.ID, Status: cur.Status}))
	}
	// Settings as they are answer the domain as it is, nothing sent to the
	// registry (as the command would decide: an auto_renew held for a
	// change in progress is a change). With an Idempotency-Key the command
	// runs, as it records the answer its replays give.
	if rq.idem == nil {
		d, same, err := unchanged(a, rq, func() (store.RegDomain, error) { return a.loadRegDomain(rq) }, func(d store.RegDomain) bool {
			return d.Status == api.DomainActive && (req.Nameservers == nil || slices.Equal(req.Nameservers, d.Nameservers)) &&
				(req.TransferLock == nil || *req.TransferLock == d.TransferLock) && (req.WhoisPrivacy == nil || *req.WhoisPrivacy == d.WhoisPrivacy) &&
				(req.AutoRenew == nil || (*req.AutoRenew == d.AutoRenew && (d.Op == nil || d.Op.AutoRenew == nil)))
		})
		if err != nil {
			return 0, nil, err
		}
		if same {
			return http.StatusOK, d.Domain, nil
		}
	}
	registry := req.Nameservers != nil || req.TransferLock != nil || req.WhoisPrivacy != nil
	var deps *DomainDeps
	if registry {
		if deps, err = a.domainDeps(); err != nil {
			return 0, nil, err
		}
	}
	chID := ids.New("dch", rq.now)
	status, v, err := a.propose(rq.Context(), rq, fsm.CmdDomainChange, fsm.DomainChange{
		DomainID: cur.ID, AccountID: rq.caller.accountID, ChangeID: chID, ClTRID: fsm.DomainClTRID(chID),
		AutoRenew: req.AutoRenew, TransferLock: req.TransferLock, WhoisPrivacy: req.WhoisPrivacy, Nameservers: req.Nameservers,
	}, http.StatusOK)
	if err != nil {
		var state *fsm.DomainStateError
		if errors.As(err, &state) {
			return 0, nil, errf(http.StatusConflict, "domain_not_active", "%s", userMessage(state))
		}
		if errors.Is(err, fsm.ErrConflict) {
			return 0, nil, errf(http.StatusConflict, "change_pending", "%s", userMessage(err))
		}
		return 0, nil, err
	}
	dv, ok := v.(api.Domain)
	if !ok && a.replaysByLevel(rq) {
		return a.replayedAnswer(rq, "")
	}
	if !ok || dv.Change == nil || dv.Change.ID != chID {
		return status, v, nil // nothing for the registry, or a replay
	}
	return a.answerOp(rq, deps, rq.caller.accountID, cur.ID, chID, dv, func(d store.RegDomain) (int, any, error) { return changeEnded(d, chID) })
}

// checkDomain asks the registry whether ?name= can be registered, with the
// caller's yearly price when its TLD is offered.
func (a *API) checkDomain(rq *request) (int, any, error) {
	deps, err := a.domainDeps()
	if err != nil {
		return 0, nil, err
	}
	name := rq.URL.Query().Get("name")
	if name == "" {
		return 0, nil, &httpError{status: http.StatusBadRequest, code: "invalid_query", msg: `query parameter "name" is required`}
	}
	ascii, unicode, prod, err := a.offeredName("name", name)
	if err != nil {
		var he *httpError
		if errors.As(err, &he) {
			he.code, he.msg = "invalid_query", strings.Replace(he.msg, `field "name"`, `query parameter "name"`, 1)
		}
		return 0, nil, err
	}
	out := api.DomainCheck{Name: ascii, UnicodeName: unicode, Tld: prod.Tld}
	var taken bool
	if out.YearlyUsdCents, _, taken, err = a.domainTerms(rq, prod, ascii); err != nil {
		return 0, nil, err
	}
	if out.Available, out.Reason, err = a.availability(rq, deps, ascii, taken); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, out, nil
}

// availability is what a check or a quote says of name: not available,
// "registered", when a domain here holds it (taken), else the registry's
// answer (503 when the registry cannot be asked).
func (a *API) availability(rq *request, deps *DomainDeps, name string, taken bool) (available bool, reason string, err error) {
	if taken {
		return false, "registered", nil
	}
	res, err := a.registryCheck(rq.Context(), deps, name)
	return res.Available, res.Reason, err
}

// adminDomainView is the operator's view of a stored domain.
func adminDomainView(d store.RegDomain) api.AdminDomain {
	out := api.AdminDomain{Domain: d.Domain, AccountID: d.AccountID}
	if d.Op != nil {
		out.Op = &api.AdminDomainOp{ID: d.Op.ID, Kind: d.Op.Kind, ClTRID: d.Op.ClTRID, StartedAt: d.Op.StartedAt}
	}
	return out
}

// domainRegAdminRoutes are `hostplanectl domain list|show`.
func (a *API) domainRegAdminRoutes(mux *http.ServeMux, leader func(adminFunc) http.Handler) {
	mux.Handle("GET /admin/domains", leader(func(r *http.Request, _ []byte, _ time.Time) (int, any, error) {
		acc := r.URL.Query().Get("account")
		out := []api.AdminDomain{}
		err := a.state.Read(func(rt store.ReadTx) error {
			if err := accountFilter(rt, acc); err != nil {
				return err
			}
			all, err := rt.AllRegDomains()
			for _, d := range all {
				if acc == "" || d.AccountID == acc {
					out = append(out, adminDomainView(d))
				}
			}
			return err
		})
		return http.StatusOK, out, err
	}))
	mux.Handle("GET /admin/domains/{id}", leader(func(r *http.Request, _ []byte, _ time.Time) (int, any, error) {
		d, err := readOne(a, "domain", func(rt store.ReadTx) (store.RegDomain, error) { return rt.RegDomainByID(r.PathValue("id")) })
		return http.StatusOK, adminDomainView(d), err
	}))
}

// domainTerms is what the caller pays a year under prod's TLD, the wallet's
// balance, and whether name is held here already.
func (a *API) domainTerms(rq *request, prod api.AdminProduct, name string) (yearly, balance int64, taken bool, err error) {
	err = a.state.Read(func(r store.ReadTx) (err error) {
		yearly, balance, err = callerPrice(r, rq.caller.accountID, prod.Slug, prod.RetailYearlyUsdCents)
		taken = err == nil && r.RegDomainNameTaken(name) != ""
		return err
	})
	return yearly, balance, taken, err
}

// quoteDomain prices a registration body without ordering: the caller's
// price for the years, what the wallet lacks, and the registry's answer.
func (a *API) quoteDomain(rq *request) (int, any, error) {
	deps, req, err := a.domainOrderRequest(rq)
	if err != nil {
		return 0, nil, err
	}
	ascii, unicode, prod, err := a.offeredName("name", req.Name)
	if err != nil {
		return 0, nil, err
	}
	out := api.DomainQuote{Name: ascii, UnicodeName: unicode, Tld: prod.Tld, Years: req.Years}
	var taken bool
	if out.YearlyUsdCents, out.BalanceUsdCents, taken, err = a.domainTerms(rq, prod, ascii); err != nil {
		return 0, nil, err
	}
	out.TotalUsdCents = out.YearlyUsdCents * int64(req.Years)
	out.ShortfallUsdCents = max(0, out.TotalUsdCents-out.BalanceUsdCents)
	if out.Available, out.Reason, err = a.availability(rq, deps, ascii, taken); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, out, nil
}

// DecodeDomainTransfer validates POST /v1/domains/transfer (everything but
// whether the TLD is offered).
func DecodeDomainTransfer(body []byte) (api.DomainTransferRequest, error) {
	return decodeChecked(body, func(req *api.DomainTransferRequest) error {
		name, err := requestedDomainName(req.Name)
		if err != nil {
			return err
		}
		req.Name = name
		if req.AuthCode == "" {
			return invalidField("auth_code", "is required (the transfer secret the current registrar gives)")
		}
		if len(req.AuthCode) > 64 || !printableASCII(req.AuthCode) {
			return invalidField("auth_code", "must be 1-64 printable ASCII characters without spaces")
		}
		return domainContact(req.Contact)
	})
}

// transferDomain moves a domain registered elsewhere here with its auth
// code: the registry must know the name (nothing charged otherwise), then
// one command debits a year and records the transfer with the auth code
// sealed; the leader's driver asks the registry and ends it (active with
// the registry's new expiry, or failed and refunded with the reason).
func (a *API) transferDomain(rq *request) (int, any, error) {
	deps, req, o, err := a.transferOrder(rq) // its quote's checks too
	if err != nil {
		return 0, nil, err
	}
	if o.SealedAuthCode, err = deps.SealAuthCode(domainreg.SealAuthCodeID(o.ID), req.AuthCode); err != nil {
		return 0, nil, err
	}
	o.Years, o.Contact, o.AutoRenew, o.Transfer = 1, req.Contact, autoRenewOr(req.AutoRenew), true
	return a.placeDomainOrder(rq, deps, o, "transfer_failed")
}
