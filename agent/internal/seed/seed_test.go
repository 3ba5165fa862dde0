package seed

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/kdomanski/iso9660"
)

func TestSHA512CryptVectors(t *testing.T) {
	cases := []struct{ pw, setting, want string }{
		// From the specification (Drepper, SHA-crypt.txt).
		{"Hello world!", "$6$saltstring", "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"},
		{"Hello world!", "$6$rounds=10000$saltstringsaltstring", "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v."},
		{"This is just a test", "$6$rounds=5000$toolongsaltstring", "$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0"},
		{"a very much longer text to encrypt.  This one even stretches over morethan one line.", "$6$rounds=1400$anotherlongsaltstring", "$6$rounds=1400$anotherlongsalts$POfYwTEok97VWcjxIiSOjiykti.o/pQs.wPvMxQ6Fm7I6IoYN3CmLs66x9t0oSwbtEW7o7UmJEiDwGqd8p4ur1"},
		{"we have a short salt string but not a short password", "$6$rounds=77777$short", "$6$rounds=77777$short$WuQyW2YR.hBNpjjRhpYD/ifIw05xdfeEyQoMxIXbkvr0gge1a1x3yRULJ5CCaUeOxFmtlcGZelFl5CxtgfiAc0"},
		{"a short string", "$6$rounds=123456$asaltof16chars..", "$6$rounds=123456$asaltof16chars..$BtCwjqMJGx5hrJhZywWvt0RLE8uZ4oPwcelCjmw2kSYu.Ec6ycULevoBK25fs2xXgMNrCzIMVcgEJAstJeonj1"},
		{"the minimum number is still observed", "$6$rounds=10$roundstoolow", "$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX."},
		// From `openssl passwd -6 -salt …` on this machine.
		{"hunter2!", "$6$abcdefgh12345678", "$6$abcdefgh12345678$fBcF7CBiTotKgwmtYf6Q7qJkj6VwRPsWeIwf5r5NQ1jtJP/lISGmujtKhalhebedSbiF7vLoPF4kubBJiMmxH."},
		{"correct horse battery staple", "$6$xy", "$6$xy$QyRzU5Vlj5nKLsXzv7KfYG0.ZJ4rshYD7z/RriTatgtk9iolAWDrK.t8MWcVJC4kWa/EQkl3CfEBImsjuwE78/"},
	}
	for _, c := range cases {
		got, err := SHA512Crypt(c.pw, c.setting)
		if err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("SHA512Crypt(%q, %q)\n got %s\nwant %s", c.pw, c.setting, got, c.want)
		}
	}
}

func TestHashPasswordAgainstOpenSSL(t *testing.T) {
	h, err := HashPassword("s3cret-pass")
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := SHA512Crypt("s3cret-pass", h); again != h {
		t.Fatalf("verify own hash: %s != %s", again, h)
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		return
	}
	salt := strings.Split(h, "$")[2]
	out, err := exec.Command("openssl", "passwd", "-6", "-salt", salt, "s3cret-pass").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(out)) != h {
		t.Fatalf("openssl %s != ours %s", out, h)
	}
}

