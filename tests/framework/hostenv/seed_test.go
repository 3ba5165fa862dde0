package hostenv

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestSeedBootstrapsOnce: with SeedEnv set, the first bootstrap leaves the
// run's seed and the next process's reads it rather than running
// mariadb-install-db (which would make its datadir).
func TestSeedBootstrapsOnce(t *testing.T) {
	Need(t, "mariadb-install-db")
	dir := t.TempDir()
	seed := filepath.Join(dir, "seed")
	t.Setenv(SeedEnv, seed)
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	first, err := seeded(t, filepath.Join(dir, "d1"), tmp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(seed, "done")); err != nil {
		t.Fatalf("no seed after the first bootstrap: %v", err)
	}
	next, err := seeded(t, filepath.Join(dir, "d2"), tmp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "d2")); !os.IsNotExist(err) {
		t.Fatalf("the second process bootstrapped a datadir of its own (stat: %v), not the seed's copy", err)
	}
	if len(first) < 10 || !reflect.DeepEqual(first, next) {
		t.Fatalf("the seed's datadir (%d files) differs from the bootstrap's (%d files)", len(next), len(first))
	}
	// What a test starts from: the seed's files written as its datadir.
	if err := writeDatadir(filepath.Join(dir, "d3"), next); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "d3", "mysql")); err != nil {
		t.Fatalf("the written datadir has no mysql schema: %v", err)
	}
}
