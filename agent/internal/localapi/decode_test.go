package localapi

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
)

func TestDecode(t *testing.T) {
	var r api.NodeProvisionRequest
	if err := Decode(strings.NewReader(`{"op_id":"a","name":"b","plan":{"vcpus":1}}`), &r); err != nil || r.Plan.VCPUs != 1 {
		t.Fatalf("%+v %v", r, err)
	}
	for _, body := range []string{"", "{", `{"x":1}`, `{} {}`, `[]`, `{"plan":{"vcpus":-1}}`, strings.Repeat(" ", maxBody+1)} {
		if err := Decode(strings.NewReader(body), &r); !errors.Is(err, validate.ErrInvalid) {
			t.Errorf("Decode(%.20q) = %v", body, err)
		}
	}
}

func fuzzDecode[T any](f *testing.F, seeds ...string) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var v T
		if err := Decode(bytes.NewReader(b), &v); err != nil && !errors.Is(err, validate.ErrInvalid) {
			t.Fatalf("decode error not marked invalid: %v", err)
		}
	})
}

func FuzzDecodeProvision(f *testing.F) {
	fuzzDecode[api.NodeProvisionRequest](f, `{"op_id":"a","name":"vm","template":"t","plan":{"vcpus":1,"memory_mib":128,"disk_gib":1},"ssh_keys":["ssh-ed25519 AAAA"]}`, `{"name":"<x>"}`)
}

func FuzzDecodeTemplateImport(f *testing.F) {
	fuzzDecode[api.NodeTemplateImportRequest](f, `{"op_id":"a","name":"t","os_family":"linux","image_path":"/x","sha256":"00"}`)
}

func FuzzDecodeStop(f *testing.F) {
	fuzzDecode[api.NodeStopRequest](f, `{"op_id":"a","grace_seconds":5,"force":true}`)
}

func FuzzDecodeSnapshotCreate(f *testing.F) {
	fuzzDecode[api.NodeSnapshotCreateRequest](f, `{"op_id":"a","name":"s1","description":"d"}`)
}

func FuzzDecodeReinstall(f *testing.F) {
	fuzzDecode[api.NodeReinstallRequest](f, `{"op_id":"a","template":"t","root_password":"xxxxxxxx"}`)
}

func FuzzDecodePasswordReset(f *testing.F) {
	fuzzDecode[api.NodePasswordResetRequest](f, `{"op_id":"a","user":"root","password":"xxxxxxxx"}`)
}

func FuzzDecodeOpRequest(f *testing.F) {
	fuzzDecode[api.NodeOpRequest](f, `{"op_id":"a"}`)
}

func TestStatusFor(t *testing.T) {
	for code, want := range map[string]int{api.NodeErrInvalid: 400, api.NodeErrNotFound: 404, api.NodeErrConflict: 409, api.NodeErrNoSpace: 507, api.NodeErrInternal: 500, api.NodeErrUnavailable: 503} {
		if got := StatusFor(code); got != want {
			t.Errorf("StatusFor(%s) = %d, want %d", code, got, want)
		}
	}
}
