package rowstore

import (
	"errors"
	"testing"
	"time"
)

// TestCloseGrace: delete, rollback and rename of a disk whose last handle
// closes a moment later (as the kernel's FUSE RELEASE arrives after a
// program's close(2) has returned) succeed; a handle that stays open is
// still refused with ErrBusy, after the grace.
func TestCloseGrace(t *testing.T) {
	const closeGrace = 500 * time.Millisecond
	opts := testOptions()
	opts.CloseGrace = closeGrace
	s, _ := newTestStore(t, opts)
	for _, n := range []string{"a", "b", "c", "kept"} {
		if _, err := s.CreateDisk(n, 32*4096, 4096); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.CreateSnapshot("s", []string{"b"}, ""); err != nil {
		t.Fatal(err)
	}
	closeSoon := func(name string) {
		h, err := s.OpenDisk(name)
		if err != nil {
			t.Fatal(err)
		}
		time.AfterFunc(50*time.Millisecond, func() { h.Close() })
	}
	ops := []struct {
		name string
		do   func() error
	}{
		{"a", func() error { return s.DeleteDisk("a", false) }},
		{"b", func() error { return s.RollbackDisk("b", "s", false) }},
		{"c", func() error { return s.RenameDisk("c", "c2") }},
	}
	for _, op := range ops {
		closeSoon(op.name)
		if err := op.do(); err != nil {
			t.Errorf("disk %s, its handle closed 50 ms later: %v", op.name, err)
		}
	}

	h, err := s.OpenDisk("kept")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	start := time.Now()
	err = s.DeleteDisk("kept", false)
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("delete of a disk kept open: %v, want ErrBusy", err)
	}
	if waited := time.Since(start); waited < closeGrace {
		t.Errorf("refused after %v, before the grace (%v)", waited, closeGrace)
	}
	if err := s.DeleteDisk("kept", true); err != nil {
		t.Fatalf("delete --force of an open disk: %v", err)
	}
}
