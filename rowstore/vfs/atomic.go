package vfs

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"strings"
)

// TempPrefix starts the name of every temporary file WriteFile creates
// (".snapfs-tmp-<base>-<16 hex digits>", in the target's directory). A
// listing that must not see half-written files skips names with this
// prefix; a cleanup may remove them.
const TempPrefix = ".snapfs-tmp-"

// IsTemp reports whether name (a base name) is a temporary file of WriteFile.
func IsTemp(name string) bool { return strings.HasPrefix(name, TempPrefix) }

// permCreator is implemented by file systems that can create a file with
// given permissions, failing if it exists (the OS FS). Others use Create.
type permCreator interface {
	CreateExcl(name string, perm os.FileMode) (File, error)
}

// WriteFile replaces name with data atomically and durably: it writes a
// temporary file with a unique name in the same directory, syncs it, renames
// it over name and syncs the directory. After a crash, name holds either
// its old content or data, never a mix; after WriteFile returns nil, data
// survives a crash. On error the temporary file is removed and name is
// unchanged. perm applies where fsys can set it (the OS FS); a file that
// holds secrets or configuration should use 0o600.
//
// It (with WriteFileDirect, through writeAtomic) is the only
// write-temp-then-rename of snapfs: the superblock, region
// configurations, local store objects and service state all go through it.
func WriteFile(fsys FS, name string, data []byte, perm os.FileMode) error {
	create := fsys.Create
	if pc, ok := fsys.(permCreator); ok {
		create = func(tmp string) (File, error) { return pc.CreateExcl(tmp, perm) }
	}
	return writeAtomic(fsys, name, create, func(f File) error {
		_, err := f.WriteAt(data, 0)
		return err
	})
}

// writeAtomic is the write-temp-then-rename of WriteFile and
// WriteFileDirect: create makes the temporary file (a unique name in
// name's directory), write fills it; then it is synced, closed, renamed
// over name and the directory synced. On error the temporary file is
// removed and name is unchanged.
func writeAtomic(fsys FS, name string, create func(tmp string) (File, error), write func(File) error) error {
	dir, base := path.Split(name)
	if dir == "" {
		dir = "."
	}
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	tmp := path.Join(dir, TempPrefix+base+"-"+hex.EncodeToString(rnd[:]))
	f, err := create(tmp)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	fail := func(step string, err error) error {
		_ = f.Close()
		_ = fsys.Remove(tmp)
		return fmt.Errorf("write %s: %s: %w", name, step, err)
	}
	if err := write(f); err != nil {
		return fail("write", err)
	}
	if err := f.Sync(); err != nil {
		return fail("sync", err)
	}
	if err := f.Close(); err != nil {
		_ = fsys.Remove(tmp)
		return fmt.Errorf("write %s: close: %w", name, err)
	}
	if err := fsys.Rename(tmp, name); err != nil {
		_ = fsys.Remove(tmp)
		return fmt.Errorf("write %s: rename: %w", name, err)
	}
	if err := fsys.SyncDir(dir); err != nil {
		return fmt.Errorf("write %s: sync directory: %w", name, err)
	}
	return nil
}
