// Package fsmtest builds FSM commands that tests of the packages above the
// FSM (httpapi, hostplanectl) apply as fixtures.
package fsmtest

import (
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// ServerCreate places a server of acc on node as of now: "web"
// (web.example.com, debian-12, 203.0.113.7/24, the second default plan),
// with its provisioning action, pending, due within the hour.
func ServerCreate(acc, node string, now time.Time) fsm.ServerCreate {
	id := ids.New("srv", now)
	vm := "hp-vm-" + id[4:]
	srv := store.Server{Server: api.Server{ID: id, Label: "web", Hostname: "web.example.com", OSTemplate: "debian-12", OS: "debian",
		IPv4: "203.0.113.7/24", Plan: api.DefaultPlans[1]}, AccountID: acc, NodeID: node, VMName: vm}
	prov := store.Action{Action: api.Action{ID: ids.New("act", now), Command: api.ActionServerProvision, ResourceID: id},
		NodeID: node, Target: vm, Deadline: now.Add(time.Hour)}
	return fsm.ServerCreate{Server: srv, Action: prov}
}
