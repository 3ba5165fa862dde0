package httpapi

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
)

var serverSeeds = []string{
	``, `{}`, `null`, `[]`, `{`, `"x"`, `{"force":true}`, `{"force":"yes"}`, `{"grace_seconds":30}`, `{"grace_seconds":0}`,
	`{"grace_seconds":601}`, `{"grace_seconds":1e3}`, `{"force":false,"grace_seconds":600}`, `{"hard":true}`,
	`{"name":"before upgrade","description":"x"}`, `{"name":""}`, `{"name":"a/b"}`, `{"name":" lead"}`, `{"name":"ünïcode 1.0"}`,
	`{"osTemplate":"debian-12"}`, `{"osTemplate":"Debian"}`, `{"osTemplate":"debian-12","os":"debian","ssh_keys":["ssh-ed25519 AAAA x"]}`,
	`{"osTemplate":"debian-12","ssh_keys":["hello"]}`, `{"osTemplate":"debian-12","ssh_keys":["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEL6P6xcEx8Rin3snII2BE9kXbu6DHiO2alXqoX86AQD a@b"]}`, `{"osTemplate":"debian-12","ssh_keys":["ssh-rsa a\nb"]}`,
	`{"label":"web 1"}`, `{"label":""}`, `{"label":"a\u0000"}`, `{"label":"\u200b"}`, `{} {}`,
}

func FuzzDecodePower(f *testing.F) {
	for _, s := range serverSeeds {
		for _, action := range []string{"start", "stop", "reboot", "explode"} {
			f.Add(action, []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, action string, body []byte) {
		req, err := DecodePower(action, body)
		if err != nil {
			mustBeClientError(t, err)
			return
		}
		if action != "start" && action != "stop" && action != "reboot" {
			t.Fatalf("accepted action %q", action)
		}
		if req.GraceSeconds < 0 || req.GraceSeconds > maxGraceSeconds || action == "start" && (req.Force || req.GraceSeconds != 0) {
			t.Fatalf("accepted %s %+v", action, req)
		}
	})
}

func FuzzDecodeSnapshotCreate(f *testing.F) {
	fuzzDecoder(f, serverSeeds, DecodeSnapshotCreate, func(t *testing.T, req api.SnapshotCreateRequest) {
		n := utf8.RuneCountInString(req.Name)
		if n < 1 || n > maxSnapshotName || strings.TrimSpace(req.Name) != req.Name || utf8.RuneCountInString(req.Description) > maxSnapshotDescription ||
			validate.SnapshotDescription(req.Description) != nil {
			t.Fatalf("accepted %+v", req)
		}
		for _, r := range req.Name {
			if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune(" -_.", r) {
				t.Fatalf("accepted name %q", req.Name)
			}
		}
	})
}

func FuzzDecodeReinstall(f *testing.F) {
	fuzzDecoder(f, serverSeeds, DecodeReinstall, func(t *testing.T, req api.ReinstallRequest) {
		if templateName("osTemplate", req.OSTemplate) != nil || len(req.SSHKeys) > maxSSHKeys || utf8.RuneCountInString(req.OS) > maxOSName {
			t.Fatalf("accepted %+v", req)
		}
		for _, k := range req.SSHKeys {
			if strings.ContainsAny(k, "\r\n") || utf8.RuneCountInString(k) > maxSSHKey ||
				!(strings.HasPrefix(k, "ssh-") || strings.HasPrefix(k, "ecdsa-") || strings.HasPrefix(k, "sk-")) {
				t.Fatalf("accepted key %q", k)
			}
			if _, err := validate.SSHKey(k); err != nil { // the agent would refuse it after the charge
				t.Fatalf("accepted key %q the agent refuses: %v", k, err)
			}
		}
	})
}

func FuzzDecodeLabel(f *testing.F) {
	fuzzDecoder(f, serverSeeds, DecodeLabel, func(t *testing.T, req api.LabelRequest) {
		if n := utf8.RuneCountInString(req.Label); n < 1 || n > maxServerLabel || !utf8.ValidString(req.Label) {
			t.Fatalf("accepted %q", req.Label)
		}
		for _, r := range req.Label {
			if !unicode.IsPrint(r) {
				t.Fatalf("accepted %q", req.Label)
			}
		}
	})
}

func FuzzDecodeNoBody(f *testing.F) {
	decode := func(body []byte) ([]byte, error) { return body, decodeNoBody(body) }
	fuzzDecoder(f, serverSeeds, decode, func(t *testing.T, body []byte) {
		if b := strings.TrimSpace(string(body)); b != "" && b != "null" && !strings.HasPrefix(b, "{") {
			t.Fatalf("accepted %q", body)
		}
	})
}

func FuzzDecodeEmptyObject(f *testing.F) {
	decode := func(body []byte) ([]byte, error) { return body, decodeEmptyObject(body) }
	fuzzDecoder(f, append(serverSeeds, ` `, "\n"), decode, func(t *testing.T, body []byte) {
		if len(body) > 0 && !strings.HasPrefix(strings.TrimSpace(string(body)), "{") && strings.TrimSpace(string(body)) != "null" {
			t.Fatalf("accepted %q", body)
		}
	})
}
