package httpapi

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/fsmtest"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestActionTaskTable: every command has a task while running, pending is
// "queued", a finished action has none, and every value is of the
// documented vocabulary (api.ActionTasks, the openapi enum).
func TestActionTaskTable(t *testing.T) {
	for _, cmd := range api.ActionCommands {
		if got := actionTask(cmd, api.ActionPending, ""); got != api.ActionTaskQueued {
			t.Errorf("%s pending: %q, want queued", cmd, got)
		}
		for _, step := range []string{"", "accepted", "a-step-of-a-newer-agent"} {
			if got := actionTask(cmd, api.ActionRunning, step); got == "" || !slices.Contains(api.ActionTasks, got) {
				t.Errorf("%s running after %q: %q, not of api.ActionTasks", cmd, step, got)
			}
		}
		for _, st := range []string{api.ActionSuccess, api.ActionFailed} {
			if got := actionTask(cmd, st, "started"); got != "" {
				t.Errorf("%s %s: %q, want none", cmd, st, got)
			}
		}
	}
	for cmd, steps := range actionTaskByStep {
		for step, task := range steps {
			if !slices.Contains(api.ActionTasks, task) || !slices.Contains(api.ActionCommands, cmd) {
				t.Errorf("%s after %s: %q", cmd, step, task)
			}
		}
	}
	for cmd, task := range actionTaskByCommand {
		if !slices.Contains(api.ActionTasks, task) || !slices.Contains(api.ActionCommands, cmd) {
			t.Errorf("%s: %q", cmd, task)
		}
	}
	// A provisioning, step by step as the agent journals it.
	var seen []string
	for _, step := range []string{"accepted", "disk-created", "seed-created", "defined", "started"} {
		seen = append(seen, actionTask(api.ActionServerProvision, api.ActionRunning, step))
	}
	if want := []string{"preparing_disk", "preparing_disk", "creating", "starting", "finishing"}; !slices.Equal(seen, want) {
		t.Errorf("provision: %v, want %v", seen, want)
	}
	// The openapi enum is the vocabulary.
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Enum []any `json:"enum"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	var enum []string
	for _, v := range doc.Components.Schemas["Action"].Properties["current_task"].Enum {
		s, _ := v.(string)
		enum = append(enum, s)
	}
	if !slices.Equal(enum, api.ActionTasks) {
		t.Errorf("openapi Action.current_task enum %v, want %v", enum, api.ActionTasks)
	}
}

// TestActionTaskKnowsEveryAgentStep reads the step names the agent journals
// (and reports as an action's progress) from its sources: each is mapped to a
// task for the command that reports it, or is one that only says the
// command's own task. A step renamed or added in the agent fails here until
// the mapping says what it means to a customer.
func TestActionTaskKnowsEveryAgentStep(t *testing.T) {
	root := filepath.Join("..", "..", "..", "agent", "internal")
	var files []string
	for _, pat := range []string{"ops/*.go", "hosting/*.go", "actions/*.go"} {
		m, err := filepath.Glob(filepath.Join(root, pat))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	stepCall := regexp.MustCompile(`\b(?:r\.)?(?:step|progress)\("([a-z-]+)"\)`)
	suspension := regexp.MustCompile(`\{"([a-z-]+)", (?:func|usermod|dbLock)`)
	found := map[string]string{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, re := range []*regexp.Regexp{stepCall, suspension} {
			for _, m := range re.FindAllStringSubmatch(string(b), -1) {
				found[m[1]] = filepath.Base(f)
			}
		}
	}
	if len(found) < 10 {
		t.Fatalf("found only %v in the agent's sources: the patterns no longer match how it journals steps", found)
	}
	mapped := map[string]bool{}
	for _, steps := range actionTaskByStep {
		for s := range steps {
			mapped[s] = true
		}
	}
	// Steps that say no more than their command: the first frame of every
	// action, a hosting suspension's or password reset's parts, and a
	// template import's (not a customer's action).
	commandLevel := []string{"accepted", "sftp", "image-copied"}
	for step, file := range found {
		if !mapped[step] && !slices.Contains(commandLevel, step) {
			t.Errorf("agent step %q (%s) has no current task: add it to actionTaskByStep", step, file)
		}
	}
	for _, steps := range actionTaskByStep {
		for s := range steps {
			if _, ok := found[s]; !ok {
				t.Errorf("actionTaskByStep maps %q, which the agent never reports", s)
			}
		}
	}
}

// TestActionCurrentTaskServed: GET /v1/actions/{id} and GET /v1/actions say
// what an action does now, from the steps its node reported (applied as the
// dispatcher records them, CmdActionProgress): queued while pending, each
// task of a provisioning in turn, none once finished; a power action's own
// task after the node's first frame.
func TestActionCurrentTaskServed(t *testing.T) {
	s := newSrvAPI(t)
	acc, key := s.account(allServerScopes...)
	s.apply(fsm.CmdClusterLevel, fsm.ClusterLevel{Level: 2})
	c := fsmtest.ServerCreate(acc, "hv-secret-node", time.Now())
	id, prov := c.Server.ID, c.Action
	s.apply(fsm.CmdServerCreate, c)

	task := func(actID string) (string, string) {
		t.Helper()
		g := s.call(key, "GET", "/v1/actions/"+actID, "")
		if g.status != 200 {
			t.Fatalf("GET action: %d %s", g.status, g.body)
		}
		got, _ := g.m["current_task"].(string)
		l := s.call(key, "GET", "/v1/actions?resource_id="+id, "")
		var inList string
		for _, a := range l.m["data"].([]any) {
			if a := a.(map[string]any); a["id"] == actID {
				inList, _ = a["current_task"].(string)
			}
		}
		if inList != got {
			t.Errorf("%s: GET says %q, the list %q", actID, got, inList)
		}
		return got, g.m["status"].(string)
	}
	if got, st := task(prov.ID); got != "queued" || st != api.ActionPending {
		t.Errorf("pending provision: %q (%s), want queued", got, st)
	}
	for i, c := range []struct{ step, want string }{
		{"accepted", "preparing_disk"}, {"disk-created", "preparing_disk"}, {"seed-created", "creating"},
		{"defined", "starting"}, {"started", "finishing"},
	} {
		s.apply(fsm.CmdActionProgress, fsm.ActionProgress{ID: prov.ID, At: time.Now().UTC(), Percent: 10 * i, Step: c.step})
		if got, st := task(prov.ID); got != c.want || st != api.ActionRunning {
			t.Errorf("provision after %s: %q (%s), want %q", c.step, got, st, c.want)
		}
	}
	s.finish(prov.ID, true)
	if got, st := task(prov.ID); got != "" || st != api.ActionSuccess {
		t.Errorf("finished provision: %q (%s), want none", got, st)
	}

	r := s.call(key, "POST", "/v1/servers/"+id+"/power/stop", "")
	stop := actionID(t, r)
	if _, ok := r.m["action"].(map[string]any)["current_task"]; ok {
		t.Errorf("the 202 carries current_task: %s", r.body)
	}
	if got, _ := task(stop); got != "queued" {
		t.Errorf("pending stop: %q", got)
	}
	s.apply(fsm.CmdActionProgress, fsm.ActionProgress{ID: stop, At: time.Now().UTC(), Step: "accepted"})
	if got, _ := task(stop); got != "stopping" {
		t.Errorf("running stop: %q, want stopping", got)
	}
	s.finish(stop, false)
	if got, st := task(stop); got != "" || st != api.ActionFailed {
		t.Errorf("failed stop: %q (%s), want none", got, st)
	}
}
