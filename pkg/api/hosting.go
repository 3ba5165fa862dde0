package api

// Hosting actions (protocol 1.3): commands the coordinator sends to an agent
// with the hosting role. The target is the account's username.
const (
	ActionHostingCreate    = "hosting.create"
	ActionHostingSuspend   = "hosting.suspend"
	ActionHostingUnsuspend = "hosting.unsuspend"
	ActionHostingSetPHP    = "hosting.php"
	ActionHostingDelete    = "hosting.delete"
)

// Journal kinds of hosting operations on the agent.
const (
	NodeOpHostingCreate    = "hosting.create"
	NodeOpHostingSuspend   = "hosting.suspend"
	NodeOpHostingUnsuspend = "hosting.unsuspend"
	NodeOpHostingSetPHP    = "hosting.php"
	NodeOpHostingDelete    = "hosting.delete"
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
	// DiskMiB is the disk allowance (reported against usage; not enforced by
	// a file system quota).
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
	Deleted    bool        `json:"deleted,omitempty"`
}
