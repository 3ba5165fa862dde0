package fsm

// The wire catalogue: every command type this binary knows, with its number,
// and the one table of what applies it (as Nomad's structs.MessageType and
// fsm.go). The domain files hold the payload types and the apply functions.

// CommandType numbers are append-only: never reuse or renumber one, since old log
// entries and snapshots keep them forever. Each domain owns a range of numbers
// and takes the next free one of its range for a new command; a new command
// also needs its entry in commandLevel (level.go). TestCommandNumbers pins
// every name to its number.
type CommandType uint16

// Command types, in number order.
const (
	CmdAccountCreate CommandType = 1
	CmdKeyCreate     CommandType = 2
	CmdKeyRevoke     CommandType = 3
	CmdKeyUsage      CommandType = 4
	CmdWalletCredit  CommandType = 5
	CmdInvoiceIssue  CommandType = 6
	CmdInvoicePay    CommandType = 7
	CmdTicketCreate  CommandType = 8
	CmdTicketReply   CommandType = 9
	CmdTicketClose   CommandType = 10
	CmdTicketStatus  CommandType = 11
	CmdIdemExpire    CommandType = 12
	CmdNodeRegister  CommandType = 13
	// CmdBatch carries several envelopes proposed together (group commit); its
	// data is a JSON array of envelopes. It never nests.
	CmdBatch CommandType = 14

	// Webhook commands use type numbers 20-39.
	CmdWebhookCreate       CommandType = 20
	CmdWebhookUpdate       CommandType = 21
	CmdWebhookDelete       CommandType = 22
	CmdWebhookRotateSecret CommandType = 23
	CmdWebhookAttempts     CommandType = 24
	CmdWebhookRedeliver    CommandType = 25

	// Agent node commands use type numbers 40-59 (nodes.go).
	CmdNodeCAInit      CommandType = 40
	CmdNodeTokenCreate CommandType = 41
	CmdNodeEnrol       CommandType = 42
	CmdNodeHello       CommandType = 43
	CmdNodeState       CommandType = 44
	CmdNodeCertRenew   CommandType = 45
	CmdNodeRemove      CommandType = 46
	CmdNodeSessionAddr CommandType = 47
	// Node scheduling (cordon, drain) is 48, in the node range (servers.go).
	CmdNodeSchedule CommandType = 48

	// Server and action commands use type numbers 60-79.
	CmdServerCreate    CommandType = 60
	CmdActionCreate    CommandType = 61
	CmdActionProgress  CommandType = 62
	CmdActionFinish    CommandType = 63
	CmdServerLabel     CommandType = 64
	CmdServerObserved  CommandType = 65
	CmdActionsFinished CommandType = 66
	CmdServerPTR       CommandType = 67

	// IP pool commands use type numbers 80-89 (ippools.go).
	CmdIPPoolCreate CommandType = 80
	CmdIPPoolRemove CommandType = 81
	CmdIPReserve    CommandType = 82
	CmdIPRelease    CommandType = 83

	// Reverse-DNS commands use type numbers 90-99.
	CmdReverseZoneAdd    CommandType = 90
	CmdReverseZoneRemove CommandType = 91
	CmdReverseZoneSynced CommandType = 92

	// Hosting commands use type numbers 100-119.
	CmdHostingCreate CommandType = 100
	CmdHostingAction CommandType = 101

	// Custom domain commands use type numbers 120-139.
	CmdCustomDomainSet      CommandType = 120
	CmdCustomDomainVerified CommandType = 121
	CmdCustomDomainDelete   CommandType = 122
	// CmdACMEAccountInit records the cluster's one ACME account (key sealed).
	CmdACMEAccountInit CommandType = 123
	// CmdACMEAccountRegistered records the account's URI at the server.
	CmdACMEAccountRegistered CommandType = 124
	// Certificate commands of custom domains (the leader's certificate job).
	//
	// CmdCertOrderStart records an order's intent before any ACME call.
	CmdCertOrderStart CommandType = 125
	// CmdCertIssued records the certificate (key sealed) of the order.
	CmdCertIssued CommandType = 126
	// CmdCertFailed records a failed order and when to try again.
	CmdCertFailed CommandType = 127
	// CmdCertRetry asks for a new order now (POST …/ssl/retry).
	CmdCertRetry CommandType = 128
	// CmdCertInstalled records whether the node took the certificate.
	CmdCertInstalled CommandType = 129

	// OAuth commands use type numbers 150-169 (oauth.go).
	CmdOAuthClientRegister CommandType = 150
	CmdOAuthDeviceStart    CommandType = 151
	CmdOAuthDeviceDecide   CommandType = 152
	CmdOAuthDeviceRedeem   CommandType = 153
	CmdOAuthCodeCreate     CommandType = 154
	CmdOAuthCodeRedeem     CommandType = 155
	CmdOAuthRefresh        CommandType = 156
	CmdOAuthRevoke         CommandType = 157
	CmdOAuthSweep          CommandType = 158

	// Catalogue and order commands use type numbers 200-219.
	CmdProductPut     CommandType = 200
	CmdProductRetire  CommandType = 201
	CmdAccountPricing CommandType = 202
	CmdServerOrder    CommandType = 203

	// Renewal commands use type numbers 220-229.
	CmdRenewalSweep CommandType = 220

	// Registered-domain commands use type numbers 300-329 (domainreg.go).
	CmdDomainOrder  CommandType = 300
	CmdDomainOpDone CommandType = 301
	CmdDomainChange CommandType = 302
	CmdDomainSweep  CommandType = 303
	// CmdDomainAnswerClose closes the answer window of a domain operation
	// (LevelDomainAnswer): its key's record answers 202 unless the
	// operation has ended first.
	CmdDomainAnswerClose CommandType = 304
	// CmdDomainHost opens a registry operation creating, changing or
	// deleting a child name server of a domain (LevelDomainHosts).
	CmdDomainHost CommandType = 305

	// Customers' own API keys (accountkeys.go): commands 330–339.
	CmdAccountKeyCreate CommandType = 330
	CmdAccountKeyRevoke CommandType = 331

	// Order commands after the first ones (issue 14) use type numbers 340-359.
	CmdHostingOrder   CommandType = 340
	CmdServiceSuspend CommandType = 341
	// Operator template labels (ostemplates.go). Command numbers 342-359
	// are the orders' performance and template work.
	CmdOSTemplateLabel   CommandType = 342
	CmdOSTemplateUnlabel CommandType = 343

	// CmdKEKMark records the fingerprint of the cluster's key-encryption key
	// (command numbers 370–379 are the KEK check's).
	CmdKEKMark CommandType = 370

	// CmdClusterBrand records the cluster's public dialect (pkg/brand). The
	// first leader records its --brand; a leader of another brand is refused
	// (ErrConflict), so a coordinator started with the wrong --brand learns it
	// and refuses to serve instead of answering in another dialect. (Command
	// numbers 390–399 are the brand's.)
	CmdClusterBrand CommandType = 390

	// CmdIdemAnswer records, under an Idempotency-Key that already holds a
	// command's response, the answer the handler finally gave the client when
	// that was not the command's own value: a domain order's command stores 202
	// registering, and its handler answers 201 (or 409 registration_failed) once
	// the registry has answered. A replay of the key then returns that first
	// answer, as SPEC.md promises. (Command numbers 440–449 are review's.)
	CmdIdemAnswer CommandType = 440

	// Hosting password reset: command numbers 500-509.
	//
	// CmdHostingPasswordReset opens a hosting.password_reset action (a new
	// command, not a new kind of CmdHostingAction, so what that command
	// applies stays as it was).
	CmdHostingPasswordReset CommandType = 500

	// CmdClusterLevel raises the cluster's semantics level (numbers 570–579 are
	// the level's). Old binaries do not know it and skip it, which is harmless:
	// the leader proposes a level only once every member reported it applies it.
	CmdClusterLevel CommandType = 570

	// Node locations: command numbers 700-709.
	//
	// CmdNodeLocation sets (or clears) the location a node is in: the
	// datacenter or node group an order's location, or a product's
	// locations, place servers in.
	CmdNodeLocation CommandType = 700

	// CmdKeyUsageFlush writes a leader's key usage flush that carries its id
	// (numbers 890–899 are the key usage flushes'). Applied twice, or after a
	// later flush of the same coordinator, it changes nothing: a key skips a
	// flush whose id is not after the last one of that coordinator it holds
	// (store.Key.UsageFlushes). So a coordinator may propose a flush again
	// when the answer to its first proposal was lost (it may have committed),
	// as long as it proposes no later flush before that one is written.
	CmdKeyUsageFlush CommandType = 890

	// CmdHostingUsage writes one hosting node's usage report (numbers 910–919
	// are the hosting usage reports'): the disk usage of the node's accounts
	// whose figure changed since the last report.
	CmdHostingUsage CommandType = 910
)

