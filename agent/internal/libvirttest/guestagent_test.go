package libvirttest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/agent/internal/seed"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestRealGuestAgent boots one guest of the test disk with the real qemu-ga
// (initrd-ga.img, which also loads virtio_balloon) and runs on it the
// checks that need such a guest: its memory figure (MemoryIsTheGuests),
// then a password reset through the guest agent (PasswordReset). One boot
// serves both (a TCG boot is most of either check's time); neither needs a
// guest the other has not touched: the memory check's tmpfs leaves the
// guest's /etc/shadow and seed alone, and it runs first, on the idle guest.
func TestRealGuestAgent(t *testing.T) {
	e, ctx := bootEnv(t, "boots a guest", 6*time.Minute)
	name, vm := e.bootedGuest(ctx, "real-ga", e.guest.InitrdGA, true, "ga")
	// libvirt routes agent calls once the guest's qemu-ga opened its port.
	waitGuestAgent(t, name, vm.ConsoleLog)
	plan := uint64(e.provisionReq("", "", "").Plan.MemoryMiB) << 20
	t.Run("MemoryIsTheGuests", func(t *testing.T) { testMemoryIsTheGuests(t, ctx, e, name, vm.ConsoleLog, plan) })
	t.Run("PasswordReset", func(t *testing.T) { testPasswordReset(t, ctx, e, name, vm.ConsoleLog) })
	if _, err := e.c.Terminate(ctx, name, e.prefix+"-term"); err != nil {
		t.Fatal(err)
	}
}

// testPasswordReset: a guest running the real qemu-ga (initrd-ga.img)
// gets a new root password through the agent's password reset (libvirt →
// guest-set-user-password → chpasswd in the guest), and the guest's /etc/shadow,
// read back through the guest agent's file calls, holds a hash of exactly that
// password. The journal keeps no plaintext. The same guest mounts its NoCloud
// seed CD-ROM with Linux's isofs, as cloud-init does, and finds the three files
// under their lower-case names.
func testPasswordReset(t *testing.T, ctx context.Context, e *env, name, console string) {
	log := framework.ReadFile(t, console)
	if !strings.Contains(log, "GUEST-GA started") {
		t.Fatalf("qemu-ga did not start in the guest:\n%s", log)
	}
	if m := seedRE.FindStringSubmatch(log); m == nil || m[1] == "" {
		t.Fatalf("the guest did not read meta-data, network-config and user-data from the seed ISO:\n%s", log)
	}
	before := rootShadowHash(t, name)

	const pw = "brand-new-Pass-42"
	op, err := e.c.ResetPassword(ctx, name, api.NodePasswordResetRequest{OpID: e.prefix + "-pw", Password: pw})
	if err != nil || op.State != api.NodeOpSucceeded {
		t.Fatalf("password reset through the real guest agent: %+v %v", op, err)
	}
	after := rootShadowHash(t, name)
	if after == before || !strings.HasPrefix(after, "$6$") {
		t.Fatalf("root's shadow entry did not become a SHA-512 hash: before %q, after %q", before, after)
	}
	if got, err := seed.SHA512Crypt(pw, after); err != nil || got != after {
		t.Fatalf("the new shadow hash %q is not of the password that was set (%q, %v)", after, got, err)
	}
	if got, _ := seed.SHA512Crypt("correct-horse-1", after); got == after {
		t.Fatal("the shadow hash matches the old password")
	}
	if rec, err := e.c.Operation(ctx, e.prefix+"-pw"); err != nil || strings.Contains(string(mustJSON(rec)), pw) {
		t.Fatalf("journal record leaks the password or is missing: %v", err)
	}
}

var seedRE = regexp.MustCompile(`GUEST-SEED files=meta-data,network-config,user-data, instance-id=(\S+) user-data=#cloud-config`)

// agentCommand sends one QEMU guest agent command through libvirt.
func agentCommand(dom, cmd string) (json.RawMessage, error) {
	out, err := exec.Command("virsh", "-q", "-c", "qemu:///system", "qemu-agent-command", dom, "--timeout", "10", cmd).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("qemu-agent-command %s: %v: %s", cmd, err, out)
	}
	var r struct {
		Return json.RawMessage `json:"return"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, fmt.Errorf("qemu-agent-command %s: %v: %s", cmd, err, out)
	}
	return r.Return, nil
}

// rootShadowHash reads the guest's /etc/shadow with guest-file-open/read/close
// and returns root's password field.
func rootShadowHash(t *testing.T, dom string) string {
	t.Helper()
	h, err := agentCommand(dom, `{"execute":"guest-file-open","arguments":{"path":"/etc/shadow","mode":"r"}}`)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		_, _ = agentCommand(dom, fmt.Sprintf(`{"execute":"guest-file-close","arguments":{"handle":%s}}`, h))
	}()
	r, err := agentCommand(dom, fmt.Sprintf(`{"execute":"guest-file-read","arguments":{"handle":%s,"count":65536}}`, h))
	if err != nil {
		t.Fatal(err)
	}
	var rd struct {
		Buf string `json:"buf-b64"`
	}
	if err := json.Unmarshal(r, &rd); err != nil {
		t.Fatal(err)
	}
	b, err := base64.StdEncoding.DecodeString(rd.Buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Split(line, ":"); len(f) > 1 && f[0] == "root" {
			return f[1]
		}
	}
	t.Fatalf("no root entry in the guest's /etc/shadow: %q", b)
	return ""
}
