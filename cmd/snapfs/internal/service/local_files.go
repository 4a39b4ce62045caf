package service

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/browse"
	"github.com/snapfs/snapfs/rowstore"
)

// FilesDir is the directory, relative to the store, under which the
// filesystems inside snapshot disks and images are mounted (.files,
// snapshot diff --files): private (0700), outside the daemon's mount.
const FilesDir = "files"

// EnableFiles starts the manager of the .files directories for the daemon
// mounted at mountpoint (scratch clones are reached as
// <mountpoint>/disks/<clone>). Call it once, before the mount serves.
func (l *Local) EnableFiles(mountpoint string, opts browse.Options) *browse.Manager {
	opts.Dir = filepath.Join(l.dir, FilesDir)
	if opts.Logger == nil {
		opts.Logger = l.log
	}
	l.files = browse.NewManager(filesHost{l: l, mountpoint: mountpoint}, opts)
	return l.files
}

// Files is the .files manager, nil when no daemon enabled it.
func (l *Local) Files() *browse.Manager { return l.files }

// ReleaseFiles unmounts every open .files filesystem (the daemon calls it
// before it unmounts its own mount, which their loop devices keep busy).
func (l *Local) ReleaseFiles() {
	if l.files != nil {
		l.files.ReleaseAll()
	}
}

func (l *Local) closeFiles() {
	if l.files != nil {
		_ = l.files.Close()
	}
}

// filesHost gives the browse manager its scratch clones.
type filesHost struct {
	l          *Local
	mountpoint string
}

func (h filesHost) Scratch(src browse.Source) (string, string, error) {
	if src.Image == "" {
		if err := firstErr(rowstore.ValidateName("snapshot", src.Snapshot), rowstore.ValidateName("disk", src.Disk)); err != nil {
			return "", "", err
		}
	} else if err := rowstore.ValidateName("image", src.Image); err != nil {
		return "", "", err
	}
	d, err := h.l.scratchClone(src)
	if err != nil {
		return "", "", err
	}
	return d.Name, filepath.Join(h.mountpoint, "disks", d.Name), nil
}

func (h filesHost) DropScratch(name string) error {
	err := h.l.store.DeleteDisk(name, true)
	if err != nil && !errors.Is(err, rowstore.ErrNotFound) {
		return fmt.Errorf("delete scratch clone %s: %w", name, err)
	}
	return ForgetScratch(h.l.dir, name)
}
