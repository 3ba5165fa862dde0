package api

import "time"

// This file holds the wire types of the agent's local API (the unix socket that
// `hostplanectl node …` talks to). Fields are only added, never renamed.

// NodeAPIVersion is the version prefix of the agent's local API paths.
const NodeAPIVersion = "v1"

// NodeDefaultSocket is where the agent listens unless configured otherwise.
const NodeDefaultSocket = "/run/hostplane/agent.sock"

// Error codes carried in NodeError.Code.
const (
	NodeErrInvalid        = "invalid_input"      // rejected before anything was touched
	NodeErrNotFound       = "not_found"          // VM, template, snapshot or operation unknown
	NodeErrAlreadyExists  = "already_exists"     // name taken
	NodeErrConflict       = "conflict"           // operation id reused with other input, or wrong state
	NodeErrBusy           = "busy"               // the resource is locked by another job
	NodeErrNoSpace        = "insufficient_space" // storage pool too full
	NodeErrUnsupported    = "unsupported"        // e.g. password reset without a guest agent
	NodeErrInterrupted    = "interrupted"        // the agent restarted while the operation ran
	NodeErrInternal       = "internal"           // anything else; details are in the agent log
	NodeErrUnavailable    = "unavailable"        // libvirt or the guest agent did not answer
	NodeErrChecksumFailed = "checksum_mismatch"  // template import: image differs from the given checksum
)

// NodeError is the error envelope of every non-2xx response and of failed operations.
type NodeError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error implements error.
func (e *NodeError) Error() string { return e.Message }

// NodeErrorResponse wraps NodeError on the wire.
type NodeErrorResponse struct {
	Error NodeError `json:"error"`
}

// Operation kinds.
const (
	NodeOpTemplateImport = "template.import"
	NodeOpTemplateRemove = "template.remove"
	NodeOpProvision      = "vm.provision"
	NodeOpStart          = "vm.start"
	NodeOpStop           = "vm.stop"
	NodeOpReboot         = "vm.reboot"
	NodeOpSnapshotCreate = "vm.snapshot.create"
	NodeOpSnapshotDelete = "vm.snapshot.delete"
	NodeOpSnapshotRevert = "vm.snapshot.revert"
	NodeOpReinstall      = "vm.reinstall"
	NodeOpTerminate      = "vm.terminate"
	NodeOpPasswordReset  = "vm.password-reset"
)

// Operation states.
const (
	NodeOpRunning   = "running"
	NodeOpSucceeded = "succeeded"
	NodeOpFailed    = "failed"
)

// Power methods reported by stop and reboot.
const (
	NodePowerGraceful = "graceful" // the guest shut down on the ACPI request within the grace
	NodePowerForced   = "forced"   // the grace ran out and the VM was powered off
	NodePowerAlready  = "already"  // the VM was already in the requested state
	NodePowerStarted  = "started"  // start: the VM was started
)

// Reboot methods: how a reboot was done. The first two reboot a running VM
// and keep its QEMU process; a stopped VM is started instead.
const (
	NodeRebootGuest   = "guest-acpi" // the guest rebooted on the ACPI request within the grace (libvirt reset it after its shutdown)
	NodeRebootReset   = "reset"      // forced: a hardware reset, after the grace ran out or at once with force
	NodeRebootStarted = "started"    // the VM was stopped: it was started (booted fresh), not rebooted
)

// NodeOperation is one journaled operation and, once finished, its result.
type NodeOperation struct {
	ID         string        `json:"id"`
	Kind       string        `json:"kind"`
	Target     string        `json:"target"`
	State      string        `json:"state"`
	StartedAt  time.Time     `json:"started_at"`
	FinishedAt *time.Time    `json:"finished_at,omitempty"`
	Error      *NodeError    `json:"error,omitempty"`
	Result     *NodeOpResult `json:"result,omitempty"`
	Replayed   bool          `json:"replayed,omitempty"` // true when this answer is a recorded result
}

// NodeOpResult is what a finished operation reports; only the fields of its kind are set.
type NodeOpResult struct {
	VM               *NodeVM       `json:"vm,omitempty"`
	Template         *NodeTemplate `json:"template,omitempty"`
	Snapshot         *NodeSnapshot `json:"snapshot,omitempty"`
	PowerMethod      string        `json:"power_method,omitempty"`
	RebootMethod     string        `json:"reboot_method,omitempty"` // reboot only (always set): NodeReboot*
	SnapshotsRemoved []string      `json:"snapshots_removed,omitempty"`
	Message          string        `json:"message,omitempty"`
	// Hosting is the account of a hosting action (protocol 1.3).
	Hosting *NodeHostingAccount `json:"hosting,omitempty"`
}

// NodeTemplate is an OS template registered on the node.
type NodeTemplate struct {
	Name       string    `json:"name"`
	OSFamily   string    `json:"os_family"`
	SizeBytes  uint64    `json:"size_bytes"`        // virtual size of the base image
	FileBytes  uint64    `json:"file_bytes"`        // bytes of the base image file
	SHA256     string    `json:"sha256"`            // of the base image file
	Volume     string    `json:"volume"`            // base volume in the agent's pool
	Kernel     string    `json:"kernel,omitempty"`  // direct-boot templates only
	Initrd     string    `json:"initrd,omitempty"`  // direct-boot templates only
	Cmdline    string    `json:"cmdline,omitempty"` // direct-boot templates only
	GuestAgent bool      `json:"guest_agent"`       // the image runs the QEMU guest agent
	ImportedAt time.Time `json:"imported_at"`
}

