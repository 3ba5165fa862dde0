package hostplanepb

import (
	"encoding/hex"
	"os"
	"testing"
)

// TestWriteFixture rewrites testdata/hello_v1.0.hex when HOSTPLANE_WRITE_FIXTURES=1.
func TestWriteFixture(t *testing.T) {
	if os.Getenv("HOSTPLANE_WRITE_FIXTURES") != "1" {
		t.Skip("set HOSTPLANE_WRITE_FIXTURES=1 to rewrite the fixtures")
	}
	if err := os.WriteFile("testdata/hello_v1.0.hex", []byte(hex.EncodeToString(helloV10())+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}
