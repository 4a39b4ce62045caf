package rowstore

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"vol1", "a", "db-2026.11.29_x", strings.Repeat("x", MaxNameLen), "files", "x.file", "snapshot.jsonx"} {
		if err := ValidateName("disk", ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, tc := range []struct{ name, want string }{
		{"", "empty"},
		{strings.Repeat("x", MaxNameLen+1), "longer than"},
		{".hidden", "starts with '.'"},
		{"snapshot.json", "reserved"},
		{"vol1.files", `ends with ".files"`},
		{"dïsk", `character 'ï'`},
		{"a b", `character ' '`},
		{"a/b", `character '/'`},
		{"\xff", "not valid UTF-8"},
	} {
		err := ValidateName("disk", tc.name)
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want ErrInvalid saying %q", tc.name, err, tc.want)
		}
	}
	// A store refuses reserved names for every kind of object.
	s, _ := newTestStore(t, testOptions())
	if _, err := s.CreateDisk("snapshot.json", 1<<20, 0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("disk snapshot.json: %v", err)
	}
	if _, err := s.CreateDisk("d", 1<<20, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateSnapshot("s.files", []string{"d"}, ""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("snapshot s.files: %v", err)
	}
	if _, err := s.CreateSnapshot("s", []string{"d"}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateImage("snapshot.json", "s", "d"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("image snapshot.json: %v", err)
	}
	if err := s.RenameDisk("d", "d.files"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("rename to d.files: %v", err)
	}
	if disks, _ := s.ListDisks(); len(disks) != 1 || disks[0].Name != "d" {
		t.Fatalf("disks after refused changes: %+v", disks)
	}
}
