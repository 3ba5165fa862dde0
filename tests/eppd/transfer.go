package eppd

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/hostplane/hostplane/internal/eppxml"
	bolt "go.etcd.io/bbolt"
)

// domainTransfer handles the transfer ops (RFC 5731 3.2.4). A request with
// the right auth code by another registrar completes at once
// (serverApproved) when Config.TransferPending is 0; otherwise it is pending
// (1001) until the losing registrar approves or rejects it, the gaining one
// cancels it, or TransferPending passes (serverApproved). Each step is told
// to the other party through its poll queue.
func (ss *session) domainTransfer(tx *bolt.Tx, op string, t *eppxml.DomainTransfer) (answer, error) {
	d, err := getDomain(tx, lower(t.Name))
	if err != nil {
		return answer{}, err
	}
	now := ss.srv.nowSec()
	switch op {
	case "request":
	case "approve", "reject", "cancel":
		p := d.Pending
		if p == nil {
			return answer{}, refuse(eppxml.CodeNotPendingTransfer, "no transfer of %s is pending", d.Name)
		}
		if party := map[string]string{"approve": p.Trn.AcID, "reject": p.Trn.AcID, "cancel": p.Trn.ReID}[op]; party != ss.clID {
			return answer{}, refuse(eppxml.CodeAuthorization, "only %s may %s this transfer", party, op)
		}
		if op == "approve" {
			trn, err := completeTransfer(tx, d, "clientApproved", now, p.Trn.ReID)
			if err != nil {
				return answer{}, err
			}
			return answer{resData: &eppxml.ResData{DomainTrn: trn}}, nil
		}
		trn := p.Trn
		trn.TrStatus, trn.AcDate = map[string]string{"reject": "clientRejected", "cancel": "clientCancelled"}[op], fmtTime(now)
		trn.ExDate = fmtTime(d.ExDate)
		d.Pending, d.LastTrn = nil, &trn
		if err := putJSON(tx, bucketDomains, d.Name, d); err != nil {
			return answer{}, err
		}
		other := map[string]string{"reject": trn.ReID, "cancel": trn.AcID}[op]
		if err := queuePoll(tx, other, pollRec{QDate: now, Msg: "Transfer " + trn.TrStatus + ".", Trn: &trn}); err != nil {
			return answer{}, err
		}
		return answer{resData: &eppxml.ResData{DomainTrn: &trn}}, nil
	default:
		return answer{}, refuse(eppxml.CodeValueSyntax, "transfer op %q", op)
	}
	if d.ClID == ss.clID {
		return answer{}, refuse(eppxml.CodeNotTransferable, "domain %s is already sponsored by you", d.Name)
	}
	if d.Pending != nil {
		return answer{}, refuse(eppxml.CodePendingTransfer, "a transfer of %s is pending", d.Name)
	}
	if t.AuthInfo == nil || t.AuthInfo.PW == "" || t.AuthInfo.PW != d.AuthPW {
		return answer{}, refuse(eppxml.CodeInvalidAuthInfo, "wrong auth code for %s", d.Name)
	}
	if slices.Contains(d.Status, "clientTransferProhibited") {
		return answer{}, refuse(eppxml.CodeStatusProhibits, "clientTransferProhibited is set on %s", d.Name)
	}
	n, err := years(t.Period, 1)
	if err != nil {
		return answer{}, err
	}
	wait := ss.srv.cfg.TransferPending
	// Due from the exact clock: now is truncated to the second for display.
	d.Pending = &pendingTrn{Years: n, Due: ss.srv.now().UTC().Add(wait), Trn: eppxml.DomainTrnData{Name: d.Name, TrStatus: "pending",
		ReID: ss.clID, ReDate: fmtTime(now), AcID: d.ClID, AcDate: fmtTime(now.Add(wait)), ExDate: fmtTime(d.ExDate.AddDate(n, 0, 0))}}
	if wait <= 0 {
		trn, err := completeTransfer(tx, d, "serverApproved", now, d.ClID)
		if err != nil {
			return answer{}, err
		}
		return answer{resData: &eppxml.ResData{DomainTrn: trn}}, nil
	}
	if err := putJSON(tx, bucketDomains, d.Name, d); err != nil {
		return answer{}, err
	}
	trn := d.Pending.Trn
	if err := queuePoll(tx, d.ClID, pollRec{QDate: now, Msg: "Transfer requested.", Trn: &trn}); err != nil {
		return answer{}, err
	}
	return answer{code: eppxml.CodePending, resData: &eppxml.ResData{DomainTrn: &trn}}, nil
}

