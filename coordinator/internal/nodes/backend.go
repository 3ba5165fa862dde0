package nodes

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/session"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	pb "github.com/hostplane/hostplane/proto"
)

// backend implements session.Backend for a coordinator.
type backend struct{ s *Service }

const serverCertTTL = 30 * 24 * time.Hour

// ca is the installed agent CA; before there is one, the error says missing.
func (b backend) ca(missing string) (*session.CA, error) {
	ca, err := b.s.loadCA()
	if err != nil {
		return nil, err
	}
	if ca == nil {
		return nil, errors.New(missing)
	}
	return ca, nil
}

func (b backend) Certificate() (*tls.Certificate, error) {
	ca, err := b.ca("no node ca yet: create a join token first")
	if err != nil {
		return nil, err
	}
	s := b.s
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.serverCert == nil || s.certFP != ca.Fingerprint || now.After(s.certUntil) {
		cert, err := ca.ServerCert(now, serverCertTTL)
		if err != nil {
			return nil, err
		}
		s.serverCert, s.certFP, s.certUntil = cert, ca.Fingerprint, now.Add(serverCertTTL*2/3)
	}
	return s.serverCert, nil
}

func (b backend) ClientCAs() (*x509.CertPool, error) {
	ca, err := b.ca("no node ca yet")
	if err != nil {
		return nil, err
	}
	return ca.Pool(), nil
}

func (b backend) Leader() (bool, string, string) {
	s := b.s
	if s.deps.Cluster.IsLeader() && s.deps.Ready() && s.leading.Load() {
		return true, s.cfg.ID, s.SessionAddr()
	}
	id := s.deps.Cluster.LeaderID()
	if id == "" || id == s.cfg.ID {
		return false, "", "" // no leader, or this one winding down or not ready yet
	}
	var addr string
	_ = s.deps.State.Read(func(r store.ReadTx) error { addr = r.SessionAddr(id); return nil })
	return false, id, addr
}

func (b backend) node(id string) (store.AgentNode, error) {
	var n store.AgentNode
	err := b.s.deps.State.Read(func(r store.ReadTx) (err error) { n, err = r.AgentNode(id); return })
	return n, err
}

func (b backend) AuthorizeNode(nodeID, serial string) error {
	n, err := b.node(nodeID)
	if err != nil {
		return fmt.Errorf("authorize node %s: %w", nodeID, err)
	}
	if n.State == api.AgentNodeRemoved {
		return fmt.Errorf("authorize node %s: the node was removed", nodeID)
	}
	if !fsm.CertAccepted(n, serial, b.s.now()) {
		return fmt.Errorf("authorize node %s: certificate %s is not current", nodeID, serial)
	}
	return nil
}

func enrolErr(code, msg string) *pb.EnrolResponse {
	return &pb.EnrolResponse{Error: &pb.Error{Code: code, Message: msg}}
}

func (b backend) Enrol(ctx context.Context, in session.EnrolInput) *pb.EnrolResponse {
	s := b.s
	if leader, _, addr := b.Leader(); !leader {
		r := enrolErr("not_leader", "this coordinator is not the leader")
		r.LeaderAddr = addr
		return r
	}
	ca, err := s.loadCA()
	if err != nil || ca == nil {
		s.log.Error("enrol: node ca unavailable", "err", err)
		return enrolErr("unavailable", "node ca unavailable")
	}
	if in.Token.CAFingerprint != ca.Fingerprint {
		return enrolErr("refused", fsm.ErrTokenRefused.Error())
	}
	hash := pb.TokenSecretHash(in.Token.Secret)
	keyHash, err := publicKeyHash(in.CSR.PublicKey)
	if err != nil {
		return enrolErr("bad_request", err.Error())
	}
	now := s.now().UTC()
	// The token is checked, and the enrolment recorded, at the cluster's
	// time: its expiry was set on that clock, and on a leader whose clock is
	// behind the wall clock would take a token that expired before this
	// leader took over. The certificate is signed on the wall clock, which
	// TLS checks it against.
	at := s.cfg.Now().UTC()
	// Check before signing; the command checks again at its own time. A retry
	// of an enrolment that went through (same token, node and key) gets the
	// certificate issued then.
	var again *store.AgentNode
	err = s.deps.State.Read(func(r store.ReadTx) error {
		if n, ok := fsm.EnrolledWith(r, in.Token.ID, hash, in.NodeID, keyHash); ok {
			again = &n
			return nil
		}
		_, err := fsm.CheckJoinToken(r, in.Token.ID, hash, in.NodeID, at)
		return err
	})
	if err != nil {
		return enrolErr("refused", err.Error())
	}
	if again != nil {
		s.log.Info("enrolment retried; returning the certificate issued before", "node", in.NodeID, "token_id", in.Token.ID)
		return &pb.EnrolResponse{NodeId: in.NodeID, CertDer: again.CertDER, CaDer: ca.DER}
	}
	cert, err := ca.SignNode(in.CSR, in.NodeID, now, s.cfg.CertTTL)
	if err != nil {
		s.log.Error("enrol: sign", "node", in.NodeID, "err", err)
		return enrolErr("unavailable", "could not sign the certificate")
	}
	hostname := ""
	if in.Hello != nil {
		hostname = in.Hello.Hostname
	}
	env, err := fsm.NewEnvelope(fsm.CmdNodeEnrol, at, fsm.NodeEnrol{TokenID: in.Token.ID, TokenHash: hash, NodeID: in.NodeID,
		Hostname: hostname, CertSerial: cert.Serial, CertNotAfter: cert.NotAfter, CertDER: cert.DER, KeyHash: keyHash})
	if err == nil {
		_, err = s.deps.Apply(ctx, env)
	}
	if err != nil {
		if errors.Is(err, fsm.ErrInvalid) || errors.Is(err, fsm.ErrConflict) {
			return enrolErr("refused", err.Error())
		}
		s.log.Error("enrol: record", "node", in.NodeID, "err", err)
		return enrolErr("unavailable", "could not record the enrolment; retry with the same token")
	}
	s.log.Info("node enrolled", "node", in.NodeID, "token_id", in.Token.ID, "cert_serial", cert.Serial)
	return &pb.EnrolResponse{NodeId: in.NodeID, CertDer: cert.DER, CaDer: ca.DER}
}

