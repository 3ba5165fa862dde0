package api

import "time"

// Hosting actions (protocol 1.3): commands the coordinator sends to an agent
// with the hosting role. The target is the account's username.
const (
	ActionHostingCreate    = "hosting.create"
	ActionHostingSuspend   = "hosting.suspend"
	ActionHostingUnsuspend = "hosting.unsuspend"
	ActionHostingSetPHP    = "hosting.php"
	ActionHostingDelete    = "hosting.delete"
	// ActionHostingPasswordReset sets new SFTP and/or database passwords
	// (secret_params: sftp_password, db_password; params: target).
	ActionHostingPasswordReset = "hosting.password_reset"
)

// Journal kinds of hosting operations on the agent.
const (
	NodeOpHostingCreate    = "hosting.create"
	NodeOpHostingSuspend   = "hosting.suspend"
	NodeOpHostingUnsuspend = "hosting.unsuspend"
	NodeOpHostingSetPHP    = "hosting.php"
	NodeOpHostingDelete    = "hosting.delete"
	// NodeOpHostingPasswordReset journals hashes of the new passwords only.
	NodeOpHostingPasswordReset = "hosting.password_reset"
)

// RoleKVM and RoleHosting are the roles an agent reports in its hello.
const (
	RoleKVM     = "kvm"
	RoleHosting = "hosting"
)

// HostingPlan is the resource limits of a hosting account's PHP pool and its
// disk allowance.
type HostingPlan struct {
	// PHPWorkers is the pool's pm.max_children.
	PHPWorkers int `json:"php_workers"`
	// PHPMemoryMiB is PHP's memory_limit per request.
	PHPMemoryMiB int `json:"php_memory_mib"`
	// MaxExecutionSeconds is PHP's max_execution_time.
	MaxExecutionSeconds int `json:"max_execution_seconds"`
	// UploadMiB is upload_max_filesize and post_max_size.
	UploadMiB int `json:"upload_mib"`
	// DiskMiB is the disk allowance, reported against usage; enforced by a
	// file system quota only on hosting nodes whose sites are on btrfs with
	// quotas enabled (NodeHostingAccount.QuotaEnforced).
	DiskMiB int `json:"disk_mib"`
}

// NodeHostingAccount is a hosting account as its node reports it (an action's
// result): never a password.
type NodeHostingAccount struct {
	Username   string      `json:"username"`
	Domain     string      `json:"domain"`
	Plan       HostingPlan `json:"plan"`
	PHPVersion string      `json:"php_version"`
	Suspended  bool        `json:"suspended"`
	Database   string      `json:"database"`
	DiskBytes  uint64      `json:"disk_bytes"`
	// QuotaEnforced: the node enforces the plan's disk allowance with a
	// file system quota (the site is a btrfs subvolume with a qgroup limit
	// of disk_mib: writes past it fail with "Disk quota exceeded"). False
	// (absent) on a node without quotas, for an account made before they
	// were enabled, and from agents before this field. The coordinator
	// records it as the account's quota.enforced (HostingQuota.Enforced).
	QuotaEnforced bool `json:"quota_enforced,omitempty"`
	Deleted       bool `json:"deleted,omitempty"`
}

// Hosting account statuses.
const (
	HostingProvisioning = "provisioning"
	HostingActive       = "active"
	HostingSuspended    = "suspended"
	HostingError        = "error"
	HostingDeleted      = "deleted"
)

// HostingPlanInfo is a hosting plan of the catalogue: its slug and limits.
type HostingPlanInfo struct {
	Slug string `json:"slug"`
	HostingPlan
}

// DefaultHostingPlans are the hosting plans an operator can place without
// configuring any.
var DefaultHostingPlans = []HostingPlanInfo{
	{Slug: "hosting-starter", HostingPlan: HostingPlan{PHPWorkers: 4, PHPMemoryMiB: 128, MaxExecutionSeconds: 30, UploadMiB: 32, DiskMiB: 5120}},
	{Slug: "hosting-pro", HostingPlan: HostingPlan{PHPWorkers: 8, PHPMemoryMiB: 256, MaxExecutionSeconds: 60, UploadMiB: 128, DiskMiB: 20480}},
	{Slug: "hosting-business", HostingPlan: HostingPlan{PHPWorkers: 16, PHPMemoryMiB: 512, MaxExecutionSeconds: 120, UploadMiB: 256, DiskMiB: 51200}},
}

// HostingPlanBySlug finds a default hosting plan.
func HostingPlanBySlug(slug string) (HostingPlanInfo, bool) {
	return bySlug(DefaultHostingPlans, slug, func(p HostingPlanInfo) string { return p.Slug })
}

