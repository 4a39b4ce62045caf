package vfs

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

// roundTrip exercises the FS contract that every implementation shares.
func roundTrip(t *testing.T, fs FS, dir string) {
	t.Helper()
	sub := filepath.Join(dir, "a", "b")
	if err := fs.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(sub, "f")
	f, err := fs.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("hello ")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("world")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("W"), 6); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := fs.SyncDir(sub); err != nil {
		t.Fatal(err)
	}
	if st, err := f.Stat(); err != nil || st.Size() != 11 {
		t.Fatalf("stat: %v %v", st, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	r, err := fs.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 20)
	n, err := r.ReadAt(buf, 0)
	if err != io.EOF || string(buf[:n]) != "hello World" {
		t.Fatalf("ReadAt = %q, %v", buf[:n], err)
	}
	if _, err := r.WriteAt([]byte("x"), 0); err == nil {
		t.Fatal("write to a read-only file succeeded")
	}
	r.Close()

	rw, err := fs.OpenReadWrite(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := rw.Truncate(5); err != nil {
		t.Fatal(err)
	}
	rw.Close()
	if st, err := fs.Stat(name); err != nil || st.Size() != 5 || st.IsDir() {
		t.Fatalf("stat after truncate: %v %v", st, err)
	}

	if err := fs.Rename(name, filepath.Join(sub, "g")); err != nil {
		t.Fatal(err)
	}
	if g, err := fs.Create(filepath.Join(sub, "e")); err != nil {
		t.Fatal(err)
	} else {
		g.Close()
	}
	names, err := fs.List(sub)
	if err != nil || !slices.Equal(names, []string{"e", "g"}) {
		t.Fatalf("List = %v, %v", names, err)
	}
	if _, err := fs.Open(name); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("open of renamed file: %v", err)
	}
	if err := fs.Remove(filepath.Join(sub, "g")); err != nil {
		t.Fatal(err)
	}
	if err := fs.Remove(sub); err == nil {
		t.Fatal("removed a non-empty directory")
	}
	sp, err := fs.Statfs(dir)
	if err != nil || sp.Total <= 0 || sp.Free < 0 || sp.Free > sp.Total {
		t.Fatalf("Statfs = %+v, %v", sp, err)
	}
}

func TestDefaultRoundTrip(t *testing.T) { roundTrip(t, Default, t.TempDir()) }
func TestCrashFSRoundTrip(t *testing.T) { roundTrip(t, NewCrashFS(), "/data") }
func TestErrorFSRoundTrip(t *testing.T) {
	roundTrip(t, NewErrorFS(NewCrashFS(), nil), "data")
}

// workload is a fixed sequence of operations used to test ErrorFS counting.
func workload(fs FS) error {
	if err := fs.MkdirAll("d", 0o755); err != nil {
		return err
	}
	f, err := fs.Create("d/f")
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write([]byte("abc")); err != nil {
		return err
	}
	if _, err := f.ReadAt(make([]byte, 3), 0); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return fs.SyncDir("d")
}

func TestErrorFSFailAt(t *testing.T) {
	count := NewErrorFS(NewCrashFS(), nil)
	if err := workload(count); err != nil {
		t.Fatal(err)
	}
	const want = 6 // mkdir, create, write, readat, sync, syncdir
	if count.Ops() != want || count.Writes() != 5 {
		t.Fatalf("Ops = %d, Writes = %d", count.Ops(), count.Writes())
	}
	wantOps := []string{"mkdirall", "create", "write", "readat", "sync", "syncdir"}
	for i := int64(0); ; i++ {
		e := NewErrorFS(NewCrashFS(), FailAt(i))
		err := workload(e)
		if err == nil {
			if i != want {
				t.Fatalf("run succeeded at i=%d, want %d", i, want)
			}
			break
		}
		if !errors.Is(err, ErrInjected) {
			t.Fatalf("i=%d: %v", i, err)
		}
		var pe *os.PathError
		if !errors.As(err, &pe) || pe.Op != wantOps[i] {
			t.Fatalf("i=%d: error %v does not name op %s", i, err, wantOps[i])
		}
		if e.Ops() != i+1 {
			t.Fatalf("i=%d: Ops = %d after failing", i, e.Ops())
		}
	}
	// FailWrites skips the read.
	e := NewErrorFS(NewCrashFS(), FailWrites(3))
	var pe *os.PathError
	if err := workload(e); !errors.As(err, &pe) || pe.Op != "sync" {
		t.Fatalf("FailWrites(3): %v", err)
	}
}

