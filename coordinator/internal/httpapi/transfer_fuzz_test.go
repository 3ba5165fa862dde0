package httpapi

import (
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
)

func FuzzDecodeTransferLeadership(f *testing.F) {
	seeds := append(decoderSeeds, `{}`, `{"to":"c2"}`, `{"to":""}`, `{"to":"Bad ID"}`, `{"to":"c2","x":1}`, `{"to":7}`)
	fuzzDecoder(f, seeds, DecodeTransferLeadership, func(t *testing.T, req api.ClusterTransferLeadershipRequest) {
		if req.To != "" && validate.CoordinatorID(req.To) != nil {
			t.Fatalf("accepted target %q", req.To)
		}
	})
}
