package httpapi

import (
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/pkg/validate"
)

// TestGeneratedPasswordsPassTheAgentRule: every password the coordinator
// makes for a reinstall or password reset is one the agent accepts.
func TestGeneratedPasswordsPassTheAgentRule(t *testing.T) {
	for range 200 {
		pw, err := newPassword()
		if err != nil {
			t.Fatal(err)
		}
		if err := validate.Password(pw); err != nil {
			t.Fatalf("generated password refused by the agent's rule: %v", err)
		}
	}
}

// TestCoordinatorAcceptsWhatTheAgentAccepts: the API edge and the agent apply
// one template and node-id rule, so nothing the API accepts is refused later by
// the agent for its name.
func TestCoordinatorAcceptsWhatTheAgentAccepts(t *testing.T) {
	for _, s := range []string{"debian-12", "ubuntu-24.04", "alma_9", ".x", "-x", "_x", "A", "a/b", ""} {
		if (templateName("osTemplate", s) == nil) != (validate.TemplateName(s) == nil) {
			t.Errorf("template %q: coordinator and agent disagree", s)
		}
	}
}

// TestNamesTheCoordinatorMakesPassTheAgent: the VM name admin create derives
// (the longest allowed prefix + a server id) passes the agent's Name rule.
func TestNamesTheCoordinatorMakesPassTheAgent(t *testing.T) {
	now := time.Now()
	prefix := strings.Repeat("p", 20)
	if !ValidVMPrefix(prefix) || ValidVMPrefix(prefix+"p") {
		t.Fatal("the longest VM prefix is not 20 characters any more: update this test")
	}
	for range 50 {
		vm := prefix + strings.ReplaceAll(ids.New("srv", now), "_", "-")
		if err := validate.Name("vm", vm); err != nil {
			t.Fatalf("VM name %q refused by the agent: %v", vm, err)
		}
	}
}
