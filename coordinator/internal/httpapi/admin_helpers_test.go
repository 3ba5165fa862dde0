package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
)

// adminURL serves a's admin API (the admin socket's routes) over HTTP until
// the test ends, and returns its base URL.
func adminURL(t *testing.T, a *API) string {
	t.Helper()
	admin := httptest.NewServer(a.AdminHandler())
	t.Cleanup(admin.Close)
	return admin.URL
}

// postAdmin posts the JSON body to url (an admin route) and returns the
// answer, its body read and closed, and the error the body carries.
func postAdmin(t *testing.T, url, body string) (*http.Response, api.Error) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e api.Error
	_ = json.NewDecoder(resp.Body).Decode(&e)
	return resp, e
}