// HostingConnection is how the customer reaches the account: SFTP and the
// database (never a password). The host and ports are those of the node the
// account is on, as its agent reports them (NodeHostingConnection): the SFTP
// host is the node's public hostname where its operator configured one
// (agent --hosting-sftp-host), so that it works before the domain's DNS
// points at the node, else the account's own domain; the SFTP port is the
// one the node's sshd listens on and db_port its MariaDB's TCP port: 0 when
// the node's MariaDB takes no TCP connections (skip_networking) or the node
// could not ask it yet, so that only db_host localhost (its socket) reaches
// the database. Until the node has reported them (an agent before this
// field, a cluster below semantics level 7) they are the defaults: the
// domain, 22 and 3306.
// db_host is "localhost": PHP's mysqli and PDO then use the node's MariaDB
// socket (the port is not used); a client connecting over TCP on the node
// uses 127.0.0.1 and db_port.
// db_network tells the two meanings of a db_port of 0 apart: "tcp" when the
// node's MariaDB takes TCP connections on db_port (its socket works too),
// "socket_only" when it takes none (skip_networking: only db_host
// localhost, its socket, reaches it), "unknown" while that is not known
// (the node could not ask its MariaDB yet, its agent or the cluster is of a
// release before the field, or it reported nothing: db_port is then the
// default 3306). The API always sets it; omitempty keeps the connection
// the hosting records of the replicated state hold (empty, never read) as
// every release writes it.
type HostingConnection struct {
	SFTPHost  string `json:"sftp_host"`
	SFTPPort  int    `json:"sftp_port"`
	SFTPUser  string `json:"sftp_user"`
	DBHost    string `json:"db_host"`
	DBPort    int    `json:"db_port"`
	DBNetwork string `json:"db_network,omitempty"`
	DBName    string `json:"db_name"`
	DBUser    string `json:"db_user"`
}

// HostingConnection.DBNetwork's values.
const (
	DBNetworkTCP        = "tcp"
	DBNetworkSocketOnly = "socket_only"
	DBNetworkUnknown    = "unknown"
)

// NodeHostingConnection is where a hosting node's customers connect, as its
// agent reports it (Hello, usage reports): SFTPHost is the node's public
// hostname ("" when its operator set none), SFTPPort its sshd's port and
// DBPort its MariaDB's TCP port (0: not known, or MariaDB takes no TCP).
// DBKnown is set when DBPort is MariaDB's own answer, so that a DBPort of 0
// says MariaDB takes no TCP connections (skip_networking): sent by agents
// of this release, recorded from semantics level 12 (false below it, and
// from an older agent: a 0 is then "not known or no TCP").
type NodeHostingConnection struct {
	SFTPHost string `json:"sftp_host,omitempty"`
	SFTPPort int    `json:"sftp_port,omitempty"`
	DBPort   int    `json:"db_port,omitempty"`
	DBKnown  bool   `json:"db_known,omitempty"`
}

// Defaults of a hosting account's connection details while its node has not
// reported its own (HostingConnection).
const (
	DefaultSFTPPort = 22
	DefaultDBPort   = 3306
)

// HostingQuota is the plan's disk allowance and the usage the node last
// reported.
type HostingQuota struct {
	DiskMiB       int    `json:"disk_mib"`
	DiskUsedBytes uint64 `json:"disk_used_bytes"`
	// Enforced: true, the node enforces DiskMiB with a file system quota
	// (a btrfs qgroup limit of the account's site: a write past it fails
	// with "Disk quota exceeded"); false, the allowance is only reported
	// (the node's sites are not on btrfs with quotas, or the account was
	// made before they were enabled). As the node last reported it, with
	// an action's result or in its usage report. Nil (absent) while not
	// known: below semantics level 6, and until the node has reported it
	// (a pointer, so that a record written below the level holds no key).
	Enforced *bool `json:"enforced,omitempty"`
}

