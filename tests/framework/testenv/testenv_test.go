package testenv

import (
	"reflect"
	"testing"
)

// TestBoots: every complete GUEST-READY line of a console is a boot, oldest
// first; a line still being written (no uptime= yet) is not one.
func TestBoots(t *testing.T) {
	log := "[    0.1] kernel\nGUEST-READY bootcount=1 install-id=ab12 uptime=3.01\nclean-shutdown 1\n" +
		"GUEST-READY bootcount=2 install-id=ab12 uptime=2.87\nGUEST-READY bootcount=3 install-id=ab"
	want := []Boot{{"1", "ab12"}, {"2", "ab12"}}
	if got := Boots(log); !reflect.DeepEqual(got, want) {
		t.Fatalf("Boots = %+v, want %+v", got, want)
	}
	if c, id := LastReady(log); c != "2" || id != "ab12" {
		t.Fatalf("LastReady = %q %q, want 2 ab12", c, id)
	}
	if bs := Boots("no marker\n"); len(bs) != 0 {
		t.Fatalf("Boots of a console without a marker: %+v", bs)
	}
}
