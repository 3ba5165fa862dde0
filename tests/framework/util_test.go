package framework

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestWaitUp: the launchers' start-up wait returns once the probe answers,
// says so when the daemon exits first, and gives the probe's last error when
// the time runs out.
func TestWaitUp(t *testing.T) {
	n := 0
	gone, err := waitUp(nil, time.Minute, time.Millisecond, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if gone || err != nil || n != 3 {
		t.Fatalf("answering on the third probe: gone %v, err %v, probes %d", gone, err, n)
	}
	exited := make(chan struct{})
	close(exited)
	gone, err = waitUp(exited, time.Minute, time.Hour, func() error { return errors.New("refused") })
	if !gone || err == nil || err.Error() != "refused" {
		t.Fatalf("exited daemon: gone %v, err %v", gone, err)
	}
	start := time.Now()
	gone, err = waitUp(nil, 50*time.Millisecond, 10*time.Millisecond, func() error { return errors.New("still starting") })
	if gone || err == nil || err.Error() != "still starting" || time.Since(start) < 50*time.Millisecond {
		t.Fatalf("timeout: gone %v, err %v after %s", gone, err, time.Since(start))
	}
}

// TestAnswers200: nil for 200 only; another status is the error's text, and
// the header asked for is sent.
func TestAnswers200(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-API-Key") != "k" {
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	defer srv.Close()
	if err := answers200(http.DefaultClient, srv.URL, "X-API-Key", "k"); err != nil {
		t.Fatalf("200: %v", err)
	}
	if err := answers200(http.DefaultClient, srv.URL, "", ""); err == nil || err.Error() != "401 Unauthorized" {
		t.Fatalf("401: %v", err)
	}
	srv.Close()
	if err := answers200(http.DefaultClient, srv.URL, "", ""); err == nil || strings.Contains(err.Error(), "200") {
		t.Fatalf("closed server: %v", err)
	}
}
