package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBrandConfig: --brand layers like every setting (file, HOSTPLANE_BRAND,
// flag), sets the defaults of the key prefix and the webhook header brand,
// which --key-prefix and the older --webhook-signature-brand still override;
// an unknown brand is refused naming the setting and the brands.
func TestBrandConfig(t *testing.T) {
	load := func(file string, args ...string) (Config, error) {
		t.Helper()
		got, err := loadConfig(t, file, args...)
		if err != nil {
			t.Fatal(err)
		}
		got.DataDir = t.TempDir()
		err = got.Validate() // fills the brand's defaults in got
		return got, err
	}
	cfg, err := load("")
	if err != nil || cfg.Brand != "sunucu" || cfg.KeyPrefix != "snc_" || cfg.Webhooks.Brand != "Sunucu" {
		t.Fatalf("default: %v brand %q prefix %q header %q", err, cfg.Brand, cfg.KeyPrefix, cfg.Webhooks.Brand)
	}
	cfg, err = load("", "--brand", "444host")
	if err != nil || cfg.Brand != "444host" || cfg.KeyPrefix != "h444_" || cfg.Webhooks.Brand != "444host" {
		t.Fatalf("--brand 444host: %v brand %q prefix %q header %q", err, cfg.Brand, cfg.KeyPrefix, cfg.Webhooks.Brand)
	}
	cfg, err = load("", "--brand", "444host", "--key-prefix", "acme_", "--webhook-signature-brand", "Acme")
	if err != nil || cfg.KeyPrefix != "acme_" || cfg.Webhooks.Brand != "Acme" {
		t.Fatalf("overrides: %v prefix %q header %q", err, cfg.KeyPrefix, cfg.Webhooks.Brand)
	}
	file := filepath.Join(t.TempDir(), "c.json")
	if err := os.WriteFile(file, []byte(`{"brand":"444host"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg, err = load(file); err != nil || cfg.Brand != "444host" || cfg.KeyPrefix != "h444_" {
		t.Fatalf("file: %v %q %q", err, cfg.Brand, cfg.KeyPrefix)
	}
	t.Setenv("HOSTPLANE_BRAND", "sunucu")
	if cfg, err = load(file); err != nil || cfg.Brand != "sunucu" || cfg.KeyPrefix != "snc_" {
		t.Fatalf("environment over file: %v %q %q", err, cfg.Brand, cfg.KeyPrefix)
	}
	if _, err = load("", "--brand", "acme"); err == nil || !strings.Contains(err.Error(), `brand "acme": one of sunucu, 444host`) {
		t.Fatalf("--brand acme: %v", err)
	}
}
