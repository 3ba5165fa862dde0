package api

import "time"

// Server statuses.
const (
	ServerProvisioning = "provisioning" // the provisioning action has not finished
	ServerRunning      = "running"
	ServerStopped      = "stopped"
	ServerError        = "error" // provisioning failed; only terminate is allowed
	ServerTerminated   = "terminated"
)

// Action statuses.
const (
	ActionPending = "pending" // committed, not yet acknowledged by the node
	ActionRunning = "running" // the node is working on it
	ActionSuccess = "success"
	ActionFailed  = "error"
)

// Action commands. The names are part of the API (action.command) and of the
// coordinator↔agent contract (ActionAssign.command).
const (
	ActionServerProvision     = "server.provision"
	ActionServerStart         = "server.start"
	ActionServerStop          = "server.stop"
	ActionServerReboot        = "server.reboot"
	ActionServerReinstall     = "server.reinstall"
	ActionServerTerminate     = "server.terminate"
	ActionServerPasswordReset = "server.password_reset"
	ActionSnapshotCreate      = "snapshot.create"
	ActionSnapshotDelete      = "snapshot.delete"
	ActionSnapshotRevert      = "snapshot.revert"
)

// ActionList is GET /v1/actions: a page of the account's actions, newest
// first. NextCursor, when not null, is the cursor query parameter of the
// next (older) page; a page may hold fewer than Limit actions and still
// have a next one.
type ActionList struct {
	Data       []Action `json:"data"`
	Limit      int      `json:"limit"`
	NextCursor *string  `json:"next_cursor"`
}

// ActionStatuses are the statuses an action has (GET /v1/actions?status=).
var ActionStatuses = []string{ActionPending, ActionRunning, ActionSuccess, ActionFailed}

// ActionResourceTypes are the kinds of resource an action is about.
var ActionResourceTypes = []string{"server", "hosting"}

// ActionCommands are the commands an action may have (action.command, GET
// /v1/actions?command=).
var ActionCommands = []string{
	ActionServerProvision, ActionServerStart, ActionServerStop, ActionServerReboot, ActionServerReinstall,
	ActionServerTerminate, ActionServerPasswordReset, ActionSnapshotCreate, ActionSnapshotDelete, ActionSnapshotRevert,
	ActionHostingCreate, ActionHostingSuspend, ActionHostingUnsuspend, ActionHostingSetPHP, ActionHostingDelete,
	ActionHostingCert, ActionHostingUncert, ActionHostingChallenge, ActionHostingPasswordReset,
}

// ServerPlan is a server's size.
type ServerPlan struct {
	Slug      string `json:"slug"`
	VCPUs     uint32 `json:"vcpus"`
	MemoryMiB uint64 `json:"memory_mib"`
	DiskGiB   uint64 `json:"disk_gib"`
}

