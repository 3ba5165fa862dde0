// Package streamcap counts the long-lived streams a coordinator holds open,
// per account and per client address, against a cap on each: the stats
// streams (httpapi, --stats-streams-per-account / --stats-streams-per-ip)
// and the MCP session streams (mcpserver, --mcp-streams-per-account /
// --mcp-streams-per-ip) each keep one Counter.
package streamcap

import "sync"

// Refusal names the cap that refused a stream.
type Refusal int

const (
	// None: the stream was counted.
	None Refusal = iota
	// Account: the account holds its cap of streams.
	Account
	// Address: the client address holds its cap, whatever the accounts.
	Address
)

// Counter counts open streams per account and per client address (the
// caller's key for it: httpapi's ipBudgetKey, an IPv6 /64).
type Counter struct {
	perAccount, perAddress int

	mu        sync.Mutex
	accounts  map[string]int // account → open streams
	addresses map[string]int // client address → open streams
}

// New is a Counter of perAccount streams per account and perAddress per
// client address (each at least 1).
func New(perAccount, perAddress int) *Counter {
	return &Counter{perAccount: max(perAccount, 1), perAddress: max(perAddress, 1),
		accounts: map[string]int{}, addresses: map[string]int{}}
}

// PerAccount and PerAddress are the caps.
func (c *Counter) PerAccount() int { return c.perAccount }

// PerAddress is the cap of one client address.
func (c *Counter) PerAddress() int { return c.perAddress }

// Acquire counts one stream of account from address, or refuses it (the
// account's cap checked first). release undoes the count; calling it again
// does nothing.
func (c *Counter) Acquire(account, address string) (release func(), refused Refusal) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.accounts[account] >= c.perAccount:
		return nil, Account
	case c.addresses[address] >= c.perAddress:
		return nil, Address
	}
	c.accounts[account]++
	c.addresses[address]++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.accounts[account]--; c.accounts[account] <= 0 {
				delete(c.accounts, account)
			}
			if c.addresses[address]--; c.addresses[address] <= 0 {
				delete(c.addresses, address)
			}
		})
	}, None
}

// Open is the streams account and address hold.
func (c *Counter) Open(account, address string) (byAccount, byAddress int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.accounts[account], c.addresses[address]
}

// Entries is the accounts and addresses counted (a count that drops to zero
// is deleted: none once every stream was released).
func (c *Counter) Entries() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.accounts) + len(c.addresses)
}
