package session

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	pb "github.com/hostplane/hostplane/proto"
	"github.com/quic-go/quic-go"
)

// enrolTLS authenticates the coordinator by the CA fingerprint in the join
// token: the agent does not hold the CA yet, so the chain the server sends must
// contain a CA with that fingerprint, and the leaf must chain to it.
func enrolTLS(fingerprint string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13, NextProtos: []string{pb.ALPNEnrol},
		InsecureSkipVerify: true, // replaced by the pinned-CA check below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) < 2 {
				return errors.New("coordinator sent no CA certificate")
			}
			var ca *x509.Certificate
			for _, der := range raw[1:] {
				if pb.CAFingerprint(der) == fingerprint {
					ca, _ = x509.ParseCertificate(der)
				}
			}
			if ca == nil || !ca.IsCA {
				return errors.New("coordinator's CA does not match the join token's fingerprint")
			}
			leaf, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			pool := x509.NewCertPool()
			pool.AddCert(ca)
			_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: serverName, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			return err
		},
	}
}

// Enrol spends the join token once: it sends a CSR to the leader (following a
// follower's pointer), checks the certificate it gets and stores the
// credentials. A refused token is ErrTokenRefused; other failures are retried
// with back-off until ctx ends.
func (a *Agent) Enrol(ctx context.Context) error {
	tok, err := pb.ParseJoinToken(a.cfg.JoinToken)
	if err != nil {
		return fmt.Errorf("enrol node %s: %w: %w", a.cfg.NodeID, ErrTokenRefused, err)
	}
	key, csr, err := newKeyAndCSR(a.cfg.NodeID)
	if err != nil {
		return err
	}
	h := a.cfg.Hello()
	h.NodeId, h.ProtocolVersion = a.cfg.NodeID, pb.ProtocolVersion
	req := &pb.EnrolRequest{Token: a.cfg.JoinToken, CsrDer: csr, Hello: h}
	for attempt := 0; ; attempt++ {
		addr := a.nextAddr()
		resp, err := a.enrolOnce(ctx, addr, tok.CAFingerprint, req)
		if err == nil && resp.Error == nil {
			ca, perr := x509.ParseCertificate(resp.CaDer)
			if perr != nil || pb.CAFingerprint(resp.CaDer) != tok.CAFingerprint {
				return fmt.Errorf("enrol node %s: coordinator returned a CA that does not match the token", a.cfg.NodeID)
			}
			cert, cerr := checkIssued(resp.CertDer, ca, a.cfg.NodeID, key)
			if cerr != nil {
				return fmt.Errorf("enrol node %s: %w", a.cfg.NodeID, cerr)
			}
			creds := &Creds{NodeID: a.cfg.NodeID, Cert: cert, Key: key, CA: ca}
			if err := creds.Save(a.cfg.Dir); err != nil {
				return err
			}
			a.mu.Lock()
			a.creds = creds
			a.mu.Unlock()
			a.emit(Event{Kind: "enrolled", Coordinator: addr})
			a.log.Info("node enrolled", "node", a.cfg.NodeID, "coordinator", addr, "cert_expires", cert.NotAfter)
			return nil
		}
		if err == nil {
			switch resp.Error.Code {
			case "refused", "bad_request":
				return fmt.Errorf("enrol node %s: %w: %s", a.cfg.NodeID, ErrTokenRefused, resp.Error.Message)
			case "not_leader":
				if resp.LeaderAddr != "" && resp.LeaderAddr != addr {
					a.setHint(resp.LeaderAddr)
					continue
				}
			}
			err = fmt.Errorf("%s: %s", resp.Error.Code, resp.Error.Message)
		}
		a.log.Warn("enrolment attempt failed; retrying", "coordinator", addr, "err", err)
		if err := a.sleep(ctx, a.cfg.Backoff.Delay(attempt)); err != nil {
			return fmt.Errorf("enrol node %s: %w", a.cfg.NodeID, err)
		}
	}
}

func (a *Agent) enrolOnce(ctx context.Context, addr, fp string, req *pb.EnrolRequest) (*pb.EnrolResponse, error) {
	dctx, cancel := context.WithTimeout(ctx, a.cfg.DialTimeout)
	defer cancel()
	qc, err := quic.DialAddr(dctx, addr, enrolTLS(fp), a.quicConfig())
	if err != nil {
		return nil, fmt.Errorf("dial coordinator %s: %w", addr, err)
	}
	defer qc.CloseWithError(quic.ApplicationErrorCode(pb.CloseOK), "")
	st, err := qc.OpenStreamSync(dctx)
	if err != nil {
		return nil, fmt.Errorf("enrol stream to %s: %w", addr, err)
	}
	_ = st.SetDeadline(time.Now().Add(15 * time.Second))
	if err := pb.WriteEnvelope(st, &pb.Envelope{Seq: 1, Body: &pb.Envelope_EnrolRequest{EnrolRequest: req}}); err != nil {
		return nil, err
	}
	env, err := pb.ReadEnvelope(st, 0)
	if err != nil {
		return nil, fmt.Errorf("read enrol response from %s: %w", addr, err)
	}
	resp := env.GetEnrolResponse()
	if resp == nil {
		return nil, fmt.Errorf("coordinator %s answered enrolment with %T", addr, env.Body)
	}
	return resp, nil
}
