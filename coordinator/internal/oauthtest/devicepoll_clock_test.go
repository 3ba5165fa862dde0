package oauthtest

import (
	"net/url"
	"testing"
	"time"
)

// TestDevicePollOnACoordinatorWhoseClockIsBehind: a device client polling
// at its interval is answered authorization_pending, not slow_down, by a
// coordinator whose clock is behind the entries it has applied (a new leader
// whose clock is hours behind the old one's). Its ids and command times are
// held past those entries (hlc), but the time between two polls is the
// clock's: when hlc stood still (a nanosecond a call) while its clock was
// behind, polls a second apart timed on it were answered slow_down, the
// interval 5 s longer each time, for the hours until the clock caught up.
func TestDevicePollOnACoordinatorWhoseClockIsBehind(t *testing.T) {
	e := start(t)
	clientID := e.registerDeviceClient("Test CLI")
	da := e.deviceAuth(e.oauthConfig(clientID, "account:read"))
	if da.Interval != 1 {
		t.Fatalf("device authorization interval %d s, want 1", da.Interval)
	}
	e.clock.Advance(-3 * time.Hour) // the device authorization was applied 3 h ahead of this clock
	poll := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da.DeviceCode}, "client_id": {clientID}}
	for i := 0; i < 3; i++ {
		if i > 0 {
			time.Sleep(1100 * time.Millisecond) // the interval, and a little more
		}
		if status, out := e.postForm("/oauth/token", poll); status != 400 || out["error"] != "authorization_pending" {
			t.Fatalf("poll %d, %d ms after the one before: %d %v, want authorization_pending", i+1, 1100, status, out)
		}
	}
}
