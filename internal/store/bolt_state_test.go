package store

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// saveGoneWithAudit saves sampleState (applications a and gone) in a new store in dir,
// with one audit entry of gone, and closes it.
func saveGoneWithAudit(t *testing.T, dir string) {
	t.Helper()
	b, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Save(sampleState()); err != nil {
		t.Fatal(err)
	}
	if err := b.AppendAudit(entry("gone", "d", 1)); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestBoltDropsTheAuditOfAnApplicationDeletedAfterAReopen(t *testing.T) {
	dir := t.TempDir()
	saveGoneWithAudit(t, dir)
	b, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	st := sampleState()
	delete(st.Apps, "gone")
	if err := b.Save(st); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Audit("gone", "", 0); err != nil || len(got) != 0 {
		t.Errorf("Audit(gone) after the first save without it = %v, %v; want none", tos(got), err)
	}
}

func TestBoltSavesOverAStateItCannotRead(t *testing.T) {
	dir := t.TempDir()
	saveGoneWithAudit(t, dir)
	db, err := bolt.Open(filepath.Join(dir, dbFile), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(stateBucket).Put(stateKey, []byte(`{"apps": [`)) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	b, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var logs bytes.Buffer
	b.SetLogger(slog.New(slog.NewTextHandler(&logs, nil)))
	if _, err := b.Load(); err == nil {
		t.Fatal("Load of a damaged state succeeded; the test did not damage it")
	}
	st := sampleState()
	delete(st.Apps, "gone")
	if err := b.Save(st); err != nil {
		t.Fatalf("Save over a damaged state: %v", err)
	}
	got, err := b.Load()
	if err != nil {
		t.Fatalf("Load after the save: %v", err)
	}
	if !reflect.DeepEqual(got.Apps, st.Apps) || !reflect.DeepEqual(got.Tokens, st.Tokens) {
		t.Errorf("Load after the save = %+v, want the saved state", got)
	}
	if !strings.Contains(logs.String(), "the saved state cannot be read") {
		t.Errorf("no warning logged; logs:\n%s", logs.String())
	}
	// Which applications the damaged state had is unknown, so their audit is kept.
	if got, err := b.Audit("gone", "", 0); err != nil || len(got) != 1 {
		t.Errorf("Audit(gone) = %v, %v; want its one entry kept", tos(got), err)
	}
}

func TestMemorySavesOverAStateItCannotRead(t *testing.T) {
	m := NewMemory()
	m.state = []byte(`{"apps": [`)
	if _, err := m.Load(); err == nil {
		t.Fatal("Load of a damaged state succeeded; the test did not damage it")
	}
	if err := m.Save(sampleState()); err != nil {
		t.Fatalf("Save over a damaged state: %v", err)
	}
	if got, err := m.Load(); err != nil || got.Apps["a"] == nil {
		t.Errorf("Load after the save = %+v, %v; want the saved state", got, err)
	}
}