func (b backend) Hello(ctx context.Context, nodeID, serial string, h *pb.Hello) error {
	n, err := b.node(nodeID)
	if err != nil {
		return err
	}
	p := fsm.NodeHello{NodeID: nodeID, CertSerial: serial, Hostname: h.Hostname, Roles: h.Roles,
		Capacity:        api.AgentNodeCapacity{VCPUs: h.Capacity.GetVcpus(), MemoryBytes: h.Capacity.GetMemoryBytes(), DiskBytes: h.Capacity.GetDiskBytes()},
		SoftwareVersion: h.SoftwareVersion, ProtocolVersion: h.ProtocolVersion, Bridges: h.Bridges}
	if p.Roles == nil {
		p.Roles = []string{}
	}
	level := uint16(1)
	_ = b.s.deps.State.Read(func(r store.ReadTx) error { level = r.ClusterLevel(); return nil })
	if level >= fsm.LevelHostingConnection {
		if p.HostingConnection, err = HostingConnection(h.GetHostingConnection()); err != nil {
			b.s.log.Warn("hello: the node's hosting connection details are refused; its accounts show the defaults", "node", nodeID, "err", err)
		}
		p.HostingConnection = fsm.HostingConnectionAt(p.HostingConnection, level)
	} else {
		// Not written below the level (a replica of the release before would
		// not read it), so not compared either.
		p.HostingConnection = n.HostingConnection
	}
	if n.State == api.AgentNodeReady && n.Hostname == p.Hostname && slices.Equal(n.Roles, p.Roles) && n.Capacity == p.Capacity &&
		n.SoftwareVersion == p.SoftwareVersion && n.ProtocolVersion == p.ProtocolVersion && slices.Equal(n.Bridges, p.Bridges) &&
		fsm.SameHostingConnection(n.HostingConnection, p.HostingConnection) {
		return nil // nothing new: no Raft write
	}
	if level < fsm.LevelHostingConnection {
		p.HostingConnection = nil
	}
	_, err = b.s.propose(ctx, fsm.CmdNodeHello, p)
	return err
}

// HostingConnection is a node's connection details as its agent sent them
// (in its Hello or a usage report): nil when it sent none, and nil with the
// reason when they break fsm.CheckNodeHostingConnection (the leader proposes
// none of them then).
func HostingConnection(c *pb.HostingConnection) (*api.NodeHostingConnection, error) {
	if c == nil {
		return nil, nil
	}
	conn := &api.NodeHostingConnection{SFTPHost: c.SftpHost, SFTPPort: int(c.SftpPort), DBPort: int(c.DbPort), DBKnown: c.DbKnown}
	if err := fsm.CheckNodeHostingConnection(*conn); err != nil {
		return nil, err
	}
	return conn, nil
}

func (b backend) Renew(ctx context.Context, nodeID, serial string, csrDER []byte) ([]byte, string, error) {
	s := b.s
	csr, id, err := session.ParseNodeCSR(csrDER)
	if err != nil {
		return nil, "", err
	}
	if id != nodeID {
		return nil, "", fmt.Errorf("renew node %s: csr is for %q", nodeID, id)
	}
	if err := b.AuthorizeNode(nodeID, serial); err != nil {
		return nil, "", err
	}
	ca, err := s.loadCA()
	if err != nil || ca == nil {
		return nil, "", fmt.Errorf("renew node %s: node ca unavailable", nodeID)
	}
	now := s.now().UTC()
	cert, err := ca.SignNode(csr, nodeID, now, s.cfg.CertTTL)
	if err != nil {
		return nil, "", err
	}
	env, err := fsm.NewEnvelope(fsm.CmdNodeCertRenew, now, fsm.NodeCertRenew{NodeID: nodeID, OldSerial: serial, CertSerial: cert.Serial, CertNotAfter: cert.NotAfter})
	if err != nil {
		return nil, "", err
	}
	if _, err := s.deps.Apply(ctx, env); err != nil {
		return nil, "", fmt.Errorf("renew node %s: %w", nodeID, err)
	}
	s.log.Info("node certificate renewed", "node", nodeID, "old_serial", serial, "cert_serial", cert.Serial)
	return cert.DER, cert.Serial, nil
}