func TestSeedReadBack(t *testing.T) {
	c := Config{
		InstanceID:   "vm1-abc",
		Hostname:     "web-1.example.com",
		PasswordHash: "$6$xy$QyRzU5Vlj5nKLsXzv7KfYG0.ZJ4rshYD7z/RriTatgtk9iolAWDrK.t8MWcVJC4kWa/EQkl3CfEBImsjuwE78/",
		SSHKeys:      []string{`ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHkLdvy1TyHQOhUjYZr36zB0sUeCCPdFHnB8WWf33Hlo "quoted": #comment <x>`},
		MAC:          "52:54:00:12:34:56",
		IPv4CIDR:     "192.0.2.10/24",
		Gateway4:     "192.0.2.1",
	}
	img, err := Build(c)
	if err != nil {
		t.Fatal(err)
	}
	label, files, err := readISO(img)
	if err != nil {
		t.Fatal(err)
	}
	if label != "cidata" {
		t.Fatalf("label %q", label)
	}
	for _, n := range []string{"meta-data", "user-data", "network-config"} {
		if _, ok := files[n]; !ok {
			t.Fatalf("missing %s in %v", n, files)
		}
	}
	ud := string(files["user-data"])
	if !strings.HasPrefix(ud, "#cloud-config\n") {
		t.Fatalf("user-data header: %q", ud)
	}
	var u struct {
		Hostname string `json:"hostname"`
		Users    []struct {
			Name   string   `json:"name"`
			Hash   string   `json:"hashed_passwd"`
			Keys   []string `json:"ssh_authorized_keys"`
			Locked bool     `json:"lock_passwd"`
		} `json:"users"`
	}
	if err := json.Unmarshal([]byte(strings.TrimPrefix(ud, "#cloud-config\n")), &u); err != nil {
		t.Fatal(err)
	}
	if u.Hostname != c.Hostname || len(u.Users) != 1 || u.Users[0].Hash != c.PasswordHash || u.Users[0].Keys[0] != c.SSHKeys[0] || u.Users[0].Locked {
		t.Fatalf("user-data: %+v", u)
	}
	var md map[string]string
	if err := json.Unmarshal(files["meta-data"], &md); err != nil || md["instance-id"] != "vm1-abc" || md["local-hostname"] != c.Hostname {
		t.Fatalf("meta-data %s %v", files["meta-data"], err)
	}
	var nc struct {
		Version   int `json:"version"`
		Ethernets map[string]struct {
			Match     map[string]string `json:"match"`
			Addresses []string          `json:"addresses"`
		} `json:"ethernets"`
	}
	if err := json.Unmarshal(files["network-config"], &nc); err != nil || nc.Version != 2 || nc.Ethernets["eth0"].Match["macaddress"] != c.MAC || nc.Ethernets["eth0"].Addresses[0] != c.IPv4CIDR {
		t.Fatalf("network-config %s %v", files["network-config"], err)
	}

	// blkid (util-linux) is an independent reader of the label and type.
	if _, err := exec.LookPath("blkid"); err == nil {
		p := filepath.Join(t.TempDir(), "seed.iso")
		if err := os.WriteFile(p, img, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("blkid", "-p", "-o", "export", p).CombinedOutput()
		if err != nil {
			t.Fatalf("blkid: %v %s", err, out)
		}
		if !strings.Contains(string(out), "LABEL=cidata") || !strings.Contains(string(out), "TYPE=iso9660") {
			t.Fatalf("blkid does not see a cidata iso9660: %s", out)
		}
	}
}

// readISO reads back the volume label and root files of img with the library's
// own reader (an independent check of what WriteISO wrote).
func readISO(img []byte) (string, map[string][]byte, error) {
	im, err := iso9660.OpenImage(bytes.NewReader(img))
	if err != nil {
		return "", nil, err
	}
	label, err := im.Label()
	if err != nil {
		return "", nil, err
	}
	root, err := im.RootDir()
	if err != nil {
		return "", nil, err
	}
	kids, err := root.GetChildren()
	if err != nil {
		return "", nil, err
	}
	files := map[string][]byte{}
	for _, k := range kids {
		b, err := io.ReadAll(k.Reader())
		if err != nil {
			return "", nil, err
		}
		files[k.Name()] = b
	}
	return label, files, nil
}

// TestSeedNamesAsLinuxReadsThem checks the image with isoinfo (genisoimage), an
// independent ISO 9660 reader: the volume id is "cidata" and the root's file
// identifiers are the lower-case NoCloud names with only the ";1" version suffix,
// which Linux's isofs strips (map=normal, the default), so cloud-init finds
// /meta-data, /user-data and /network-config on the mounted seed.
func TestSeedNamesAsLinuxReadsThem(t *testing.T) {
	if _, err := exec.LookPath("isoinfo"); err != nil {
		t.Fatal("isoinfo not found: apt-get install genisoimage (scripts/install-test-deps.sh installs it)")
	}
	img, err := Build(Config{InstanceID: "i-1", Hostname: "h", MAC: "52:54:00:00:00:01"})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "seed.iso")
	if err := os.WriteFile(p, img, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("isoinfo", "-d", "-i", p).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Volume id: cidata") {
		t.Fatalf("isoinfo -d: %v\n%s", err, out)
	}
	out, err = exec.Command("isoinfo", "-f", "-i", p).CombinedOutput()
	if err != nil {
		t.Fatalf("isoinfo -f: %v\n%s", err, out)
	}
	got := strings.Fields(string(out))
	sort.Strings(got)
	want := []string{"/meta-data;1", "/network-config;1", "/user-data;1"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("root files %q, want %q", got, want)
	}
	data, err := exec.Command("isoinfo", "-i", p, "-x", "/user-data;1").Output()
	if err != nil || !strings.HasPrefix(string(data), "#cloud-config\n") {
		t.Fatalf("isoinfo -x user-data: %v %q", err, data)
	}
}

func TestWriteISORefusesNamesItWouldMangle(t *testing.T) {
	for _, n := range []string{"", "User-Data", "a.b", "a;1", "a/b", strings.Repeat("x", 29)} {
		if _, err := WriteISO("cidata", []File{{n, []byte("x")}}); err == nil {
			t.Errorf("WriteISO accepted file name %q", n)
		}
	}
	if _, err := WriteISO("cidata", []File{{"a", nil}, {"a", nil}}); err == nil {
		t.Error("WriteISO accepted a duplicate name")
	}
	if _, err := WriteISO("", nil); err == nil {
		t.Error("WriteISO accepted an empty label")
	}
}