// NodeTemplateImportRequest imports a base image (and for direct-boot templates a
// kernel and initrd) from local files. SHA256 is required and verified.
type NodeTemplateImportRequest struct {
	OpID       string `json:"op_id"`
	Name       string `json:"name"`
	OSFamily   string `json:"os_family"`
	ImagePath  string `json:"image_path"`
	SHA256     string `json:"sha256"`
	KernelPath string `json:"kernel_path,omitempty"`
	InitrdPath string `json:"initrd_path,omitempty"`
	Cmdline    string `json:"cmdline,omitempty"`
	GuestAgent bool   `json:"guest_agent,omitempty"`
}

// NodeOpRequest is the body of operations that need nothing but an id.
type NodeOpRequest struct {
	OpID string `json:"op_id"`
}

// NodePlan sizes a VM.
type NodePlan struct {
	VCPUs     uint32 `json:"vcpus"`
	MemoryMiB uint64 `json:"memory_mib"`
	DiskGiB   uint64 `json:"disk_gib"`
}

// NodeProvisionRequest creates and starts a VM.
type NodeProvisionRequest struct {
	OpID         string   `json:"op_id"`
	Name         string   `json:"name"`
	Template     string   `json:"template"`
	Plan         NodePlan `json:"plan"`
	MAC          string   `json:"mac,omitempty"`     // empty: the agent picks one (52:54:00:…)
	Network      string   `json:"network,omitempty"` // "user", "network:NAME" or "bridge:NAME"; empty: agent default
	Hostname     string   `json:"hostname,omitempty"`
	RootPassword string   `json:"root_password,omitempty"` // plaintext; never stored, only its SHA-512 crypt hash
	SSHKeys      []string `json:"ssh_keys,omitempty"`
	IPv4         string   `json:"ipv4,omitempty"` // static address in CIDR form, e.g. 192.0.2.10/24; empty: DHCP
	Gateway4     string   `json:"gateway4,omitempty"`
	// Bridge is a Linux bridge of the node's configuration (agent --bridge) the
	// guest's NIC joins, with libvirt's clean-traffic nwfilter and the
	// addresses below as its parameters; it needs IPv4. Empty: Network.
	Bridge string `json:"bridge,omitempty"`
	// IPv6 is a static IPv6 address in CIDR form (2001:db8:0:5::1/64) and
	// Gateway6 its default route (in the prefix or link-local).
	IPv6      string   `json:"ipv6,omitempty"`
	Gateway6  string   `json:"gateway6,omitempty"`
	Resolvers []string `json:"resolvers,omitempty"` // DNS resolvers for the guest's network-config
}

// NodeStopRequest stops or reboots a VM: ACPI first, forced after the grace.
type NodeStopRequest struct {
	OpID         string `json:"op_id"`
	GraceSeconds int    `json:"grace_seconds,omitempty"` // 0: the agent's default
	Force        bool   `json:"force,omitempty"`         // skip the ACPI request
}

// NodeSnapshotCreateRequest creates a snapshot.
type NodeSnapshotCreateRequest struct {
	OpID        string `json:"op_id"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

// NodeReinstallRequest replaces the root disk with a fresh copy of a template.
type NodeReinstallRequest struct {
	OpID         string   `json:"op_id"`
	Template     string   `json:"template"`
	RootPassword string   `json:"root_password,omitempty"`
	SSHKeys      []string `json:"ssh_keys,omitempty"`
}

// NodePasswordResetRequest sets the root password through the QEMU guest agent.
type NodePasswordResetRequest struct {
	OpID     string `json:"op_id"`
	User     string `json:"user,omitempty"` // default root
	Password string `json:"password"`
}

// NodeVM describes a VM on the node.
type NodeVM struct {
	Name        string    `json:"name"`
	UUID        string    `json:"uuid"`
	State       string    `json:"state"` // running, shutoff, paused, crashed, …
	Template    string    `json:"template"`
	Plan        NodePlan  `json:"plan"`
	MAC         string    `json:"mac"`
	Network     string    `json:"network"`
	Hostname    string    `json:"hostname"`
	DomainType  string    `json:"domain_type"` // kvm or qemu
	DiskVolume  string    `json:"disk_volume"`
	SeedVolume  string    `json:"seed_volume"`
	ConsoleLog  string    `json:"console_log"`
	InstalledAt time.Time `json:"installed_at"`
	CreatedAt   time.Time `json:"created_at"`
}

// NodeSnapshot describes a snapshot of a VM.
type NodeSnapshot struct {
	Name         string    `json:"name"`
	Description  string    `json:"description,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	State        string    `json:"state"`          // power state captured: running or shutoff
	VMStateBytes uint64    `json:"vm_state_bytes"` // saved memory/device state (0 for offline snapshots)
	Current      bool      `json:"current"`
}

// NodeVMStats is one sample of a VM's counters and rates.
type NodeVMStats struct {
	Time           time.Time `json:"time"`
	State          string    `json:"state"`
	CPUPercent     float64   `json:"cpu_percent"` // of one host CPU times vCPUs: 100 × vCPUs at most
	CPUTimeNs      uint64    `json:"cpu_time_ns"`
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

// NodeHostStats is one sample of the host.
type NodeHostStats struct {
	Time        time.Time `json:"time"`
	CPUPercent  float64   `json:"cpu_percent"`
	MemoryTotal uint64    `json:"memory_total"`
	MemoryUsed  uint64    `json:"memory_used"`
	DiskTotal   uint64    `json:"disk_total"` // filesystem holding the storage pool
	DiskUsed    uint64    `json:"disk_used"`
	Load1       float64   `json:"load1"`
	Load5       float64   `json:"load5"`
	Load15      float64   `json:"load15"`
}

// NodeStats is what `GET /v1/stats` returns: the host's latest sample and, per VM,
// the ring of recent samples (oldest first).
type NodeStats struct {
	Host NodeHostStats            `json:"host"`
	VMs  map[string][]NodeVMStats `json:"vms"`
}
