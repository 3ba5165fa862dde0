package audit

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestDomainTransferInWithHostileCodes: a transfer in as a careless or
// hostile customer sends it. Malformed auth codes (empty, huge, control
// characters) are 400s naming auth_code that charge nothing and reach no
// registry; a name the registry does not know is a 409 that charges
// nothing; an auth code full of XML metacharacters is data: the registry
// gets it as it was typed and moves the domain here, paid once; the code
// shows in no answer (the order, GET, list, the operator's view) and in no
// coordinator's log.
func TestDomainTransferInWithHostileCodes(t *testing.T) {
	const rival, rivalPW = "rival-reg", "rival-pw-1"
	d := &domRig{rig: newRigWith(t, framework.EPPDOptions{TLDs: []string{"test"}, Clients: map[string]string{framework.EPPDClientID: framework.EPPDPassword, rival: rivalPW}})}
	d.c.Credit(d.ctx, d.accA.ID, 5*domainPrice)
	code := `Xq7</domain:pw><domain:pw>&amp;"'` + "]]>" + `<![CDATA[z`
	d.reg.RegisterAs(rival, rivalPW, "moving-in.test", code)
	transfer := func(name, code string, hdr map[string]string) framework.Reply {
		return d.call(d.follower(), d.keyA, "POST", "/v1/domains/transfer", map[string]any{"name": name, "auth_code": code, "contact": contact}, hdr)
	}

	t.Run("malformed codes", func(t *testing.T) {
		for _, c := range []string{"", " ", strings.Repeat("A", 10000), "abc\x00def", "abc\ndef", "ab\u202edef"} {
			rep := transfer("moving-in.test", c, nil)
			if rep.Status != http.StatusBadRequest || !strings.Contains(string(rep.Body), "auth_code") {
				t.Errorf("auth code %.20q: %s, want 400 naming auth_code", c, rep)
			}
		}
		if rep := transfer("nowhere-yet.test", "Good-Code-1", nil); rep.Status != http.StatusConflict {
			t.Errorf("a name the registry does not know: %s, want 409", rep)
		}
		if b := d.balance(d.keyA); b != 5*domainPrice {
			t.Errorf("balance %d after refused transfers", b)
		}
		if n := len(d.reg.Transactions("domain:transfer:request", "")); n != 0 {
			t.Errorf("%d transfers reached the registry", n)
		}
	})

	t.Run("a code of XML metacharacters is data", func(t *testing.T) {
		rep := transfer("moving-in.test", code, map[string]string{"Idempotency-Key": "move-1"})
		if rep.Status != http.StatusCreated && rep.Status != http.StatusAccepted {
			t.Fatalf("%s", rep)
		}
		var x api.Domain
		rep.Decode(t, &x)
		framework.WaitFor(t, "moving-in.test here", 30*time.Second, 100*time.Millisecond, func() bool {
			x = d.domain(d.keyA, x.ID)
			if x.Status == api.DomainFailed {
				t.Fatalf("the transfer failed: %+v (the registry got another code)", x)
			}
			return x.Status == api.DomainActive
		})
		if r := d.reg.Domain("moving-in.test"); r.ClID != framework.EPPDClientID {
			t.Errorf("the registry's sponsor: %s", r.ClID)
		}
		if b := d.balance(d.keyA); b != 4*domainPrice {
			t.Errorf("balance %d after one transfer", b)
		}
		if again := transfer("moving-in.test", code, map[string]string{"Idempotency-Key": "move-1"}); again.Header.Get("Idempotent-Replayed") != "true" || d.balance(d.keyA) != 4*domainPrice {
			t.Errorf("the key sent again: %s", again)
		}
		answers := []string{string(rep.Body), string(d.call(0, d.keyA, "GET", "/v1/domains/"+x.ID, nil, nil).Body), string(d.call(1, d.keyA, "GET", "/v1/domains", nil, nil).Body)}
		if r := ctl(t, d.c.Nodes[0], "--json", "domain", "show", x.ID); r.code == 0 {
			answers = append(answers, r.stdout)
		} else {
			t.Errorf("%s", r)
		}
		enc, _ := json.Marshal(code)
		for _, a := range answers {
			if strings.Contains(a, code) || strings.Contains(a, string(enc[1:len(enc)-1])) || strings.Contains(a, "Xq7") {
				t.Errorf("an answer shows the auth code: %.300s", a)
			}
		}
		for _, p := range d.c.Nodes {
			b, _ := os.ReadFile(p.LogPath())
			if strings.Contains(string(b), "Xq7") {
				t.Errorf("%s shows the auth code", p.LogPath())
			}
		}
	})
}
