package fsm

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestPowerMethodShown: from semantics level 2, a power action that
// succeeded records how its node did it (api.Action.Method: a reboot's
// reboot_method, a start's or stop's power_method) and its
// server.power.changed event says so ("method"); a reboot of a stopped
// server is "started". A method outside api.ActionMethods, or none, is
// left out; at level 1 nothing changes. Before, the customer's action and
// event said "reboot" and nothing else when the node had started a stopped
// server.
func TestPowerMethodShown(t *testing.T) {
	for _, level := range []uint16{1, 2} {
		h := newServerHarness(t)
		if level > 1 {
			h.must(CmdClusterLevel, ClusterLevel{Level: level})
		}
		runningServer(h, "203.0.113.7/24")
		for i, tc := range []struct {
			command, result, want string
		}{
			{api.ActionServerStop, `{"power_method":"graceful","message":"shut down"}`, "graceful"},
			{api.ActionServerReboot, `{"power_method":"started","reboot_method":"started","message":"was stopped: started (a fresh boot, not a reboot)"}`, "started"},
			{api.ActionServerReboot, `{"power_method":"graceful","reboot_method":"guest-acpi"}`, "guest-acpi"},
			{api.ActionServerReboot, `{"power_method":"forced","reboot_method":"reset"}`, "reset"},
			{api.ActionServerReboot, `{"power_method":"started"}`, ""},       // an older agent: no reboot_method
			{api.ActionServerReboot, `{"reboot_method":"<script>"}`, ""},     // not a method
			{api.ActionServerStart, `{"power_method":"already"}`, "already"}, // it was running
			{api.ActionServerStart, `{"power_method":"guest-acpi"}`, ""},     // not a start's
			{api.ActionServerStop, `"graceful"`, ""},                         // not an object
			{api.ActionServerStart, ``, ""},                                  // none
		} {
			id := "act_" + string(rune('a'+i))
			h.must(CmdActionCreate, ActionCreate{Action: store.Action{Action: api.Action{ID: id, Command: tc.command, ResourceID: "srv_1"},
				AccountID: "acc_1", NodeID: "hv-1", Target: "hp-srv-1", Deadline: h.at.Add(time.Hour), Mutating: true}})
			done := h.must(CmdActionFinish, ActionFinish{ID: id, Success: true, Result: json.RawMessage(tc.result)}).(api.Action)
			want := tc.want
			if level < 2 {
				want = ""
			}
			var stored store.Action
			_ = h.fsms[1].Read(func(r store.ReadTx) (err error) { stored, err = r.Action(id); return })
			if done.Method != want || stored.Method != want {
				t.Errorf("level %d: %s with result %s: method %q (stored %q), want %q", level, tc.command, tc.result, done.Method, stored.Method, want)
			}
			evs := outboxEvents(t, h.fsms[0])
			e := evs[len(evs)-1]
			var data map[string]any
			_ = json.Unmarshal(e.Data, &data)
			if e.Type != string(api.EventServerPowerChanged) || data["serverId"] != "srv_1" || data["action"] != tc.command[len("server."):] {
				t.Errorf("level %d: %s: event %s %s", level, tc.command, e.Type, e.Data)
			}
			if m, ok := data["method"]; want == "" && ok || want != "" && m != want {
				t.Errorf("level %d: %s with result %s: event data %s, want method %q", level, tc.command, tc.result, e.Data, want)
			}
		}
		h.replicasSame(serverDump)
	}
}
