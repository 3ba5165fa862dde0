package httpapi

import (
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// An action's current task (api.Action.CurrentTask) is worked out when it is
// read, from its command and the last step its node reported (store.Action's
// Step, recorded with its progress). The steps are the agent's own journal
// names (agent/internal/ops, agent/internal/hosting); what they mean differs
// by command: a server's step names what was just done (provision
// "seed-created": next the VM is defined), a hosting account's what is about
// to be done ("database": its database is being made). "accepted" is the
// agent's first frame for every action (taken, nothing done yet). A step not
// listed (a newer agent's) gives the command's own task, so the value shown
// is always of api.ActionTasks. TestActionTaskKnowsEveryAgentStep reads the
// agent's sources for the step names.

// actionTaskByCommand is each command's task while no step says more.
var actionTaskByCommand = map[string]string{
	api.ActionServerProvision:      api.ActionTaskPreparingDisk,
	api.ActionServerStart:          api.ActionTaskStarting,
	api.ActionServerStop:           api.ActionTaskStopping,
	api.ActionServerReboot:         api.ActionTaskRebooting,
	api.ActionServerReinstall:      api.ActionTaskPreparingDisk,
	api.ActionServerTerminate:      api.ActionTaskDeleting,
	api.ActionServerPasswordReset:  api.ActionTaskSettingPassword,
	api.ActionSnapshotCreate:       api.ActionTaskSnapshotting,
	api.ActionSnapshotDelete:       api.ActionTaskDeletingSnapshot,
	api.ActionSnapshotRevert:       api.ActionTaskReverting,
	api.ActionHostingCreate:        api.ActionTaskConfiguringAccount,
	api.ActionHostingSuspend:       api.ActionTaskSuspending,
	api.ActionHostingUnsuspend:     api.ActionTaskUnsuspending,
	api.ActionHostingSetPHP:        api.ActionTaskConfiguringPHP,
	api.ActionHostingDelete:        api.ActionTaskDeleting,
	api.ActionHostingPasswordReset: api.ActionTaskSettingPassword,
	api.ActionHostingCert:          api.ActionTaskInstallingCertificate,
	api.ActionHostingUncert:        api.ActionTaskRemovingCertificate,
	api.ActionHostingChallenge:     api.ActionTaskServingChallenge,
}

// actionTaskByStep is what a command does after (a server's) or at (a
// hosting account's) a step its node reported.
var actionTaskByStep = map[string]map[string]string{
	api.ActionServerProvision: {
		"disk-created": api.ActionTaskPreparingDisk, // the first-boot seed is next
		"seed-created": api.ActionTaskCreating,      // the VM is defined next
		"defined":      api.ActionTaskStarting,
		"started":      api.ActionTaskFinishing,
	},
	api.ActionServerReinstall: {
		"volumes-created": api.ActionTaskReplacingDisk,
		"disk-swapped":    api.ActionTaskRemovingOldDisk,
		"old-removed":     api.ActionTaskStarting,
	},
	api.ActionServerTerminate: {
		"undefined":       api.ActionTaskDeleting, // its volumes are deleted next
		"volumes-deleted": api.ActionTaskFinishing,
	},
	api.ActionHostingCreate: {
		"user":     api.ActionTaskConfiguringAccount,
		"files":    api.ActionTaskConfiguringAccount,
		"database": api.ActionTaskConfiguringDatabase,
		"pool":     api.ActionTaskConfiguringPHP,
		"site":     api.ActionTaskConfiguringSite,
	},
	api.ActionHostingCert: {
		"routed": api.ActionTaskInstallingCertificate,
	},
}

// actionTask is what an action of command in status is doing now, after
// its node reported step ("" none): "" once it finished.
func actionTask(command, status, step string) string {
	switch status {
	case api.ActionPending:
		return api.ActionTaskQueued
	case api.ActionRunning:
	default:
		return ""
	}
	if t, ok := actionTaskByStep[command][step]; ok {
		return t
	}
	if t, ok := actionTaskByCommand[command]; ok {
		return t
	}
	return "" // a command this coordinator does not know (TestActionTaskTable: none)
}

// publicAction is the customer's view of a: its current task worked out.
func publicAction(a store.Action) api.Action {
	out := a.Action
	out.CurrentTask = actionTask(a.Command, a.Status, a.Step)
	return out
}
