package hosting

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSiteUsageUnderSwaps: a customer who swaps, while the walk runs, a
// directory of the site with a FIFO or with a symbolic link out of the
// site (rename(2) RENAME_EXCHANGE, over and over) neither hangs the walk
// (opening a FIFO for reading blocks until a writer comes, and would hold
// the node's usage walk, and an action's result, for good) nor gets the
// walk to count what lies outside the site. Each walk must end within
// its time and never count the 16 MiB file outside.
func TestSiteUsageUnderSwaps(t *testing.T) {
	root := t.TempDir()
	site := filepath.Join(root, "site")
	outside := filepath.Join(root, "outside")
	for _, d := range []string{site, outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFull(t, filepath.Join(outside, "big.bin"), 16<<20)
	const pairs = 16
	var swaps [][2]string
	for i := range pairs {
		n := strconv.Itoa(i)
		for _, d := range []string{"a" + n, "b" + n} {
			if err := os.Mkdir(filepath.Join(site, d), 0o755); err != nil {
				t.Fatal(err)
			}
			writeFull(t, filepath.Join(site, d, "f"), 10)
		}
		if err := unix.Mkfifo(filepath.Join(site, "fifo"+n), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, filepath.Join(site, "link"+n)); err != nil {
			t.Fatal(err)
		}
		swaps = append(swaps, [2]string{"a" + n, "fifo" + n}, [2]string{"b" + n, "link" + n})
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			for _, s := range swaps {
				select {
				case <-stop:
					return
				default:
				}
				if err := unix.Renameat2(unix.AT_FDCWD, filepath.Join(site, s[0]), unix.AT_FDCWD, filepath.Join(site, s[1]), unix.RENAME_EXCHANGE); err != nil {
					t.Errorf("exchange %s: %v", s, err)
					return
				}
			}
		}
	}()
	defer func() {
		close(stop)
		wg.Wait()
	}()
	// A walk stuck opening a FIFO is let go (a writer opens it) when the
	// test ends, so that no goroutine stays behind.
	t.Cleanup(func() {
		for i := range pairs {
			for _, name := range []string{"a", "fifo"} {
				if f, err := os.OpenFile(filepath.Join(site, name+strconv.Itoa(i)), os.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
					f.Close()
				}
			}
		}
	})
	end := time.Now().Add(3 * time.Second)
	for walks := 0; time.Now().Before(end); walks++ {
		type result struct {
			n   uint64
			err error
		}
		done := make(chan result, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			n, err := SiteUsage(ctx, site)
			done <- result{n, err}
		}()
		select {
		case r := <-done:
			if r.err != nil {
				t.Fatalf("walk %d: %v", walks, r.err)
			}
			if r.n >= 16<<20 {
				t.Fatalf("walk %d counted %d bytes: a link out of the site was followed (the file outside is 16 MiB)", walks, r.n)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("walk %d still running after 5 s (its context ended after 2 s): stuck opening a FIFO", walks)
		}
	}
}
