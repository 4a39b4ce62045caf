package rowstore

import (
	"errors"
	"path/filepath"
	"testing"
)

// Policies are catalog records: stored durably, listed, updated, deleted,
// and recovered by index rebuild from the log alone; a snapshot's policy
// and consistency survive it too.
func TestPoliciesSurviveRebuild(t *testing.T) {
	dir := filepath.Join(fastTempDir(t), "s")
	opts := Options{SyncInterval: -1, GCInterval: -1}
	if err := Create(dir, opts); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutPolicy("daily", []byte("v1"), true); err != nil {
		t.Fatal(err)
	}
	if err := s.PutPolicy("daily", []byte("v1"), true); !errors.Is(err, ErrExists) {
		t.Fatalf("create twice: %v", err)
	}
	if err := s.PutPolicy("nope", []byte("x"), false); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update a missing policy: %v", err)
	}
	if err := s.PutPolicy("daily", []byte("v2"), false); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"hourly", "gone"} {
		if err := s.PutPolicy(n, []byte(n), true); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeletePolicy("gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateDisk("v", 1<<20, 4096); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateSnapshotWith("daily-v-1", []string{"v"}, SnapshotOptions{Kind: "automatic", Policy: "daily", Consistency: "filesystem"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Rebuild(dir, opts); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ps, err := s.ListPolicies()
	if err != nil || len(ps) != 2 || ps[0].Name != "daily" || string(ps[0].Spec) != "v2" || ps[1].Name != "hourly" {
		t.Fatalf("policies after rebuild: %+v %v", ps, err)
	}
	if _, err := s.GetPolicy("gone"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted policy after rebuild: %v", err)
	}
	sn, err := s.GetSnapshot("daily-v-1")
	if err != nil || sn.Kind != "automatic" || sn.Policy != "daily" || sn.Consistency != "filesystem" {
		t.Fatalf("snapshot after rebuild: %+v %v", sn, err)
	}
}
