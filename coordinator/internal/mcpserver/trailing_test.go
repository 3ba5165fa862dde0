package mcpserver

import "testing"

// TestDataAfterValue: a POST body that is one JSON-RPC message (white space
// around it, or a batch) passes; one followed by a second message or
// garbage is refused; a body that is not JSON at all is left to the SDK.
func TestDataAfterValue(t *testing.T) {
	msg := `{"jsonrpc":"2.0","id":1,"method":"ping"}`
	for body, want := range map[string]bool{
		msg: false, " " + msg + "\n\t ": false, "[" + msg + "," + msg + "]": false,
		msg + msg: true, msg + "\n" + msg: true, msg + " x": true, msg + "]": true, msg + "null": true,
		"": false, "hello": false, `{"jsonrpc":`: false,
	} {
		if got := dataAfterValue([]byte(body)); got != want {
			t.Errorf("dataAfterValue(%q) = %v, want %v", body, got, want)
		}
	}
}
