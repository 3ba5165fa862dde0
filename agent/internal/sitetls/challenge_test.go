package sitetls

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/pkg/validate"
)

func TestChallenges(t *testing.T) {
	c := &Challenges{}
	tok := "huNc3Sm5fl0mQCrgrBEcxSbZGr-eX46P5Nd-YvvYTVw"
	ka := tok + ".9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"
	for _, bad := range [][2]string{{"short", "short.x"}, {"../" + tok, ka}, {tok, "other.x"}, {tok, tok + ".a b"}, {tok + "\n", ka}} {
		if err := c.Put(bad[0], bad[1]); !errors.Is(err, validate.ErrInvalid) {
			t.Errorf("Put(%q, %q) = %v", bad[0], bad[1], err)
		}
	}
	if err := c.Put(tok, ka); err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		w := httptest.NewRecorder()
		c.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		return w.Code, w.Body.String()
	}
	if code, body := get(ChallengePrefix + tok); code != 200 || body != ka {
		t.Fatalf("GET token: %d %q", code, body)
	}
	for _, p := range []string{ChallengePrefix + "nope", "/" + tok, ChallengePrefix} {
		if code, _ := get(p); code != 404 {
			t.Errorf("GET %s: %d", p, code)
		}
	}
	c.Delete(tok)
	if code, _ := get(ChallengePrefix + tok); code != 404 {
		t.Fatal("deleted token still answered")
	}
	if _, err := ChallengeConf("/run/x y.sock"); err == nil {
		t.Fatal("unsafe socket path accepted")
	}
	conf, _ := ChallengeConf("/run/hostplane/acme.sock")
	if !strings.Contains(string(conf), "location ^~ /.well-known/acme-challenge/") {
		t.Fatalf("conf: %s", conf)
	}
}
