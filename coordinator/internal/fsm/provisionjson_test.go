package fsm

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/hostplane/hostplane/internal/plainjson/codectest"
	"github.com/hostplane/hostplane/pkg/action"
	"github.com/hostplane/hostplane/pkg/api"
)

// provisionReadsAsEncodingJSON: what readProvision accepts, json.Unmarshal
// reads to the same value.
func provisionReadsAsEncodingJSON(t *testing.T, b []byte) bool {
	t.Helper()
	return codectest.Reading(t, "readProvision", readProvision, b)
}

func TestProvisionCodecMatchesEncodingJSON(t *testing.T) {
	full := action.Provision{Bridge: "br0", Gateway4: "198.51.100.1", Gateway6: "fe80::1", Hostname: "web-1",
		IPv4: "198.51.100.7/24", IPv6: "2001:db8::1/64", MAC: "52:54:00:12:34:56", Name: "hp-srv_1", Network: "default",
		Plan: api.NodePlan{VCPUs: 4294967295, MemoryMiB: 18446744073709551615, DiskGiB: 0}, Resolvers: []string{"198.51.100.53", "2001:db8::53"},
		RootPassword: "x", SSHKeys: []string{"ssh-ed25519 AAAAC3Nz+/= me@host"}, Template: "debian-12"}
	for _, pr := range []action.Provision{
		{Plan: api.NodePlan{VCPUs: 1, MemoryMiB: 256, DiskGiB: 1}, Template: "debian-12"},
		{},
		full,
		{Resolvers: []string{}, SSHKeys: []string{""}, Template: ""},
	} {
		raw, _ := action.Encode(&pr)
		if !provisionReadsAsEncodingJSON(t, raw) {
			t.Fatalf("readProvision gave up on the proposer's %s", raw)
		}
	}
	// What the proposer writes (action.Encode, json.Marshal's bytes) is held
	// to json.Marshal in pkg/action (TestEncodeProvisionIsJSONMarshal,
	// FuzzEncodeProvision), with the escaping strings it leaves to
	// json.Marshal (fsm's own appendProvision did the same until f836475's
	// encoder replaced it).

	// Input outside the plain subset, or that json.Unmarshal reads otherwise
	// or refuses: readProvision gives up (encoding/json decides).
	for _, in := range []string{
		`{"template":"a","plan":{}}`,        // out of order
		`{"plan":{},"plan":{"vcpus":1}}`,    // repeated (encoding/json merges)
		`{"Plan":{"vcpus":1}}`,              // case-folded key
		`{"extra":1,"template":"a"}`,        // unknown key
		`{"plan":{"vcpus":4294967296}}`,     // out of range
		`{"plan":{"vcpus":1.0}}`,            // not an integer
		`{"plan":{"vcpus":1e2}}`,            // exponent
		`{"plan":{"vcpus":01}}`,             // leading zero
		`{"plan":{"vcpus":-1}}`,             // negative
		`{"plan":{"disk_gib":1,"vcpus":1}}`, // out of order inside
		`{"template":"a\u0062"}`,            // escape
		`{"template":null}`,                 // null
		`{"ssh_keys":null}`,                 // null
		`{"ssh_keys":["a",]}`,               // bad array
		`{"template":"a"} `,                 // trailing space
		`{"template":"a"}{}`,                // trailing value
		` {"template":"a"}`,                 // leading space
		`{"template": "a"}`,                 // inner space
		`{"template":"a",}`,                 // trailing comma
		`{"resolvers":[1]}`,                 // wrong type
		`{"template":"é"}`,                  // non-ASCII
		`[]`, `""`, `{`, ``,
	} {
		if provisionReadsAsEncodingJSON(t, []byte(in)) {
			t.Errorf("readProvision read %s itself", in)
		}
	}
}

