package httpapi

import (
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/ratelimit"
)

var leaseSeeds = []string{
	`{"key":"key_1","limit":120,"want":120}`, `{"key":"key_1","limit":120,"want":0}`, `{"key":"","limit":1,"want":1}`,
	`{"key":"k","limit":0,"want":0}`, `{"key":"k","limit":5,"want":6}`, `{"key":"k","limit":5,"want":-1}`,
	`{"key":"k","limit":1e12,"want":1}`, `{"key":"k","limit":5,"want":1,"x":1}`, `{"key":1}`, `{`, ``, `null`,
	`{"granted":3,"remaining":10,"reset_ms":1700000000000,"ttl_ms":59000}`, `{"granted":-1}`, `{"ttl_ms":60001}`,
}

func FuzzParseLeaseRequest(f *testing.F) {
	fuzzDecoder(f, leaseSeeds, parseLeaseRequest, func(t *testing.T, q leaseRequest) {
		if q.Key == "" || len(q.Key) > maxLeaseKey || q.Limit < 1 || q.Limit > maxLeaseLimit || q.Want < 0 || q.Want > q.Limit {
			t.Fatalf("accepted %+v", q)
		}
	})
}

func FuzzParseLeaseAnswer(f *testing.F) {
	const limit, want = 120, 20
	decode := func(b []byte) (ratelimit.Grant, error) { return parseLeaseAnswer(b, limit, want) }
	fuzzDecoder(f, leaseSeeds, decode, func(t *testing.T, g ratelimit.Grant) {
		if g.Granted < 0 || g.Granted > want || g.Remaining < 0 || g.Remaining > limit || g.TTL < 0 || g.TTL > ratelimit.Window {
			t.Fatalf("accepted %+v", g)
		}
	})
}
