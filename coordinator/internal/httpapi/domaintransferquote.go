package httpapi

import (
	"net/http"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/pkg/api"
)

// transferOrder is what a transfer and its quote both check before
// anything is charged, so a quote answers exactly the bodies the transfer
// takes: transfers offered (404 domains_not_offered without a registrar or
// the coordinators' key-encryption key), the body (DecodeDomainTransfer:
// 400 naming the field), the name offered here and held by no domain here
// (400, 409 domain_unavailable), and known to the registry (503 when it
// cannot be asked, 409 domain_not_registered when it does not know the
// name). o is the order as newDomainOrder starts it.
func (a *API) transferOrder(rq *request) (*DomainDeps, api.DomainTransferRequest, fsm.DomainOrder, error) {
	deps, err := a.domainDeps()
	if err != nil {
		return nil, api.DomainTransferRequest{}, fsm.DomainOrder{}, err
	}
	if deps.SealAuthCode == nil {
		return nil, api.DomainTransferRequest{}, fsm.DomainOrder{}, errf(http.StatusNotFound, "domains_not_offered", "this provider does not take domain transfers (they need the coordinators' key-encryption key, --webhook-kek-file)")
	}
	req, err := DecodeDomainTransfer(rq.body)
	if err != nil {
		return nil, req, fsm.DomainOrder{}, err
	}
	o, res, err := a.newDomainOrder(rq, deps, req.Name, "is registered here already")
	if err != nil {
		return nil, req, o, err
	}
	if res.Available {
		return nil, req, o, errf(http.StatusConflict, "domain_not_registered", "%s is not registered anywhere, so there is nothing to transfer (register it with POST /v1/domains); nothing was charged", o.Name)
	}
	return deps, req, o, nil
}

// quoteDomainTransfer prices a transfer body without ordering: one year at
// the caller's price (what placeDomainOrder debits for a transfer) and what
// the wallet lacks. It refuses what the transfer refuses (transferOrder),
// so MCP's transfer_domain hands out no confirmation token for a body the
// transfer would refuse. Nothing is recorded.
func (a *API) quoteDomainTransfer(rq *request) (int, any, error) {
	_, _, o, err := a.transferOrder(rq)
	if err != nil {
		return 0, nil, err
	}
	_, _, prod, err := a.offeredName("name", o.Name)
	if err != nil {
		return 0, nil, err
	}
	out := api.DomainTransferQuote{Name: o.Name, UnicodeName: o.UnicodeName, Tld: o.Tld, Years: 1}
	if out.YearlyUsdCents, out.BalanceUsdCents, _, err = a.domainTerms(rq, prod, o.Name); err != nil {
		return 0, nil, err
	}
	out.TotalUsdCents = out.YearlyUsdCents * int64(out.Years)
	out.ShortfallUsdCents = max(0, out.TotalUsdCents-out.BalanceUsdCents)
	return http.StatusOK, out, nil
}
