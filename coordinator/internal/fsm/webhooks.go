package fsm

// Webhook commands use type numbers 20-39.

// webhookHandlers are the webhook subscription and delivery commands.
var webhookHandlers = map[CommandType]handlerFunc{}
