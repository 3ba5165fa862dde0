package httpapi

import (
	"testing"

	"github.com/hostplane/hostplane/pkg/validate"
)

func FuzzDecodeTransferLeadership(f *testing.F) {
	for _, s := range append(decoderSeeds, `{}`, `{"to":"c2"}`, `{"to":""}`, `{"to":"Bad ID"}`, `{"to":"c2","x":1}`, `{"to":7}`) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeTransferLeadership(body)
		if err != nil {
			mustBeClientError(t, err)
			return
		}
		if req.To != "" && validate.CoordinatorID(req.To) != nil {
			t.Fatalf("accepted target %q", req.To)
		}
	})
}
