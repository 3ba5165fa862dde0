package server

import (
	"context"

	"github.com/spf13/pflag"
)

// WebhookConfig holds the webhook dispatcher's settings.
type WebhookConfig struct{}

func bindWebhookFlags(fs *pflag.FlagSet, c *WebhookConfig) {}

func (c *WebhookConfig) validate(dataDir string) error { return nil }

// webhookJobs are the leader-only loops of the webhook dispatcher.
func (s *Server) webhookJobs() []func(ctx context.Context) { return nil }
