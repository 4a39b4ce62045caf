package vfs

import (
	"errors"
	"io/fs"
	"os"
	"path"
)

// MkdirAllSync is MkdirAll made durable: it creates dir and its missing
// parents, then syncs the parent of every directory it created, so that after
// it returns the whole path survives a crash. If dir already existed it still
// syncs dir's parent (one fsync), so that retrying after a failed call
// finishes the job. It does not sync dir itself: files created in dir need
// SyncDir(dir) as usual.
func MkdirAllSync(fsys FS, dir string, perm os.FileMode) error {
	dir = path.Clean(dir)
	var created []string
	for d := dir; ; d = path.Dir(d) {
		_, err := fsys.Stat(d)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		created = append(created, d)
		if d == "." || d == "/" {
			break
		}
	}
	if len(created) == 0 {
		return fsys.SyncDir(path.Dir(dir))
	}
	if err := fsys.MkdirAll(dir, perm); err != nil {
		return err
	}
	for i := len(created) - 1; i >= 0; i-- {
		if err := fsys.SyncDir(path.Dir(created[i])); err != nil {
			return err
		}
	}
	return nil
}
