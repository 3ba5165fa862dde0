// Package memo holds values computed once per key and shared by every caller
// that asks for the same key: the OpenAPI document a process loads
// (openapidoc) and the tables it derives from it (httpapi's query
// parameters, the MCP server's tools).
package memo

import "sync"

// Cache maps a key to the value (and error) of the first fill run for it.
// The zero Cache is ready to use; it must not be copied after first use.
// Entries are never evicted: keys are few (one per document content).
type Cache[K comparable, V any] struct {
	m sync.Map // K → *entry[V]
}

type entry[V any] struct {
	once sync.Once
	v    V
	err  error
}

// Get returns the value cached for key, running fill to make it if there is
// none yet. fill runs at most once per key: concurrent callers of the same
// key wait for that one run and all get its result. An error is cached as a
// value is (the same fill would fail the same way): later callers get the
// same value and error without fill running again.
func (c *Cache[K, V]) Get(key K, fill func() (V, error)) (V, error) {
	a, _ := c.m.LoadOrStore(key, &entry[V]{})
	e := a.(*entry[V])
	e.once.Do(func() { e.v, e.err = fill() })
	return e.v, e.err
}
