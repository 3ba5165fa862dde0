package api

// What an action is doing now (Action.CurrentTask), in the customer's terms:
// a stable vocabulary the coordinator maps the node's own step names to.
// Values are only added, never renamed; a client should show an unknown one
// as is.
const (
	// ActionTaskQueued: committed, waiting for the node to take it.
	ActionTaskQueued = "queued"
	// ActionTaskPreparingDisk: a new server's disk (from its OS template)
	// and its first-boot configuration are being written.
	ActionTaskPreparingDisk = "preparing_disk"
	// ActionTaskCreating: the virtual machine is being defined on its node.
	ActionTaskCreating = "creating"
	// ActionTaskStarting: the server is being started.
	ActionTaskStarting = "starting"
	// ActionTaskStopping: the server is being shut down.
	ActionTaskStopping = "stopping"
	// ActionTaskRebooting: the server is being restarted.
	ActionTaskRebooting = "rebooting"
	// ActionTaskReplacingDisk: a reinstall's new disk takes the old one's place.
	ActionTaskReplacingDisk = "replacing_disk"
	// ActionTaskRemovingOldDisk: a reinstall removes the old disk and its snapshots.
	ActionTaskRemovingOldDisk = "removing_old_disk"
	// ActionTaskSnapshotting: the snapshot is being taken.
	ActionTaskSnapshotting = "snapshotting"
	// ActionTaskDeletingSnapshot: the snapshot is being removed.
	ActionTaskDeletingSnapshot = "deleting_snapshot"
	// ActionTaskReverting: the disk is being rolled back to the snapshot.
	ActionTaskReverting = "reverting"
	// ActionTaskSettingPassword: a password is being set (a server's
	// through its guest agent; a hosting account's SFTP or database one).
	ActionTaskSettingPassword = "setting_password"
	// ActionTaskDeleting: the server or hosting account is being removed.
	ActionTaskDeleting = "deleting"
	// ActionTaskConfiguringAccount: a hosting account's system user and files.
	ActionTaskConfiguringAccount = "configuring_account"
	// ActionTaskConfiguringDatabase: a hosting account's database and its user.
	ActionTaskConfiguringDatabase = "configuring_database"
	// ActionTaskConfiguringPHP: a hosting account's PHP-FPM pool.
	ActionTaskConfiguringPHP = "configuring_php"
	// ActionTaskConfiguringSite: a hosting account's site goes live under its domain.
	ActionTaskConfiguringSite = "configuring_site"
	// ActionTaskSuspending / ActionTaskUnsuspending: a hosting account's
	// site, SFTP, PHP pool and database are stopped or restored.
	ActionTaskSuspending   = "suspending"
	ActionTaskUnsuspending = "unsuspending"
	// ActionTaskInstallingCertificate: a custom domain's certificate and
	// route are being installed; ActionTaskRemovingCertificate: removed.
	ActionTaskInstallingCertificate = "installing_certificate"
	ActionTaskRemovingCertificate   = "removing_certificate"
	// ActionTaskServingChallenge: the node serves an ACME HTTP-01 challenge.
	ActionTaskServingChallenge = "serving_challenge"
	// ActionTaskFinishing: the work is done; the node is reporting the result.
	ActionTaskFinishing = "finishing"
)

// ActionTasks is every value Action.CurrentTask takes.
var ActionTasks = []string{
	ActionTaskQueued, ActionTaskPreparingDisk, ActionTaskCreating, ActionTaskStarting, ActionTaskStopping,
	ActionTaskRebooting, ActionTaskReplacingDisk, ActionTaskRemovingOldDisk, ActionTaskSnapshotting,
	ActionTaskDeletingSnapshot, ActionTaskReverting, ActionTaskSettingPassword, ActionTaskDeleting,
	ActionTaskConfiguringAccount, ActionTaskConfiguringDatabase, ActionTaskConfiguringPHP, ActionTaskConfiguringSite,
	ActionTaskSuspending, ActionTaskUnsuspending, ActionTaskInstallingCertificate, ActionTaskRemovingCertificate,
	ActionTaskServingChallenge, ActionTaskFinishing,
}

// AdminAction is an action as the operator sees it (GET /admin/actions,
// hostplanectl action list|get): the customer's view with the account, the
// node it runs on and the node's own name of its last step.
type AdminAction struct {
	Action
	AccountID string `json:"account_id"`
	NodeID    string `json:"node_id"`
	Step      string `json:"step,omitempty"`
}

// AdminActionList is GET /admin/actions: a page of every account's actions
// (or one account's, one resource's, one status'), newest first, paged by
// cursor as GET /v1/actions: NextCursor, when not null, is the cursor of the
// next (older) page; a page may hold fewer than Limit actions and still
// have a next one.
type AdminActionList struct {
	Data       []AdminAction `json:"data"`
	Limit      int           `json:"limit"`
	NextCursor *string       `json:"next_cursor"`
}
