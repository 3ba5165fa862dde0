package mcpserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
)

// confirmations holds the outstanding confirmation tokens of orders: each is
// bound to the caller, the tool and the exact arguments, good once, until it
// expires. They live in this process only: a token presented to another
// coordinator is unknown there, and the client asks for a fresh quote.
type confirmations struct {
	mu      sync.Mutex
	now     func() time.Time
	ttl     time.Duration
	pending map[string]pendingOrder
}

type pendingOrder struct {
	caller, tool, args string
	expires            time.Time
	spent              bool // confirmed once; kept until it expires for a retried confirmation
}

// maxPending bounds the outstanding tokens (oldest-expiring dropped first
// when full, after the expired ones).
const maxPending = 10000

func newConfirmations(now func() time.Time, ttl time.Duration) *confirmations {
	return &confirmations{now: now, ttl: ttl, pending: map[string]pendingOrder{}}
}

func (c *confirmations) issue(caller, tool, args string) (string, time.Time) {
	var b [18]byte
	_, _ = rand.Read(b[:])
	tok := "mcpc_" + hex.EncodeToString(b[:])
	now := c.now()
	exp := now.Add(c.ttl)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pending) >= maxPending {
		var oldest string
		for k, p := range c.pending {
			if !p.expires.After(now) {
				delete(c.pending, k)
			} else if oldest == "" || p.expires.Before(c.pending[oldest].expires) {
				oldest = k
			}
		}
		if len(c.pending) >= maxPending {
			delete(c.pending, oldest)
		}
	}
	c.pending[tok] = pendingOrder{caller: caller, tool: tool, args: args, expires: exp}
	return tok, exp
}

// take spends tok: "" when it is good for (caller, tool, args), else why not.
// A token already spent is good again for the same (caller, tool, args) until
// it expires when retryable (its operation honours Idempotency-Key): the
// retried confirmation carries the first one's key, so the operation replays
// its first answer and spends once. That is what a client does whose answer
// was lost (a dropped connection, a timeout); refusing it would leave the
// client to ask for a new quote for an order already made. A token of an
// operation without Idempotency-Key stays good once.
func (c *confirmations) take(tok, caller, tool, args string, retryable bool) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.pending[tok]
	if !ok {
		return "unknown or already used confirmation_token; call without it for a new quote"
	}
	if p.caller != caller || p.tool != tool {
		return "this confirmation_token was issued for another caller or tool"
	}
	if !p.expires.After(c.now()) {
		delete(c.pending, tok)
		return "the confirmation_token expired; call without it for a new quote"
	}
	if p.args != args {
		return "the arguments differ from the quoted ones; call without confirmation_token for a new quote"
	}
	if p.spent && !retryable {
		return "unknown or already used confirmation_token; call without it for a new quote"
	}
	if !retryable {
		delete(c.pending, tok)
		return ""
	}
	p.spent = true
	c.pending[tok] = p
	return ""
}

// argsDigest is a digest of the arguments without confirmation_token, the
// same for the same JSON however its keys are ordered or spaced.
func argsDigest(raw []byte) (digest, token string) {
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	_ = d.Decode(&m)
	if s, ok := m[argConfirmation].(string); ok {
		token = s
	}
	delete(m, argConfirmation)
	canon, _ := json.Marshal(m) // map keys sorted
	sum := sha256.Sum256(canon)
	return hex.EncodeToString(sum[:]), token
}

// confirmStep is the double confirmation of an order. Without a token it
// answers the quote (from the route's quote operation, dispatched as the
// caller) and a token, and the order is not run; with a good token the call
// proceeds, with an Idempotency-Key derived from the token when the operation
// takes one and the arguments name none (an idempotency_key argument is part
// of the arguments the token is bound to), so a retried confirmation — the
// same token and arguments again, until the token expires — replays the
// first answer and spends once.
func (h *handlers) confirmStep(ctx context.Context, t *Tool, raw []byte, call *Call, who Who, dispatched *bool) (*mcp.CallToolResult, bool) {
	digest, tok := argsDigest(raw)
	if tok != "" {
		if why := h.confirm.take(tok, who.Caller, t.Def.Name, digest, t.Op.Idempotent); why != "" {
			return errorResult(api.NewError(http.StatusConflict, "confirmation_invalid", why)), false
		}
		if t.Op.Idempotent && call.Header.Get("Idempotency-Key") == "" {
			call.Header.Set("Idempotency-Key", "mcp-confirm-"+tok)
		}
		return nil, true
	}
	// The quote is never answered for an order its confirmation would
	// refuse for its Idempotency-Key (the route checks the key before the
	// body): refused here with the route's own 400, as the quote operation,
	// which takes no key, would not refuse it. An empty idempotency_key is
	// no key, at both steps: the confirmation sends its derived one (above).
	if key, ok := call.Header["Idempotency-Key"]; ok && t.Op.Idempotent && len(key) > 0 && key[0] != "" {
		if err := validate.IdempotencyKey(key[0]); err != nil {
			return errorResult(api.NewError(http.StatusBadRequest, "invalid_request", err.Error())), false
		}
	}
	var quote json.RawMessage
	if q := h.tools.ByOperation(t.Op.Quote); q != nil {
		qraw := withoutArg(raw, argConfirmation, q)
		qc, err := q.Build(qraw)
		if err != nil {
			return errorResult(api.NewError(http.StatusBadRequest, "invalid_argument", err.Error())), false
		}
		*dispatched = true
		resp, err := h.d.Dispatch(ctx, qc, who)
		if err != nil {
			return errorResult(api.NewError(http.StatusBadGateway, "dispatch_failed", err.Error())), false
		}
		who.sendLimit(resp.Header)
		if resp.Status >= 300 {
			return result(q, resp), false
		}
		quote = json.RawMessage(bytes.TrimSpace(resp.Body))
	}
	tok, exp := h.confirm.issue(who.Caller, t.Def.Name, digest)
	body := map[string]any{
		"confirmation_required": true,
		"confirmation_token":    tok,
		"expires_at":            exp.UTC().Format(time.RFC3339),
		"operation":             t.Op.Key(),
		"quote":                 quote,
		"message":               "Nothing was ordered and nothing was charged by this call. Show this quote to the user; only after they approve it, call " + t.Def.Name + " again with the same arguments and confirmation_token.",
	}
	raw2, _ := json.Marshal(body)
	return &mcp.CallToolResult{
		Content: []mcp.Content{&mcp.TextContent{Text: string(raw2)}},
		Meta:    mcp.Meta{"hostplane/status": http.StatusAccepted, "hostplane/confirmation_required": true},
	}, false
}

// withoutArg drops name from the arguments and any argument q does not take.
func withoutArg(raw []byte, name string, q *Tool) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return raw
	}
	delete(m, name)
	for k := range m {
		if !q.argNames[k] {
			delete(m, k)
		}
	}
	out, _ := json.Marshal(m)
	return out
}
