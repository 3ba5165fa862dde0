package server

import (
	"testing"
	"time"
)

// TestWebhookSettingsZeroTakeTheirDefaults: a webhook setting left at 0 (a
// Config built in code) takes its default when filled; one given, or given
// as a negative number (which validate then refuses, naming it), is kept.
func TestWebhookSettingsZeroTakeTheirDefaults(t *testing.T) {
	numbers := func(c WebhookConfig) [10]int64 {
		return [10]int64{int64(c.MaxPerAccount), int64(c.KeepAttempts), int64(c.PerWebhook), int64(c.MaxInFlight),
			int64(c.AttemptTimeout), int64(c.FlushInterval), int64(c.OutboxRetention), int64(c.RetryInitial), int64(c.RetryMax), int64(c.RetryWindow)}
	}
	var c WebhookConfig
	c.fillDefaults()
	if got, want := numbers(c), numbers(webhookDefaults()); got != want {
		t.Errorf("a zero config filled: %v; want the defaults %v", got, want)
	}

	given := WebhookConfig{MaxPerAccount: 3, KeepAttempts: 5, PerWebhook: 1, MaxInFlight: 7, AttemptTimeout: time.Second,
		FlushInterval: 2 * time.Millisecond, OutboxRetention: time.Hour, RetryInitial: 3 * time.Second, RetryMax: time.Minute, RetryWindow: 2 * time.Hour}
	c = given
	c.fillDefaults()
	if numbers(c) != numbers(given) {
		t.Errorf("filling changed given settings %v to %v", numbers(given), numbers(c))
	}

	negative := WebhookConfig{MaxPerAccount: -1, KeepAttempts: -1, PerWebhook: -1, MaxInFlight: -1, AttemptTimeout: -1,
		FlushInterval: -1, OutboxRetention: -1, RetryInitial: -1, RetryMax: -1, RetryWindow: -1}
	c = negative
	c.fillDefaults()
	if numbers(c) != numbers(negative) {
		t.Errorf("filling changed negative settings to %v; only 0 takes the default", numbers(c))
	}
}
