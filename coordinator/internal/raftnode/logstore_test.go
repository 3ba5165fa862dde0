package raftnode

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// boltDir makes a directory whose raft.db is as a version before the WAL
// wrote it: a term, a vote and the log [first, last] (a compacted log does
// not start at 1).
func boltDir(t *testing.T, first, last uint64) (dir string) {
	t.Helper()
	dir = t.TempDir()
	s, err := raftboltdb.NewBoltStore(filepath.Join(dir, boltLogName))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("LastVoteTerm"), 7); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("LastVoteCand"), []byte("127.0.0.1:7002")); err != nil {
		t.Fatal(err)
	}
	var logs []*raft.Log
	for i := first; i <= last; i++ {
		logs = append(logs, testEntry(i))
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	return dir
}

func testEntry(i uint64) *raft.Log {
	typ := raft.LogCommand
	if i%100 == 0 {
		typ = raft.LogConfiguration
	}
	return &raft.Log{Index: i, Term: 1 + i/300, Type: typ,
		Data: []byte(fmt.Sprintf(`{"entry":%d}`, i)), Extensions: []byte{byte(i)}}
}

// mustOpenLogStore opens the log store under dir as the node does.
func mustOpenLogStore(t *testing.T, dir string) logStore {
	t.Helper()
	s, err := openLogStore(dir, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkMigrated asserts that the store under dir holds what boltDir wrote.
func checkMigrated(t *testing.T, dir string, first, last uint64) {
	t.Helper()
	s := mustOpenLogStore(t, dir)
	defer s.Close()
	if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 7 {
		t.Fatalf("CurrentTerm = %d, %v; want 7", v, err)
	}
	if v, err := s.GetUint64([]byte("LastVoteTerm")); err != nil || v != 7 {
		t.Fatalf("LastVoteTerm = %d, %v; want 7", v, err)
	}
	if v, err := s.Get([]byte("LastVoteCand")); err != nil || string(v) != "127.0.0.1:7002" {
		t.Fatalf("LastVoteCand = %q, %v", v, err)
	}
	if f, err := s.FirstIndex(); err != nil || f != first {
		t.Fatalf("FirstIndex = %d, %v; want %d", f, err, first)
	}
	if l, err := s.LastIndex(); err != nil || l != last {
		t.Fatalf("LastIndex = %d, %v; want %d", l, err, last)
	}
	for i := first; i <= last; i++ {
		var got raft.Log
		if err := s.GetLog(i, &got); err != nil {
			t.Fatalf("GetLog(%d): %v", i, err)
		}
		want := testEntry(i)
		if got.Index != want.Index || got.Term != want.Term || got.Type != want.Type ||
			!bytes.Equal(got.Data, want.Data) || !bytes.Equal(got.Extensions, want.Extensions) {
			t.Fatalf("entry %d = %+v; want %+v", i, got, *want)
		}
	}
	var l raft.Log
	if err := s.GetLog(last+1, &l); err != raft.ErrLogNotFound {
		t.Fatalf("GetLog(last+1) = %v; want ErrLogNotFound", err)
	}
	if _, err := os.Stat(filepath.Join(dir, boltLogName)); !os.IsNotExist(err) {
		t.Fatalf("raft.db still in place after the migration: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, boltLogName+preWALSuffix)); err != nil {
		t.Fatalf("raft.db.pre-wal not kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, walDirName+".tmp")); !os.IsNotExist(err) {
		t.Fatalf("temporary WAL directory left: %v", err)
	}
}

func TestLogStoreMigratesBoltDir(t *testing.T) {
	dir := boltDir(t, 1001, 1800)
	checkMigrated(t, dir, 1001, 1800)
	// Opened again: the WAL as it is, the kept raft.db untouched.
	checkMigrated(t, dir, 1001, 1800)

	// The migrated store takes new entries after the old ones.
	s := mustOpenLogStore(t, dir)
	if err := s.StoreLogs([]*raft.Log{testEntry(1801)}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	checkMigrated(t, dir, 1001, 1801)
}

func TestLogStoreRemigratesAfterCrash(t *testing.T) {
	dir := boltDir(t, 1, 700)
	// A migration that stopped half way: a partial WAL in the temporary
	// directory, raft.db still in place.
	w, err := openWAL(filepath.Join(dir, walDirName+".tmp"), hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.StoreLogs([]*raft.Log{testEntry(1), testEntry(2)}); err != nil {
		t.Fatal(err)
	}
	if err := w.SetUint64([]byte("CurrentTerm"), 3); err != nil {
		t.Fatal(err)
	}
	w.Close()
	checkMigrated(t, dir, 1, 700)
}

func TestLogStoreFinishesRetiringBoltLog(t *testing.T) {
	dir := boltDir(t, 1, 300)
	// Migrated, then stopped after the WAL was renamed into place and before
	// raft.db was renamed: the next open keeps the WAL and retires raft.db.
	s := mustOpenLogStore(t, dir)
	s.Close()
	if err := os.Rename(filepath.Join(dir, boltLogName+preWALSuffix), filepath.Join(dir, boltLogName)); err != nil {
		t.Fatal(err)
	}
	checkMigrated(t, dir, 1, 300)
}

func TestLogStoreNewDir(t *testing.T) {
	dir := t.TempDir()
	s := mustOpenLogStore(t, dir)
	defer s.Close()
	if l, err := s.LastIndex(); err != nil || l != 0 {
		t.Fatalf("LastIndex of a new store = %d, %v", l, err)
	}
	if _, err := os.Stat(filepath.Join(dir, boltLogName)); !os.IsNotExist(err) {
		t.Fatalf("a new directory got a raft.db: %v", err)
	}
}
