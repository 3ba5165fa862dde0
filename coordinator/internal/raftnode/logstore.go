package raftnode

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hostplane/hostplane/internal/atomicfile"
	bolt "go.etcd.io/bbolt"
)

// logStore is the Raft log and stable store of a node.
type logStore interface {
	raft.LogStore
	raft.StableStore
	Close() error
}

const (
	// walDirName is the directory under the data dir holding the Raft log
	// (segment files) and the stable store (wal-meta.db).
	walDirName = "raft-wal"
	// boltLogName is the Raft log + stable store of versions before the WAL
	// (raft-boltdb); a migrated directory keeps it as boltLogName + preWALSuffix.
	boltLogName  = "raft.db"
	preWALSuffix = ".pre-wal"
)

// openLogStore opens the Raft log and stable store under dir: the WAL in
// dir/raft-wal. A directory written by an older version (raft.db, no WAL)
// is migrated first: its stable keys and every log entry are copied into a new
// WAL built in a temporary directory, fsynced and renamed into place, then
// raft.db is renamed raft.db.pre-wal (kept for a rollback).
func openLogStore(dir string, logger hclog.Logger) (logStore, error) {
	walDir := filepath.Join(dir, walDirName)
	boltPath := filepath.Join(dir, boltLogName)
	_, werr := os.Stat(walDir)
	_, berr := os.Stat(boltPath)
	switch {
	case errors.Is(werr, fs.ErrNotExist) && berr == nil:
		if err := migrateBoltToWAL(dir, logger); err != nil {
			return nil, fmt.Errorf("raft log store: migrate %s to %s: %w", boltLogName, walDirName, err)
		}
	case werr == nil && berr == nil:
		// A migration stopped after the WAL was renamed into place: finish it.
		if err := retireBoltLog(dir); err != nil {
			return nil, fmt.Errorf("raft log store: %w", err)
		}
	}
	return openWAL(walDir, logger)
}

// walStore is the WAL with a Close that also closes its metadata database:
// raft-wal v0.4.0's WAL.Close leaves wal-meta.db open (and locked), so the
// same process could not open the directory again.
type walStore struct {
	*wal.WAL
	meta *metadb.BoltMetaDB
}

func (s *walStore) Close() error {
	err := s.WAL.Close()
	if merr := s.meta.Close(); err == nil {
		err = merr
	}
	return err
}

// openWAL opens (or creates) the write-ahead log in p. Each append is one
// write and one fsync of the segment file.
func openWAL(p string, logger hclog.Logger) (*walStore, error) {
	if err := os.MkdirAll(p, 0o700); err != nil {
		return nil, fmt.Errorf("raft log store: %w", err)
	}
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(p, wal.WithLogger(logger.Named("wal")), wal.WithMetaStore(meta))
	if err != nil {
		meta.Close()
		return nil, fmt.Errorf("raft log store %s: %w", p, err)
	}
	return &walStore{WAL: w, meta: meta}, nil
}

// migrateBatch is how many log entries one WAL append of the migration carries.
const migrateBatch = 256

// migrateBoltToWAL copies dir/raft.db (stable keys and the log) into a new
// WAL at dir/raft-wal. A temporary directory left by an interrupted migration
// is discarded and the copy starts over; raft.db is only renamed once the WAL
// is complete and in place.
func migrateBoltToWAL(dir string, logger hclog.Logger) error {
	boltPath := filepath.Join(dir, boltLogName)
	tmp := filepath.Join(dir, walDirName+".tmp")
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	start := time.Now()
	stable, err := readBoltStable(boltPath)
	if err != nil {
		return err
	}
	old, err := raftboltdb.New(raftboltdb.Options{Path: boltPath,
		BoltOptions: &bolt.Options{Timeout: 5 * time.Second, ReadOnly: true}})
	if err != nil {
		return err
	}
	defer old.Close()
	w, err := openWAL(tmp, logger)
	if err != nil {
		return err
	}
	n, err := copyBoltToWAL(old, w, stable)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := atomicfile.SyncDir(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, walDirName)); err != nil {
		return err
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return err
	}
	if err := retireBoltLog(dir); err != nil {
		return err
	}
	// The last index is logged for a rollback (README): a snapshot past it was
	// taken since the migration.
	last, _ := old.LastIndex()
	logger.Info("migrated the raft log from raft.db to the WAL", "entries", n, "last_index", last,
		"stable_keys", len(stable), "kept", boltLogName+preWALSuffix, "took", time.Since(start))
	return nil
}

// readBoltStable returns every key of raft-boltdb's stable-store bucket.
func readBoltStable(path string) (map[string][]byte, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second, ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	out := map[string][]byte{}
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("conf"))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			out[string(k)] = append([]byte(nil), v...)
			return nil
		})
	})
	return out, err
}

// uint64Keys are the stable keys hashicorp/raft writes with SetUint64 (the
// others, LastVoteCand, with Set).
var uint64Keys = map[string]bool{"CurrentTerm": true, "LastVoteTerm": true}

// copyBoltToWAL writes the stable keys and the log [FirstIndex, LastIndex]
// of old into w and returns how many entries it copied.
func copyBoltToWAL(old *raftboltdb.BoltStore, w logStore, stable map[string][]byte) (int, error) {
	for k, v := range stable {
		var err error
		if uint64Keys[k] {
			// raft-boltdb stores these big-endian, the WAL little-endian: copy
			// the number, not the bytes.
			var u uint64
			if u, err = old.GetUint64([]byte(k)); err == nil {
				err = w.SetUint64([]byte(k), u)
			}
		} else {
			err = w.Set([]byte(k), v)
		}
		if err != nil {
			return 0, fmt.Errorf("stable key %s: %w", k, err)
		}
	}
	first, err := old.FirstIndex()
	if err != nil {
		return 0, err
	}
	last, err := old.LastIndex()
	if err != nil {
		return 0, err
	}
	if last == 0 {
		return 0, nil
	}
	n := 0
	batch := make([]*raft.Log, 0, migrateBatch)
	for i := first; i <= last; i++ {
		l := new(raft.Log)
		if err := old.GetLog(i, l); err != nil {
			return n, fmt.Errorf("log entry %d: %w", i, err)
		}
		batch = append(batch, l)
		if len(batch) == migrateBatch || i == last {
			if err := w.StoreLogs(batch); err != nil {
				return n, err
			}
			n += len(batch)
			batch = batch[:0]
		}
	}
	return n, nil
}

// retireBoltLog renames raft.db to raft.db.pre-wal (an older one already
// there is kept and raft.db is left as it is).
func retireBoltLog(dir string) error {
	kept := filepath.Join(dir, boltLogName+preWALSuffix)
	if _, err := os.Stat(kept); err == nil {
		return nil
	}
	if err := os.Rename(filepath.Join(dir, boltLogName), kept); err != nil {
		return err
	}
	return atomicfile.SyncDir(dir)
}
