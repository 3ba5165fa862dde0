package brand

import (
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework/hostenv"
)

// phpInfo is what a customer uploads to see what PHP runs the site.
const phpInfo = `<?php
echo "version=", PHP_MAJOR_VERSION, ".", PHP_MINOR_VERSION, "\n";
echo "memory_limit=", ini_get('memory_limit'), "\n";
echo "max_execution_time=", ini_get('max_execution_time'), "\n";
echo "upload_max_filesize=", ini_get('upload_max_filesize'), "\n";
`

// TestSeed444hostPHPAsTheSiteSeesIt: the 444host seed's php_version, checked
// as a customer checks it: by asking PHP on the site. On a --brand 444host
// coordinator and a real hosting node (nginx, PHP-FPM 8.2, MariaDB, sshd):
// an order asking for the seed's default 8.3, which the node lacks, is a 400
// naming php_version that charges nothing; one asking for 8.2 is served by
// PHP 8.2 with the plan's limits that GET /v1/hosting/:id shows (memory,
// execution time, upload size); PUT /php with the seed's 7.4 (not installed)
// or hostile values is a 400 naming php_version that changes nothing, and
// with 8.2 leaves the site served by 8.2. Every answer is validated against
// the /openapi.json the coordinator serves.
func TestSeed444hostPHPAsTheSiteSeesIt(t *testing.T) {
	env := hostenv.New(t)
	sa := hostingSeedAPI(t, env, env.Prefix+"-php@example.com", env.Prefix+"-php1",
		api.HostingPlan{PHPWorkers: 2, PHPMemoryMiB: 96, MaxExecutionSeconds: 25, UploadMiB: 12, DiskMiB: 1024}, 500,
		"account:read", "orders:write", "hosting:read", "hosting:write", "billing:read")
	key := sa.key
	call, obj := sa.call, sa.obj
	user := env.Prefix + "php"
	order := map[string]any{"plan_slug": "hosting-starter", "domain": "php-probe.example.com", "username": user}
	wallet := func() float64 {
		t.Helper()
		b, _ := obj(call("GET", "/v1/billing/wallet", nil, 200))["balance_usd_cents"].(float64)
		return b
	}

	// The seed's default, 8.3: not on the node.
	order["php_version"] = "8.3"
	if r := call("POST", "/v1/hosting", order, 400); !strings.Contains(string(r.Body), "php_version") {
		t.Errorf("an order for PHP 8.3: %s, want 400 naming php_version", r.Body)
	}
	var list struct {
		Data []map[string]any `json:"data"`
	}
	call("GET", "/v1/hosting", nil, 200).Decode(t, &list)
	if b := wallet(); b != 500 || len(list.Data) != 0 {
		t.Fatalf("after the refused order: balance %v, %d accounts; want 500, none", b, len(list.Data))
	}

	order["php_version"] = "8.2"
	ord := obj(call("POST", "/v1/hosting", order, 201, "Idempotency-Key", "php-1"))
	h, _ := ord["hosting"].(map[string]any)
	id, _ := h["id"].(string)
	sftpPW, _ := ord["sftp_password"].(string)
	settled := func() map[string]any {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			var v map[string]any // a new map each time: a field left out must not stay from before
			sa.a.Call(key, "GET", "/v1/hosting/"+id, nil, nil).Decode(t, &v)
			if v["status"] == "active" && v["action_id"] == nil {
				return v
			}
			if time.Now().After(deadline) {
				if aid, _ := v["action_id"].(string); aid != "" {
					call("GET", "/v1/actions/"+aid, nil, 200)
				}
				t.Fatalf("hosting account %s not active with no action in progress after 60 s: %v", id, v)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	detail := settled()
	lim, _ := detail["limits"].(map[string]any)
	if detail["php_version"] != "8.2" || lim["php_memory_mib"] != float64(96) || lim["max_execution_seconds"] != float64(25) || lim["upload_mib"] != float64(12) {
		t.Fatalf("GET /v1/hosting/:id: php_version %v, limits %v", detail["php_version"], lim)
	}

	// What PHP on the site says.
	cl, err := hostenv.SFTP(env.SSHAddr, user, sftpPW)
	if err != nil {
		t.Fatalf("sftp: %v", err)
	}
	err = hostenv.Put(cl, "/public/info.php", phpInfo)
	cl.Close()
	if err != nil {
		t.Fatal(err)
	}
	want := "version=8.2\nmemory_limit=96M\nmax_execution_time=25\nupload_max_filesize=12M\n"
	site := func(what string) {
		t.Helper()
		if code, body := hostenv.Get(t, env.HTTPAddr, "php-probe.example.com", "/info.php"); code != 200 || body != want {
			t.Errorf("%s: the site's PHP says %d %q, want %q", what, code, body, want)
		}
	}
	site("after the order")

	// Versions the node lacks and hostile values: 400 naming php_version.
	for _, v := range []string{"7.4", "8.1", "", "8.2; id", "../8.2", "8.2\n", "8", "php8.2", "8.2.0"} {
		if r := call("PUT", "/v1/hosting/"+id+"/php", map[string]any{"php_version": v}, 400); !strings.Contains(string(r.Body), "php_version") {
			t.Errorf("PUT php %q: %s, want 400 naming php_version", v, r.Body)
		}
	}
	if d := settled(); d["php_version"] != "8.2" {
		t.Errorf("after the refused changes: php_version %v", d["php_version"])
	}
	site("after the refused changes")
	call("PUT", "/v1/hosting/"+id+"/php", map[string]any{"php_version": "8.2"}, 202)
	settled()
	site("after PUT php 8.2")
}
