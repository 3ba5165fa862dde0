package session

import (
	"crypto/x509"
	"errors"
	"fmt"

	pb "github.com/hostplane/hostplane/proto"
)

// EnrolInput is a checked enrolment request.
type EnrolInput struct {
	Token  pb.JoinToken
	CSR    *x509.CertificateRequest
	NodeID string
	Hello  *pb.Hello
}

// ParseEnrolRequest checks an enrolment envelope: a well-formed join token, a
// CSR with a valid signature whose common name is a valid node id, and (if
// present) a Hello naming the same node.
func ParseEnrolRequest(env *pb.Envelope) (EnrolInput, error) {
	req := env.GetEnrolRequest()
	if req == nil {
		return EnrolInput{}, errors.New("expected an enrol request")
	}
	tok, err := pb.ParseJoinToken(req.Token)
	if err != nil {
		return EnrolInput{}, err
	}
	csr, id, err := ParseNodeCSR(req.CsrDer)
	if err != nil {
		return EnrolInput{}, err
	}
	if h := req.Hello; h != nil && h.NodeId != "" && h.NodeId != id {
		return EnrolInput{}, fmt.Errorf("hello names node %q but the csr is for %q", h.NodeId, id)
	}
	return EnrolInput{Token: tok, CSR: csr, NodeID: id, Hello: req.Hello}, nil
}