// completeTransfer moves d to the gaining registrar of its pending
// transfer, adds the period, replaces the auth code (the old one is spent)
// and tells the registrars in tell.
func completeTransfer(tx *bolt.Tx, d *domainRec, status string, now time.Time, tell ...string) (*eppxml.DomainTrnData, error) {
	p := d.Pending
	trn := p.Trn
	trn.TrStatus, trn.AcDate = status, fmtTime(now)
	d.ClID, d.UpID, d.UpDate, d.TrDate = trn.ReID, trn.ReID, now, now
	d.ExDate = d.ExDate.AddDate(p.Years, 0, 0)
	trn.ExDate = fmtTime(d.ExDate)
	d.AuthPW = newAuthCode()
	d.Pending, d.LastTrn = nil, &trn
	if err := putJSON(tx, bucketDomains, d.Name, d); err != nil {
		return nil, err
	}
	// RFC 5731 §3.2.4: the subordinate host objects move with the domain.
	subs, err := subordinates(tx, d.Name)
	if err != nil {
		return nil, err
	}
	for _, h := range subs {
		h.ClID = d.ClID
		if err := putJSON(tx, bucketHosts, h.Name, h); err != nil {
			return nil, err
		}
	}
	for _, who := range tell {
		if err := queuePoll(tx, who, pollRec{QDate: now, Msg: "Transfer " + status + ".", Trn: &trn}); err != nil {
			return nil, err
		}
	}
	return &trn, nil
}

func (ss *session) transferQuery(tx *bolt.Tx, t *eppxml.DomainTransfer) (answer, error) {
	d, err := getDomain(tx, lower(t.Name))
	if err != nil {
		return answer{}, err
	}
	trn := d.LastTrn
	if d.Pending != nil {
		trn = &d.Pending.Trn
	}
	if trn == nil {
		return answer{}, refuse(eppxml.CodeNotPendingTransfer, "%s has never been transferred", d.Name)
	}
	if trn.ReID != ss.clID && trn.AcID != ss.clID && (t.AuthInfo == nil || t.AuthInfo.PW != d.AuthPW) {
		return answer{}, refuse(eppxml.CodeAuthorization, "not a party to the transfer of %s", d.Name)
	}
	return answer{resData: &eppxml.ResData{DomainTrn: trn}}, nil
}

// approveDue completes, every interval, the pending transfers whose time
// has passed (serverApproved), until ctx ends.
func (s *Server) approveDue(ctx context.Context, every time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := s.now().UTC()
		var due []string
		err := s.db.View(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketDomains).ForEach(func(k, v []byte) error {
				var d domainRec
				if err := json.Unmarshal(v, &d); err != nil {
					return err
				}
				if d.Pending != nil && !d.Pending.Due.After(now) {
					due = append(due, string(k))
				}
				return nil
			})
		})
		if err == nil && len(due) > 0 {
			err = s.db.Update(func(tx *bolt.Tx) error {
				for _, name := range due {
					d, err := getDomain(tx, name)
					if err != nil || d.Pending == nil || d.Pending.Due.After(now) {
						continue // deleted, or acted on since
					}
					if _, err := completeTransfer(tx, d, "serverApproved", now.Truncate(time.Second), d.Pending.Trn.ReID, d.Pending.Trn.AcID); err != nil {
						return err
					}
					s.log.Info("transfer approved by the registry", "domain", name, "to", d.ClID)
				}
				return nil
			})
		}
		if err != nil {
			s.log.Error("approving due transfers", "err", err)
		}
	}
}