// Server is what a customer sees of a server: no node, libvirt name, disk path
// or provider detail (backbone-scrubbed).
type Server struct {
	ID         string     `json:"id"`
	Label      string     `json:"label"`
	Hostname   string     `json:"hostname"`
	Status     string     `json:"status"`
	Plan       ServerPlan `json:"plan"`
	OSTemplate string     `json:"os_template"`
	OS         string     `json:"os"`
	// IPv4 is the primary IPv4 address (CIDR form); the customer view of a
	// terminated server shows neither address (they were released).
	IPv4 string `json:"ipv4,omitempty"`
	// IPv6 is the server's IPv6 address with its delegated prefix's length
	// (2001:db8:0:5::1/64): the whole prefix is routed to the server.
	IPv6 string `json:"ipv6,omitempty"`
	// Location is the location of the node it runs on (the datacenter or
	// node group an order can ask for), if the node has one.
	Location string `json:"location,omitempty"`
	// ActionID is the mutating action in progress, if any.
	ActionID     string     `json:"action_id,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	UpdatedAt    time.Time  `json:"updated_at"`
	TerminatedAt *time.Time `json:"terminated_at,omitempty"`
	// PaidUntil is the end of the period paid for (servers bought with
	// POST /v1/servers; none for servers an operator placed).
	PaidUntil *time.Time `json:"paid_until,omitempty"`
}

// ServerSnapshot is a restore point of a server's disk.
type ServerSnapshot struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	State       string    `json:"state"` // power state captured: running or stopped
	CreatedAt   time.Time `json:"created_at"`
}

// ActionError says why an action failed.
type ActionError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Action is long work on a resource, followed with GET /v1/actions/:id.
type Action struct {
	ID           string       `json:"id"`
	Command      string       `json:"command"`
	Status       string       `json:"status"`
	Progress     int          `json:"progress"` // percent
	ResourceType string       `json:"resource_type"`
	ResourceID   string       `json:"resource_id"`
	CreatedAt    time.Time    `json:"created_at"`
	StartedAt    *time.Time   `json:"started_at,omitempty"`
	FinishedAt   *time.Time   `json:"finished_at,omitempty"`
	Error        *ActionError `json:"error,omitempty"`
	// Method is how a power action that succeeded was done, as its node
	// reported (ActionMethods): a server.reboot of a stopped server is
	// "started", a fresh boot and not a reboot. Empty for other actions,
	// and for one whose node did not say.
	Method string `json:"method,omitempty"`
	// CurrentTask is what a pending or running action is doing now, one of
	// ActionTasks ("queued" while pending); absent once it finished, and in
	// the 202 that made it. Shown by GET /v1/actions/{id} and GET
	// /v1/actions; it is worked out when read, never stored.
	CurrentTask string `json:"current_task,omitempty"`
}

// ActionMethods are the values of Action.Method, by command: a start
// started the server or found it running already; a stop shut it down on
// the ACPI request (graceful), powered it off when the grace ran out
// (forced), or found it stopped; a reboot restarted the guest on the ACPI
// request (guest-acpi), reset it (reset), or started it, as it was stopped
// (started).
var ActionMethods = map[string][]string{
	ActionServerStart:  {NodePowerStarted, NodePowerAlready},
	ActionServerStop:   {NodePowerGraceful, NodePowerForced, NodePowerAlready},
	ActionServerReboot: {NodeRebootGuest, NodeRebootReset, NodeRebootStarted},
}

// Finished reports whether the action reached success or error.
func (a *Action) Finished() bool { return a.Status == ActionSuccess || a.Status == ActionFailed }

// ActionAccepted is the body of every 202: the action to follow and, where the
// request changed one, the server. RootPassword is set only by reinstall (and
// admin server create); it is shown this once and never stored.
type ActionAccepted struct {
	Action       Action          `json:"action"`
	Server       *Server         `json:"server,omitempty"`
	Snapshot     *ServerSnapshot `json:"snapshot,omitempty"`
	RootPassword string          `json:"root_password,omitempty"`
}

// ServerList is GET /v1/servers.
type ServerList struct {
	Data []Server `json:"data"`
}

// ServerSnapshotList is GET /v1/servers/:id/snapshots.
type ServerSnapshotList struct {
	Data []ServerSnapshot `json:"data"`
}

// PowerActions are the :action values of POST /v1/servers/:id/power/:action.
var PowerActions = []string{"start", "stop", "reboot"}

// SnapshotCreateRequest is POST /v1/servers/:id/snapshots.
type SnapshotCreateRequest struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

// ReinstallRequest is POST /v1/servers/:id/reinstall. osTemplate names the
// template; os is its family (checked against the template when given).
type ReinstallRequest struct {
	OSTemplate string   `json:"osTemplate"`
	OS         string   `json:"os,omitempty"`
	SSHKeys    []string `json:"ssh_keys,omitempty"`
}

// LabelRequest is PATCH /v1/servers/:id/label.
type LabelRequest struct {
	Label string `json:"label"`
}

// PasswordResetAccepted is the 202 of POST /v1/servers/:id/password-reset: the
// new root password, shown once.
type PasswordResetAccepted = ActionAccepted

// ServerStats is one live sample of GET /v1/servers/:id/stats (and each SSE
// event of ?stream=1).
type ServerStats struct {
	ServerID       string    `json:"server_id"`
	Time           time.Time `json:"time"`
	State          string    `json:"state"`
	CPUPercent     float64   `json:"cpu_percent"`
	MemoryBytes    uint64    `json:"memory_bytes"`
	DiskReadBytes  uint64    `json:"disk_read_bytes"`
	DiskWriteBytes uint64    `json:"disk_write_bytes"`
	DiskReadBps    float64   `json:"disk_read_bps"`
	DiskWriteBps   float64   `json:"disk_write_bps"`
	NetRxBytes     uint64    `json:"net_rx_bytes"`
	NetTxBytes     uint64    `json:"net_tx_bytes"`
	NetRxBps       float64   `json:"net_rx_bps"`
	NetTxBps       float64   `json:"net_tx_bps"`
}

// Admin (hostplanectl) types.

// AdminServerCreateRequest places and provisions a server for an account.
type AdminServerCreateRequest struct {
	AccountID string   `json:"account_id"`
	Plan      string   `json:"plan"` // a plan slug (see AdminPlans)
	Template  string   `json:"template"`
	OS        string   `json:"os,omitempty"`
	Label     string   `json:"label,omitempty"`
	Hostname  string   `json:"hostname,omitempty"`
	SSHKeys   []string `json:"ssh_keys,omitempty"`
	NodeID    string   `json:"node_id,omitempty"` // pin to a node (must have room)
	// Location places it on a node in that location (hostplanectl node
	// location); empty: any node.
	Location   string `json:"location,omitempty"`
	IPv4       string `json:"ipv4,omitempty"` // static address in CIDR form; empty: DHCP
	Gateway4   string `json:"gateway4,omitempty"`
	Network    string `json:"network,omitempty"` // agent network spec; empty: the agent's default
	NoPassword bool   `json:"no_password,omitempty"`
}

// AdminServer is the operator's view of a server: the customer view plus where
// it runs.
type AdminServer struct {
	Server
	AccountID string `json:"account_id"`
	NodeID    string `json:"node_id"`
	VMName    string `json:"vm_name"`
}

// AdminServerCreated answers an admin server create.
type AdminServerCreated struct {
	Server       AdminServer `json:"server"`
	Action       Action      `json:"action"`
	RootPassword string      `json:"root_password,omitempty"`
}

// AdminNodeDetail is `hostplanectl node show`: the node, its scheduling state
// and the servers on it.
type AdminNodeDetail struct {
	AgentNode
	Used      AgentNodeCapacity `json:"used"`
	Servers   []AdminServer     `json:"servers"`
	Templates []string          `json:"templates"`
	// PHPVersions are the PHP-FPM versions a hosting node reported.
	PHPVersions []string `json:"php_versions,omitempty"`
}

// DefaultPlans are the plan slugs an operator can place without configuring any.
var DefaultPlans = []ServerPlan{
	{Slug: "nano", VCPUs: 1, MemoryMiB: 256, DiskGiB: 1},
	{Slug: "small", VCPUs: 1, MemoryMiB: 1024, DiskGiB: 25},
	{Slug: "medium", VCPUs: 2, MemoryMiB: 4096, DiskGiB: 80},
	{Slug: "large", VCPUs: 4, MemoryMiB: 8192, DiskGiB: 160},
}

// PlanBySlug finds a default plan.
func PlanBySlug(slug string) (ServerPlan, bool) {
	return bySlug(DefaultPlans, slug, func(p ServerPlan) string { return p.Slug })
}

// bySlug finds the plan of plans whose slug (slugOf's) is slug: the lookup
// of PlanBySlug and HostingPlanBySlug.
func bySlug[P any](plans []P, slug string, slugOf func(P) string) (P, bool) {
	for _, p := range plans {
		if slugOf(p) == slug {
			return p, true
		}
	}
	var none P
	return none, false
}

// PowerRequest is the optional body of POST /v1/servers/:id/power/:action.
// Force and GraceSeconds apply to stop and reboot only: without force the guest
// gets GraceSeconds (default: the node's) to shut down cleanly before it is cut.
type PowerRequest struct {
	Force        bool `json:"force,omitempty"`
	GraceSeconds int  `json:"grace_seconds,omitempty"`
}

// ServerIP is one address of GET /v1/servers/:id/ips; PTR is null while no
// reverse-DNS name is set. Gateway is null for an address without one (a
// static address given by hand without a gateway); Netmask is IPv4 only.
type ServerIP struct {
	IP      string  `json:"ip"`
	Version int     `json:"version"`
	PTR     *string `json:"ptr"`
	// Primary: the address the server was created with in its family.
	Primary bool    `json:"primary"`
	Gateway *string `json:"gateway"`
	Netmask *string `json:"netmask,omitempty"`
	// Prefix is the prefix length: the network's for IPv4 (24), the
	// delegated prefix's for IPv6 (64).
	Prefix int `json:"prefix"`
	// ZoneHosted: a reverse zone mapped by the operator holds the address,
	// so PowerDNS serves its PTR; false: the name is only recorded.
	ZoneHosted bool `json:"zoneHosted"`
	// PTRSync says whether PowerDNS serves the recorded PTR (or its
	// removal): synced, pending (PowerDNS not reached yet) or not_hosted.
	PTRSync string `json:"ptrSync"`
}

// ServerIPGroup is one server's addresses in GET /v1/servers/ips.
type ServerIPGroup struct {
	ServerID string     `json:"serverId"`
	Label    string     `json:"label"`
	IPs      []ServerIP `json:"ips"`
}

// AccountIPList is GET /v1/servers/ips: every address of the account's
// servers (not terminated), grouped per server, newest server first, one
// page of servers (Page, Limit, Total, NextPage and NextCursor as in Page;
// the cursor is a server id).
type AccountIPList struct {
	Data       []ServerIPGroup `json:"data"`
	Page       int             `json:"page"`
	Limit      int             `json:"limit"`
	Total      int             `json:"total"`
	NextPage   *int            `json:"next_page"`
	NextCursor *string         `json:"next_cursor"`
}

// PTRRequest is PUT /v1/servers/:id/ips/:ip/ptr: the reverse-DNS name of the
// address (a lower-case DNS name; a trailing dot is stripped).
type PTRRequest struct {
	Hostname string `json:"hostname"`
}

// ServerIPList is GET /v1/servers/:id/ips.
type ServerIPList struct {
	Data []ServerIP `json:"data"`
}
