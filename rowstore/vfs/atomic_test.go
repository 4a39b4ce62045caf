package vfs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileOS(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "cfg")
	for _, data := range [][]byte{[]byte("one"), []byte("two, longer")} {
		if err := WriteFile(Default, name, data, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(name)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read back %q, %v; want %q", got, err, data)
		}
	}
	st, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", st.Mode().Perm())
	}
	names, _ := Default.List(dir)
	if len(names) != 1 {
		t.Fatalf("directory holds %v, want only cfg", names)
	}
	// A missing directory fails and leaves nothing.
	if err := WriteFile(Default, filepath.Join(dir, "no", "x"), []byte("x"), 0o600); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
}

// Every failure leaves the old content and no temporary file behind; after
// success a crash keeps the new content.
func TestWriteFileFaults(t *testing.T) {
	for i := 0; ; i++ {
		mem := NewCrashFS()
		if err := MkdirAllSync(mem, "/d", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := WriteFile(mem, "/d/f", []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
		efs := NewErrorFS(mem, FailAt(int64(i)))
		err := WriteFile(efs, "/d/f", []byte("new"), 0o600)
		names, _ := mem.List("/d")
		for _, n := range names {
			if IsTemp(n) && err != nil {
				t.Fatalf("op %d failed but left %s", i, n)
			}
		}
		if err != nil {
			if !errors.Is(err, ErrInjected) {
				t.Fatalf("op %d: %v does not wrap the injected fault", i, err)
			}
			continue
		}
		after := mem.Crash(int64(i))
		f, err := after.Open("/d/f")
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 8)
		n, _ := f.ReadAt(buf, 0)
		f.Close()
		if string(buf[:n]) != "new" {
			t.Fatalf("after a crash: %q, want new", buf[:n])
		}
		if i < 3 {
			t.Fatalf("succeeded with only %d ops failing-free", i)
		}
		return
	}
}
