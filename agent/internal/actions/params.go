package actions

import (
	"strings"

	"github.com/hostplane/hostplane/pkg/api"
)

// commands maps each command of the action contract (action.Commands, which
// also holds its params type and secret key) to the ops kind journaled for it.
var commands = map[string]string{
	api.ActionServerProvision:      api.NodeOpProvision,
	api.ActionServerStart:          api.NodeOpStart,
	api.ActionServerStop:           api.NodeOpStop,
	api.ActionServerReboot:         api.NodeOpReboot,
	api.ActionServerReinstall:      api.NodeOpReinstall,
	api.ActionServerTerminate:      api.NodeOpTerminate,
	api.ActionServerPasswordReset:  api.NodeOpPasswordReset,
	api.ActionSnapshotCreate:       api.NodeOpSnapshotCreate,
	api.ActionSnapshotDelete:       api.NodeOpSnapshotDelete,
	api.ActionSnapshotRevert:       api.NodeOpSnapshotRevert,
	api.ActionHostingCreate:        api.NodeOpHostingCreate,
	api.ActionHostingSuspend:       api.NodeOpHostingSuspend,
	api.ActionHostingUnsuspend:     api.NodeOpHostingUnsuspend,
	api.ActionHostingDelete:        api.NodeOpHostingDelete,
	api.ActionHostingSetPHP:        api.NodeOpHostingSetPHP,
	api.ActionHostingCert:          api.NodeOpHostingCert,
	api.ActionHostingUncert:        api.NodeOpHostingUncert,
	api.ActionHostingChallenge:     api.NodeOpHostingChallenge,
	api.ActionHostingPasswordReset: api.NodeOpHostingPasswordReset,
}

// isHosting says whether a command targets a hosting account (its target is
// a username) rather than a VM.
func isHosting(command string) bool { return strings.HasPrefix(command, "hosting.") }
