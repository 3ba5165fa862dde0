package nodes

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/fsm/fsmtest"
	"github.com/hostplane/hostplane/coordinator/internal/session"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/coordinator/internal/webhook"
	"github.com/hostplane/hostplane/internal/clock"
	pb "github.com/hostplane/hostplane/proto"
)

type leaderStub struct{}

func (leaderStub) IsLeader() bool   { return true }
func (leaderStub) LeaderID() string { return "c1" }

type fixedClock struct {
	clock.Real
	t time.Time
}

func (c fixedClock) Now() time.Time { return c.t }

// TestEnrolJudgesTheTokenOnTheClusterClock: a join token's expiry is set on
// the cluster's clock. On a leader whose wall clock is 3 h behind it, a
// token that expired an hour before the cluster's time (by the leader that
// made it) is refused, and an enrolment with a current token is recorded at
// the cluster's time, not before the token was made.
func TestEnrolJudgesTheTokenOnTheClusterClock(t *testing.T) {
	r := fsmtest.Open(t)
	f := r.FSM
	cluster := time.Now().UTC().Truncate(time.Millisecond)
	made := cluster.Add(-2 * time.Hour) // the tokens' time, on the cluster's clock
	kek := make([]byte, webhook.KEKSize)
	s := New(Config{ID: "c1", CertTTL: 24 * time.Hour, Clock: fixedClock{t: cluster.Add(-3 * time.Hour)}, Now: func() time.Time { return cluster }},
		Deps{State: f, Cluster: leaderStub{}, Ready: func() bool { return true }, Apply: r.Commit,
			Sealer: func() (*webhook.Sealer, error) { return webhook.NewSealer(kek) }})
	s.leading.Store(true)
	fp, err := s.EnsureCA(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	token := func(id string, ttl time.Duration) pb.JoinToken {
		r.MustAt(t, made, fsm.CmdNodeTokenCreate, fsm.NodeTokenCreate{ID: id, Hash: pb.TokenSecretHash("secret-" + id), ExpiresAt: made.Add(ttl)})
		return pb.JoinToken{ID: id, Secret: "secret-" + id, CAFingerprint: fp}
	}
	enrol := func(tok pb.JoinToken, node string) *pb.EnrolResponse {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: node}}, key)
		if err != nil {
			t.Fatal(err)
		}
		csr, err := x509.ParseCertificateRequest(der)
		if err != nil {
			t.Fatal(err)
		}
		return backend{s}.Enrol(context.Background(), session.EnrolInput{Token: tok, CSR: csr, NodeID: node})
	}

	// Expired at made+1h, an hour before the cluster's time; this leader's
	// wall clock (made-1h) is before it.
	if r := enrol(token("jt_old", time.Hour), "hv-old"); r.GetError().GetCode() != "refused" || !strings.Contains(r.GetError().GetMessage(), "token") {
		t.Fatalf("enrol with a token expired on the cluster's clock: error %v, certificate issued: %v; want refused", r.GetError(), len(r.GetCertDer()) > 0)
	}
	if r := enrol(token("jt_new", 3*time.Hour), "hv-new"); r.GetError() != nil {
		t.Fatalf("enrol with a current token: %+v", r.GetError())
	}
	var n store.AgentNode
	if err := f.Read(func(r store.ReadTx) (err error) { n, err = r.AgentNode("hv-new"); return }); err != nil {
		t.Fatal(err)
	}
	if !n.EnrolledAt.Equal(cluster) {
		t.Fatalf("enrolled at %s (token made at %s), want the cluster's %s", n.EnrolledAt, made, cluster)
	}
}