func writeFile(t *testing.T, fs FS, name string, data []byte, sync bool) File {
	t.Helper()
	f, err := fs.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func readAll(t *testing.T, fs FS, name string) ([]byte, bool) {
	t.Helper()
	f, err := fs.Open(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return b, true
}

func TestCrashFS(t *testing.T) {
	synced := bytes.Repeat([]byte("S"), 100)
	unsynced := bytes.Repeat([]byte("U"), 50)
	var kept, lost, torn, vanished, stayed int
	for seed := int64(0); seed < 100; seed++ {
		fs := NewCrashFS()
		if err := fs.MkdirAll("d", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := fs.SyncDir("/"); err != nil {
			t.Fatal(err)
		}
		f := writeFile(t, fs, "d/durable", synced, true)
		if err := fs.SyncDir("d"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(unsynced); err != nil {
			t.Fatal(err)
		}
		writeFile(t, fs, "d/new", synced, true) // data synced, entry not

		c := fs.Crash(seed)
		if _, err := f.Write([]byte("x")); !errors.Is(err, ErrCrashed) {
			t.Fatalf("write after crash: %v", err)
		}
		if _, err := fs.Open("d/durable"); !errors.Is(err, ErrCrashed) {
			t.Fatalf("open after crash: %v", err)
		}
		got, ok := readAll(t, c, "d/durable")
		if !ok {
			t.Fatalf("seed %d: synced entry vanished", seed)
		}
		if !bytes.HasPrefix(got, synced) {
			t.Fatalf("seed %d: synced data lost: %q", seed, got)
		}
		rest := got[len(synced):]
		if !bytes.HasPrefix(unsynced, rest) {
			t.Fatalf("seed %d: tail %q is not a prefix of the write", seed, rest)
		}
		switch len(rest) {
		case 0:
			lost++
		case len(unsynced):
			kept++
		default:
			torn++
		}
		if b, ok := readAll(t, c, "d/new"); ok {
			stayed++
			if !bytes.Equal(b, synced) {
				t.Fatalf("seed %d: synced file content %q", seed, b)
			}
		} else {
			vanished++
		}
		// Replayable: the same seed gives the same state.
		if again, _ := readAll(t, fs.Crash(seed), "d/durable"); !bytes.Equal(again, got) {
			t.Fatalf("seed %d not replayable", seed)
		}
	}
	t.Logf("unsynced write: kept %d, lost %d, torn %d; unsynced entry: stayed %d, vanished %d", kept, lost, torn, stayed, vanished)
	if kept == 0 || lost == 0 || torn == 0 || vanished == 0 || stayed == 0 {
		t.Fatal("some outcome never happened in 100 seeds")
	}
}

func TestCrashFSRename(t *testing.T) {
	var renamed, notRenamed int
	for seed := int64(0); seed < 100; seed++ {
		fs := NewCrashFS()
		writeFile(t, fs, "cur", []byte("old"), true)
		if err := fs.SyncDir("/"); err != nil {
			t.Fatal(err)
		}
		writeFile(t, fs, "tmp", []byte("new"), true)
		if err := fs.Rename("tmp", "cur"); err != nil {
			t.Fatal(err)
		}
		c := fs.Crash(seed)
		got, ok := readAll(t, c, "cur")
		switch {
		case !ok:
			t.Fatalf("seed %d: rename target vanished", seed)
		case string(got) == "new":
			renamed++
		case string(got) == "old":
			notRenamed++
		default:
			t.Fatalf("seed %d: cur = %q", seed, got)
		}
		// After a synced rename, the new content is always there.
		fs = NewCrashFS()
		writeFile(t, fs, "cur", []byte("old"), true)
		writeFile(t, fs, "tmp", []byte("new"), true)
		if err := fs.Rename("tmp", "cur"); err != nil {
			t.Fatal(err)
		}
		if err := fs.SyncDir("/"); err != nil {
			t.Fatal(err)
		}
		c = fs.Crash(seed)
		if got, ok := readAll(t, c, "cur"); !ok || string(got) != "new" {
			t.Fatalf("seed %d: synced rename lost: %q %v", seed, got, ok)
		}
		if _, ok := readAll(t, c, "tmp"); ok {
			t.Fatalf("seed %d: synced rename left its source", seed)
		}
	}
	if renamed == 0 || notRenamed == 0 {
		t.Fatalf("renamed %d, not renamed %d", renamed, notRenamed)
	}
}

func TestCrashFSNoSpace(t *testing.T) {
	fs := NewCrashFS()
	fs.SetCapacity(1000)
	f := writeFile(t, fs, "a", make([]byte, 600), false)
	sp, err := fs.Statfs("/")
	if err != nil || sp.Total != 1000 || sp.Free != 400 {
		t.Fatalf("Statfs = %+v, %v", sp, err)
	}
	if _, err := f.Write(make([]byte, 500)); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write beyond capacity: %v", err)
	}
	if st, _ := f.Stat(); st.Size() != 600 {
		t.Fatalf("failed write changed the size to %d", st.Size())
	}
	// Overwriting in place needs no space.
	if _, err := f.WriteAt(make([]byte, 600), 0); err != nil {
		t.Fatal(err)
	}
	if err := fs.Remove("a"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, fs, "b", make([]byte, 1000), false)
}

func TestMkdirAllSync(t *testing.T) {
	for seed := int64(0); seed < 50; seed++ {
		fs := NewCrashFS()
		if err := MkdirAllSync(fs, "/a/b/c", 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, fs, "/a/b/c/f", []byte("x"), true)
		if err := fs.SyncDir("/a/b/c"); err != nil {
			t.Fatal(err)
		}
		// Without MkdirAllSync the path may vanish.
		if err := fs.MkdirAll("/p/q", 0o755); err != nil {
			t.Fatal(err)
		}
		c := fs.Crash(seed)
		if b, ok := readAll(t, c, "/a/b/c/f"); !ok || string(b) != "x" {
			t.Fatalf("seed %d: file under a synced path lost", seed)
		}
	}
	if err := MkdirAllSync(Default, filepath.Join(t.TempDir(), "x", "y"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A failing Stat is an error, not "missing".
	e := NewErrorFS(NewCrashFS(), FailAt(0))
	if err := MkdirAllSync(e, "/a", 0o755); !errors.Is(err, ErrInjected) {
		t.Fatalf("injected stat failure: %v", err)
	}
}
