package fsm

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestDomainChangeNamesItsFields: the Raft command of a domain PATCH names
// each field it carries, so a field added to the public request
// (api.DomainUpdateRequest) does not flow into the replicated payload
// unchecked. Before, it embedded the request.
func TestDomainChangeNamesItsFields(t *testing.T) {
	typ := reflect.TypeOf(DomainChange{})
	for i := range typ.NumField() {
		f := typ.Field(i)
		ft := f.Type
		for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if f.Anonymous || ft.PkgPath() != "" && ft.PkgPath() != typ.PkgPath() {
			t.Errorf("DomainChange.%s is %s: name the command's fields instead of carrying another package's type", f.Name, f.Type)
		}
	}
}

// TestDomainChangeEncodingGolden: the command encodes as it did when it
// embedded api.DomainUpdateRequest (today's bytes): a log written by an
// earlier build applies alike, and a replica of either build reads the
// other's entries.
func TestDomainChangeEncodingGolden(t *testing.T) {
	on, off := true, false
	for _, c := range []struct {
		p    DomainChange
		want string
	}{
		{domainChangeOf("dom_1", "acc_1", "dch_1", "dch_1", &on, &off, &on, []string{"ns1.example.net", "ns2.example.net"}),
			`{"domain_id":"dom_1","account_id":"acc_1","change_id":"dch_1","cl_trid":"dch_1","auto_renew":true,"transfer_lock":false,"whois_privacy":true,"nameservers":["ns1.example.net","ns2.example.net"]}`},
		{domainChangeOf("dom_2", "acc_2", "", "", &off, nil, nil, nil),
			`{"domain_id":"dom_2","account_id":"acc_2","change_id":"","cl_trid":"","auto_renew":false}`},
		{domainChangeOf("", "", "", "", nil, nil, nil, []string{}),
			`{"domain_id":"","account_id":"","change_id":"","cl_trid":""}`},
	} {
		got, err := json.Marshal(c.p)
		if err != nil || string(got) != c.want {
			t.Errorf("DomainChange encodes as %s (%v), want %s", got, err, c.want)
		}
		var back DomainChange
		if err := json.Unmarshal([]byte(c.want), &back); err != nil {
			t.Fatal(err)
		}
		if again, _ := json.Marshal(back); string(again) != c.want {
			t.Errorf("%s decodes and encodes again as %s", c.want, again)
		}
	}
}

func domainChangeOf(dom, acc, ch, cl string, ar, tl, wp *bool, ns []string) DomainChange {
	return DomainChange{DomainID: dom, AccountID: acc, ChangeID: ch, ClTRID: cl, AutoRenew: ar, TransferLock: tl, WhoisPrivacy: wp, Nameservers: ns}
}