// handlers is every command type this binary applies, in number order
// (CmdBatch is unpacked by applyOne in fsm.go, not applied). Which semantics
// level a type needs is commandLevel's (level.go), kept apart: it is a
// property of the release that added the type, and tests register probe
// types in each.
var handlers = map[CommandType]handlerFunc{
	CmdAccountCreate: typed(applyAccountCreate),
	CmdKeyCreate:     typed(applyKeyCreate),
	CmdKeyRevoke:     typed(applyKeyRevoke),
	CmdKeyUsage:      typed(applyKeyUsage),
	CmdWalletCredit:  typed(applyWalletCredit),
	CmdInvoiceIssue:  typed(applyInvoiceIssue),
	CmdInvoicePay:    typed(applyInvoicePay),
	CmdTicketCreate:  ticketCreateHandler,
	CmdTicketReply:   typed(applyTicketReply),
	CmdTicketClose:   typed(applyTicketClose),
	CmdTicketStatus:  typed(applyTicketStatus),
	CmdIdemExpire:    typed(applyIdemExpire),
	CmdNodeRegister:  typed(applyNodeRegister),

	CmdWebhookCreate:       typed(applyWebhookCreate),
	CmdWebhookUpdate:       typed(applyWebhookUpdate),
	CmdWebhookDelete:       typed(applyWebhookDelete),
	CmdWebhookRotateSecret: typed(applyWebhookRotate),
	CmdWebhookAttempts:     typed(applyWebhookAttempts),
	CmdWebhookRedeliver:    typed(applyWebhookRedeliver),

	CmdNodeCAInit:      typed(applyNodeCAInit),
	CmdNodeTokenCreate: typed(applyNodeTokenCreate),
	CmdNodeEnrol:       typed(applyNodeEnrol),
	CmdNodeHello:       typed(applyNodeHello),
	CmdNodeState:       typed(applyNodeState),
	CmdNodeCertRenew:   typed(applyNodeCertRenew),
	CmdNodeRemove:      typed(applyNodeRemove),
	CmdNodeSessionAddr: typed(applyNodeSessionAddr),
	CmdNodeSchedule:    typed(applyNodeSchedule),

	CmdServerCreate:    typed(applyServerCreate),
	CmdActionCreate:    typed(applyActionCreate),
	CmdActionProgress:  fastTyped(readActionProgress, applyActionProgress),
	CmdActionFinish:    fastTyped(readActionFinish, applyActionFinish),
	CmdServerLabel:     typed(applyServerLabel),
	CmdServerObserved:  typed(applyServerObserved),
	CmdActionsFinished: typed(applyActionsFinished),
	CmdServerPTR:       typed(applyServerPTR),

	CmdIPPoolCreate: typed(applyIPPoolCreate),
	CmdIPPoolRemove: typed(applyIPPoolRemove),
	CmdIPReserve:    typed(applyIPReserve),
	CmdIPRelease:    typed(applyIPRelease),

	CmdReverseZoneAdd:    typed(applyReverseZoneAdd),
	CmdReverseZoneRemove: typed(applyReverseZoneRemove),
	CmdReverseZoneSynced: typed(applyReverseZoneSynced),

	CmdHostingCreate: typed(applyHostingCreate),
	CmdHostingAction: typed(applyHostingAction),

	CmdCustomDomainSet:       typed(applyCustomDomainSet),
	CmdCustomDomainVerified:  typed(applyCustomDomainVerified),
	CmdCustomDomainDelete:    typed(applyCustomDomainDelete),
	CmdACMEAccountInit:       typed(applyACMEAccountInit),
	CmdACMEAccountRegistered: typed(applyACMEAccountRegistered),
	CmdCertOrderStart:        typed(applyCertOrderStart),
	CmdCertIssued:            typed(applyCertIssued),
	CmdCertFailed:            typed(applyCertFailed),
	CmdCertRetry:             typed(applyCertRetry),
	CmdCertInstalled:         typed(applyCertInstalled),

	CmdOAuthClientRegister: typed(applyOAuthClientRegister),
	CmdOAuthDeviceStart:    typed(applyOAuthDeviceStart),
	CmdOAuthDeviceDecide:   typed(applyOAuthDeviceDecide),
	CmdOAuthDeviceRedeem:   typed(applyOAuthDeviceRedeem),
	CmdOAuthCodeCreate:     typed(applyOAuthCodeCreate),
	CmdOAuthCodeRedeem:     typed(applyOAuthCodeRedeem),
	CmdOAuthRefresh:        typed(applyOAuthRefresh),
	CmdOAuthRevoke:         typed(applyOAuthRevoke),
	CmdOAuthSweep:          typed(applyOAuthSweep),

	CmdProductPut:     typed(applyProductPut),
	CmdProductRetire:  typed(applyProductRetire),
	CmdAccountPricing: typed(applyAccountPricing),
	CmdServerOrder:    fastTyped(readServerOrder, applyServerOrder),

	CmdRenewalSweep: typed(applyRenewalSweep),

	CmdDomainOrder:  typed(applyDomainOrder),
	CmdDomainOpDone: typed(applyDomainOpDone),
	CmdDomainChange: typed(applyDomainChange),
	CmdDomainSweep:  typed(applyDomainSweep),

	CmdDomainAnswerClose: typed(applyDomainAnswerClose),
	CmdDomainHost:        typed(applyDomainHost),

	CmdAccountKeyCreate: typed(applyAccountKeyCreate),
	CmdAccountKeyRevoke: typed(applyAccountKeyRevoke),

	CmdHostingOrder:      typed(applyHostingOrder),
	CmdServiceSuspend:    typed(applyServiceSuspend),
	CmdOSTemplateLabel:   typed(applyOSTemplateLabel),
	CmdOSTemplateUnlabel: typed(applyOSTemplateUnlabel),

	CmdKEKMark:              typed(applyKEKMark),
	CmdClusterBrand:         typed(applyClusterBrand),
	CmdIdemAnswer:           typed(applyIdemAnswer),
	CmdHostingPasswordReset: typed(applyHostingPasswordReset),
	CmdClusterLevel:         typed(applyClusterLevel),
	CmdNodeLocation:         typed(applyNodeLocation),
	CmdKeyUsageFlush:        typed(applyKeyUsageFlush),
	CmdHostingUsage:         typed(applyHostingUsage),
}
