package console

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hostplane/hostplane/internal/atomicfile"
	"github.com/hostplane/hostplane/internal/consoletoken"
)

// UsedLog writes down the id of every console token the agent accepts, before
// the console opens, so that a token used once stays refused after the agent
// restarts (until it expires anyway). One line per id: "<expiry unix ms> <id>".
type UsedLog struct {
	path string
	now  func() time.Time

	mu      sync.Mutex
	f       *os.File
	ids     map[string]int64
	appends int
}

// compactAfter is how many appended lines make the log rewrite itself with
// only the ids not expired yet.
const compactAfter = 4096

// OpenUsedLog loads path (ids not expired yet are remembered by v), compacts
// it, and makes v record every id it accepts there.
func OpenUsedLog(path string, v *consoletoken.Verifier, now func() time.Time) (*UsedLog, error) {
	if now == nil {
		now = time.Now
	}
	l := &UsedLog{path: path, now: now, ids: map[string]int64{}}
	// A crash during a compaction leaves its temporary file; nothing else
	// writes the log yet.
	if err := atomicfile.RemoveStale(path); err != nil {
		return nil, fmt.Errorf("console used-token log: %w", err)
	}
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("console used-token log: %w", err)
	}
	nowMS := now().UnixMilli()
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		expS, id, ok := strings.Cut(sc.Text(), " ")
		exp, err := strconv.ParseInt(expS, 10, 64)
		if !ok || err != nil || id == "" {
			continue // a torn last line from a crash
		}
		if exp > nowMS {
			l.ids[id] = exp
			v.Remember(id, exp)
		}
	}
	l.mu.Lock()
	err = l.compact()
	l.mu.Unlock()
	if err != nil {
		return nil, err
	}
	v.SetRecorder(l.record)
	return l, nil
}

// compact rewrites the log with the ids not expired yet (l.mu held).
func (l *UsedLog) compact() error {
	nowMS := l.now().UnixMilli()
	var b strings.Builder
	for id, exp := range l.ids {
		if exp <= nowMS {
			delete(l.ids, id)
			continue
		}
		fmt.Fprintf(&b, "%d %s\n", exp, id)
	}
	if err := atomicfile.Write(l.path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("console used-token log: %w", err)
	}
	_ = atomicfile.SyncDir(filepath.Dir(l.path))
	if l.f != nil {
		l.f.Close()
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("console used-token log: %w", err)
	}
	l.f, l.appends = f, 0
	return nil
}

// record appends one id and syncs it to disk.
func (l *UsedLog) record(id string, exp int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return errors.New("console used-token log is closed")
	}
	if _, err := fmt.Fprintf(l.f, "%d %s\n", exp, id); err != nil {
		return err
	}
	if err := l.f.Sync(); err != nil {
		return err
	}
	l.ids[id] = exp
	if l.appends++; l.appends >= compactAfter {
		return l.compact()
	}
	return nil
}

// Close closes the file; tokens are refused from then on.
func (l *UsedLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