func FuzzProvisionReadsAsEncodingJSON(f *testing.F) {
	f.Add([]byte(`{"plan":{"vcpus":1,"memory_mib":256,"disk_gib":1},"template":"debian-12"}`))
	f.Add([]byte(`{"bridge":"br0","gateway4":"198.51.100.1","ipv4":"198.51.100.7/24","plan":{"vcpus":1},"resolvers":["a","b"],"ssh_keys":[],"template":""}`))
	f.Add([]byte(`{"plan":{"vcpus":-0}}`))
	f.Fuzz(func(t *testing.T, b []byte) { provisionReadsAsEncodingJSON(t, b) })
}

func TestAddrRequestDecodesAsEncodingJSON(t *testing.T) {
	for _, r := range []AddrRequest{
		{IPv4Pools: []string{"bench4"}, IPv4: 1, IPv6Pools: []string{"bench6"}, IPv6: 1},
		{IPv4Pools: []string{"a", "b"}, IPv4: 16},
		{IPv6Pools: []string{"v6"}, IPv6: 2},
		{},
	} {
		raw, _ := json.Marshal(r)
		if !addrRequestReadsAsEncodingJSON(t, raw) {
			t.Fatalf("readAddrRequest gave up on the proposer's %s", raw)
		}
		var env struct {
			A *AddrRequest `json:"addresses"`
		}
		if err := json.Unmarshal([]byte(`{"addresses":`+string(raw)+`}`), &env); err != nil || !reflect.DeepEqual(*env.A, r) {
			t.Fatalf("decoded %s as %+v, %v", raw, env.A, err)
		}
	}
	for _, in := range []string{
		`{"ipv4":1,"ipv4_pools":["a"]}`, `{"ipv4":1,"ipv4":2}`, `{"IPv4":1}`, `{"x":1}`, `{"ipv4":1.5}`,
		`{"ipv4":99999999999999999999}`, `{"ipv4_pools":null}`, `{"ipv4_pools":["a\u0062"]}`, `{"ipv4": 1}`, `{"ipv4":"1"}`,
	} {
		if addrRequestReadsAsEncodingJSON(t, []byte(in)) {
			t.Errorf("readAddrRequest read %s itself", in)
		}
		// encoding/json decides, as before: the same value or the same refusal.
		var fast AddrRequest
		var slow addrRequestJSON
		errFast, errSlow := json.Unmarshal([]byte(in), &fast), json.Unmarshal([]byte(in), &slow)
		if (errFast == nil) != (errSlow == nil) || !reflect.DeepEqual(fast, AddrRequest(slow)) {
			t.Errorf("%s: UnmarshalJSON %+v %v, encoding/json %+v %v", in, fast, errFast, slow, errSlow)
		}
	}
}

func addrRequestReadsAsEncodingJSON(t *testing.T, b []byte) bool {
	t.Helper()
	// Decoded as addrRequestJSON: AddrRequest's own UnmarshalJSON is the code
	// under test.
	read := func(b []byte) (addrRequestJSON, bool) { r, ok := readAddrRequest(b); return addrRequestJSON(r), ok }
	return codectest.Reading(t, "readAddrRequest", read, b)
}

func FuzzAddrRequestDecodesAsEncodingJSON(f *testing.F) {
	f.Add([]byte(`{"ipv4_pools":["bench4"],"ipv4":1,"ipv6_pools":["bench6"],"ipv6":1}`))
	f.Add([]byte(`{"ipv4_pools":[],"ipv4":-0}`))
	f.Fuzz(func(t *testing.T, b []byte) { addrRequestReadsAsEncodingJSON(t, b) })
}

// TestAddrRequestDecodesIntoAFilledOneAsEncodingJSON: decoding into a request
// that already holds values keeps the fields the input leaves out, as
// encoding/json does.
func TestAddrRequestDecodesIntoAFilledOneAsEncodingJSON(t *testing.T) {
	in := []byte(`{"ipv6_pools":["v6"],"ipv6":1}`)
	fast := AddrRequest{IPv4Pools: []string{"a"}, IPv4: 2}
	slow := addrRequestJSON(fast)
	if err := json.Unmarshal(in, &fast); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(in, &slow); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fast, AddrRequest(slow)) || fast.IPv4 != 2 {
		t.Fatalf("UnmarshalJSON gave %+v, encoding/json %+v", fast, slow)
	}
}
