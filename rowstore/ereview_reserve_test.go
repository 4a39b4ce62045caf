package rowstore

import (
	"errors"
	"testing"
)

// TestFullDiskReserveRearmedBeforeWrites: once the reserve was given back,
// new writes must never be admitted while it is not armed again: a store
// whose free space settled between floor+reserve and the re-arm threshold
// used to take writes until it refused them, with no reserve left for the
// deletes and gc that must then work.
func TestFullDiskReserveRearmedBeforeWrites(t *testing.T) {
	const MiB = 1 << 20
	s, cfs, dir, opts := smallFullStore(t)
	var err error
	defer s.Close()
	if _, err := s.CreateDisk("a", 8*MiB, 4096); err != nil {
		t.Fatal(err)
	}
	h, err := s.OpenDisk("a")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if !s.releaseReserve("test: the filesystem was full") {
		t.Fatal("no reserve to release")
	}
	// Another program leaves reserve + floor + floor/2 free.
	sp, _ := cfs.Statfs(dir)
	other, err := cfs.Create("/other")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.WriteAt(make([]byte, sp.Free-(opts.ReserveBytes+opts.MinFreeBytes+opts.MinFreeBytes/2)), 0); err != nil {
		t.Fatal(err)
	}
	other.Close()
	chunk := make([]byte, 64<<10)
	var werr error
	for i := 0; i < 1000 && werr == nil; i++ {
		for j := range chunk {
			chunk[j] = byte(i + j + 1)
		}
		if _, werr = h.WriteAt(chunk, int64(i%128)*int64(len(chunk))); werr == nil {
			if !s.ReserveArmed() {
				t.Fatalf("write %d admitted while the reserve is not armed", i)
			}
			if i%8 == 7 {
				werr = h.Sync()
			}
		}
	}
	if !errors.Is(werr, ErrNoSpace) {
		t.Fatalf("writes on a nearly full filesystem: %v", werr)
	}
	if !s.ReserveArmed() {
		t.Fatal("writes were refused with the reserve still released")
	}
}
