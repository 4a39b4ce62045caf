package rowstore

import (
	"errors"
	"testing"
)

// TestTempDiskNames: a temporary disk's name ("restore-" and 16 hex
// digits) is given only by the build that registered it
// (NewTempDiskName): a user's disk of that name, made or renamed to, would
// be deleted as a killed build's leftover at the next daemon start
// (CleanTempDisks). A registered one is built and renamed; an unregistered
// leftover is deleted, an open or registered one kept.
func TestTempDiskNames(t *testing.T) {
	s, _ := newTestStore(t, testOptions())
	const bs = 4096
	taken := "restore-0123456789abcdef"
	if !IsTempDiskName(taken) || IsTempDiskName("restore-0123456789ABCDEF") || IsTempDiskName("restore-01") {
		t.Fatal("IsTempDiskName")
	}
	if _, err := s.CreateDisk(taken, 16*bs, bs); !errors.Is(err, ErrInvalid) {
		t.Fatalf("create disk %s: %v, want ErrInvalid", taken, err)
	}
	if _, err := s.CreateDisk("mine", 16*bs, bs); err != nil {
		t.Fatal(err)
	}
	if err := s.RenameDisk("mine", taken); !errors.Is(err, ErrInvalid) {
		t.Fatalf("rename to %s: %v, want ErrInvalid", taken, err)
	}

	// A build: made under its registered name, kept by CleanTempDisks
	// while registered, renamed when whole.
	tmp, release := NewTempDiskName()
	if !IsTempDiskName(tmp) {
		t.Fatalf("NewTempDiskName %q", tmp)
	}
	if _, err := s.CreateDisk(tmp, 16*bs, bs); err != nil {
		t.Fatal(err)
	}
	if n := s.CleanTempDisks(); n != 0 {
		t.Fatalf("CleanTempDisks deleted %d disks while the build runs", n)
	}
	if err := s.RenameDisk(tmp, "built"); err != nil {
		t.Fatal(err)
	}
	release()

	// A killed build's leftover (registered no more): deleted, unless open.
	left, release2 := NewTempDiskName()
	if _, err := s.CreateDisk(left, 16*bs, bs); err != nil {
		t.Fatal(err)
	}
	release2()
	h, err := s.OpenDisk(left)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CleanTempDisks(); n != 0 {
		t.Fatalf("CleanTempDisks deleted %d disks, one open", n)
	}
	h.Close()
	if n := s.CleanTempDisks(); n != 1 {
		t.Fatalf("CleanTempDisks deleted %d disks, want the leftover", n)
	}
	for _, name := range []string{"mine", "built"} {
		if _, err := s.GetDisk(name); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if _, err := s.GetDisk(left); !errors.Is(err, ErrNotFound) {
		t.Fatalf("leftover %s: %v", left, err)
	}
}
