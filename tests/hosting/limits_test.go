package hosting

import (
	"bytes"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework/hostenv"
)

// TestStarterPlanUploadLimit (outside-in): a customer on the default
// hosting-starter plan (upload_mib 32) uploads a media file through a PHP
// form, as WordPress does: a file of 32 MiB - 64 KiB is saved whole by PHP;
// one of 32 MiB + 64 KiB is refused by nginx (413). Before the plan's limit
// reached nginx, every upload over 1 MiB was a 413.
func TestStarterPlanUploadLimit(t *testing.T) {
	w := newWorld(t)
	plan, _ := api.HostingPlanBySlug("hosting-starter")
	user, domain, created := w.activeSite("u", "up")
	c, err := hostenv.SFTP(w.env.SSHAddr, user, created.SFTPPassword)
	if err != nil {
		t.Fatal(err)
	}
	err = hostenv.Put(c, "/public/up.php", `<?php
$f = $_FILES['f'] ?? null;
if (!$f) { echo "nofile\n"; exit; }
if ($f['error'] !== UPLOAD_ERR_OK) { echo "error=", $f['error'], "\n"; exit; }
if (!move_uploaded_file($f['tmp_name'], dirname(__DIR__) . '/private/media.bin')) { echo "move failed\n"; exit; }
echo "saved=", filesize(dirname(__DIR__) . '/private/media.bin'), "\n";
`)
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	post := func(size int) (int, string) {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		fw, _ := mw.CreateFormFile("f", "photo.jpg")
		_, _ = fw.Write(bytes.Repeat([]byte{'p'}, size))
		mw.Close()
		req, _ := http.NewRequest("POST", "http://"+w.env.HTTPAddr+"/up.php", &b)
		req.Host = domain
		req.Header.Set("Content-Type", mw.FormDataContentType())
		res, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
		if err != nil {
			t.Fatalf("upload of %d bytes: %v", size, err)
		}
		defer res.Body.Close()
		rb, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(rb)
	}
	limit := plan.UploadMiB << 20
	if code, body := post(limit - 64<<10); code != 200 || body != fmt.Sprintf("saved=%d\n", limit-64<<10) {
		t.Errorf("a file just under the plan's %d MiB: %d %q, want it saved", plan.UploadMiB, code, body)
	}
	if code, body := post(limit + 64<<10); code != 413 {
		t.Errorf("a file over the plan's %d MiB: %d %q, want nginx's 413", plan.UploadMiB, code, body)
	}
}
