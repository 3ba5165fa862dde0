package sitetls

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"

	"github.com/hostplane/hostplane/pkg/validate"
)

// ChallengePrefix is where ACME HTTP-01 validation asks for a token.
const ChallengePrefix = "/.well-known/acme-challenge/"

// tokenRE is an ACME token: base64url, at least 128 bits (RFC 8555 8.3).
var tokenRE = regexp.MustCompile(`^[A-Za-z0-9_-]{22,128}$`)

// Challenges holds the HTTP-01 key authorizations the agent learned over
// its session, and answers them to the ACME server (nginx forwards
// ChallengePrefix to it on every host).
type Challenges struct {
	mu sync.RWMutex
	m  map[string]string // token → key authorization
}

// Put makes token answer keyAuth ("<token>.<thumbprint>").
func (c *Challenges) Put(token, keyAuth string) error {
	if !tokenRE.MatchString(token) {
		return fmt.Errorf("%w: acme token must be 22-128 base64url characters", validate.ErrInvalid)
	}
	if !strings.HasPrefix(keyAuth, token+".") || !tokenRE.MatchString(strings.TrimPrefix(keyAuth, token+".")) {
		return fmt.Errorf("%w: acme key authorization must be <token>.<thumbprint>", validate.ErrInvalid)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]string{}
	}
	c.m[token] = keyAuth
	return nil
}

// Delete forgets token.
func (c *Challenges) Delete(token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, token)
}

// ServeHTTP answers GET ChallengePrefix<token>.
func (c *Challenges) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token, ok := strings.CutPrefix(r.URL.Path, ChallengePrefix)
	if !ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		http.NotFound(w, r)
		return
	}
	c.mu.RLock()
	ka, ok := c.m[token]
	c.mu.RUnlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write([]byte(ka))
}

// ChallengeConf is the http.d include (inside the HTTP server block) that
// forwards ACME HTTP-01 requests to the agent's unix socket, before the site.
func ChallengeConf(socket string) ([]byte, error) {
	if !safePathRE.MatchString(socket) {
		return nil, fmt.Errorf("challenge socket %q must be an absolute path of A-Z, a-z, 0-9, '/', '.', '_' and '-'", socket)
	}
	return []byte("# rendered by hostplane-agent (hosting role): ACME HTTP-01 answered by the agent\n" +
		"location ^~ " + ChallengePrefix + " {\n  proxy_pass http://unix:" + socket + ":;\n  proxy_set_header Host $host;\n}\n"), nil
}