// HostingAccount is the customer view of a hosting account (never a password,
// no node name).
type HostingAccount struct {
	ID         string            `json:"id"`
	Username   string            `json:"username"`
	Domain     string            `json:"domain"`
	Plan       string            `json:"plan"`
	Status     string            `json:"status"`
	PHPVersion string            `json:"php_version"`
	Limits     HostingPlan       `json:"limits"`
	Quota      HostingQuota      `json:"quota"`
	Connection HostingConnection `json:"connection"`
	// Location is the location of the node it runs on (the datacenter or
	// node group an order can ask for), if the node has one.
	Location string `json:"location,omitempty"`
	ActionID string `json:"action_id,omitempty"` // the action in progress
	// PaidUntil is the end of the period paid for (accounts bought with
	// POST /v1/hosting; absent for accounts an operator placed).
	PaidUntil *time.Time `json:"paid_until,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
	// DomainReleasedAt is when another hosting account verified control of
	// this account's domain (a custom domain verified through DNS) and took
	// the name over: the domain is no longer served for this account, which
	// otherwise keeps working (SFTP, database, a custom domain of its own).
	// A primary domain is never verified, so it holds its name only until
	// someone proves control of it.
	DomainReleasedAt *time.Time `json:"domain_released_at,omitempty"`
	// CustomDomain is the account's custom domain with its certificate
	// status (GET /v1/hosting/:id only; never stored with the account).
	CustomDomain *HostingCustomDomain `json:"custom_domain,omitempty"`
}

// HostingCustomDomain is the custom domain as the hosting detail shows it.
type HostingCustomDomain struct {
	Domain      string             `json:"domain"`
	Status      string             `json:"status"`
	Certificate *CertificateStatus `json:"certificate,omitempty"`
}

// HostingList is GET /v1/hosting: a page of accounts, newest first.
type HostingList = Page[HostingAccount]

// HostingActionAccepted is the 202 of a hosting action.
type HostingActionAccepted struct {
	Action  Action          `json:"action"`
	Hosting *HostingAccount `json:"hosting,omitempty"`
}

// What POST /v1/hosting/:id/password-reset resets (its body's target).
const (
	HostingPasswordSFTP = "sftp"
	HostingPasswordDB   = "db"
	HostingPasswordBoth = "both"
)

// HostingPasswordTargets are the values of HostingPasswordResetRequest.Target.
var HostingPasswordTargets = []string{HostingPasswordSFTP, HostingPasswordDB, HostingPasswordBoth}

// HostingPasswordResetRequest is the optional body of POST
// /v1/hosting/:id/password-reset; an empty target is "both".
type HostingPasswordResetRequest struct {
	Target string `json:"target,omitempty"`
}

// HostingPasswordResetAccepted is the 202 of POST
// /v1/hosting/:id/password-reset: the action setting the new passwords on
// the node and the passwords it sets (those of the target only), shown in
// this response only and never stored.
type HostingPasswordResetAccepted struct {
	Action       Action          `json:"action"`
	Hosting      *HostingAccount `json:"hosting,omitempty"`
	SFTPPassword string          `json:"sftp_password,omitempty"`
	DBPassword   string          `json:"db_password,omitempty"`
}

// HostingPHPRequest is PUT /v1/hosting/:id/php.
type HostingPHPRequest struct {
	PHPVersion string `json:"php_version"`
}

// AdminHostingCreateRequest is the operator's hosting create (hostplanectl
// hosting create).
type AdminHostingCreateRequest struct {
	AccountID  string `json:"account_id"`
	Plan       string `json:"plan"`
	Domain     string `json:"domain"`
	Username   string `json:"username"`
	PHPVersion string `json:"php_version,omitempty"` // default: the node's newest
	NodeID     string `json:"node_id,omitempty"`     // default: placed
	// Location places it on a hosting node in that location (hostplanectl
	// node location); empty: any node.
	Location string `json:"location,omitempty"`
}

// AdminHostingCreated answers an admin hosting create: the account, its
// provisioning action and the two passwords, shown this once and never stored.
type AdminHostingCreated struct {
	Hosting      HostingAccount `json:"hosting"`
	NodeID       string         `json:"node_id"`
	Action       Action         `json:"action"`
	SFTPPassword string         `json:"sftp_password,omitempty"`
	DBPassword   string         `json:"db_password,omitempty"`
}

// AdminHostingAccount is the operator view of a hosting account.
type AdminHostingAccount struct {
	HostingAccount
	AccountID string `json:"account_id"`
	NodeID    string `json:"node_id"`
}

// HostingOrderRequest is POST /v1/hosting: a hosting account bought from the
// wallet (plan_slug is a hosting product of GET /v1/products).
type HostingOrderRequest struct {
	PlanSlug   string `json:"plan_slug"`
	Domain     string `json:"domain"`
	Username   string `json:"username"`
	PHPVersion string `json:"php_version,omitempty"`
	Location   string `json:"location,omitempty"`
}

// HostingOrder answers POST /v1/hosting: the account, its provisioning
// action, the paid invoice and the SFTP and database passwords (only in this
// response).
type HostingOrder struct {
	Hosting      HostingAccount `json:"hosting"`
	Action       Action         `json:"action"`
	Invoice      Invoice        `json:"invoice"`
	SFTPPassword string         `json:"sftp_password,omitempty"`
	DBPassword   string         `json:"db_password,omitempty"`
}
