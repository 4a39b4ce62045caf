package service

import (
	"context"
	"fmt"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/exitcode"
	"github.com/snapfs/snapfs/rowstore"
)

// createEncryptedDisk is CreateDisk with Encrypt: an empty encrypted disk,
// or an encrypted full copy of an unencrypted snapshot's disk.
func (l *Local) createEncryptedDisk(r CreateDiskRequest) (Disk, error) {
	switch {
	case !r.Encrypt:
		return Disk{}, fmt.Errorf("%w: a key file goes with --encrypt (a clone of an encrypted disk needs none: it keeps its source's key)", rowstore.ErrInvalid)
	case r.KeyFile == "":
		return Disk{}, fmt.Errorf("%w: an encrypted disk needs a key file (--key-file or SNAPFS_KEY_FILE)", rowstore.ErrInvalid)
	case r.FromImage != "":
		return Disk{}, fmt.Errorf("%w: an encrypted disk is copied from a snapshot (--from-snapshot S --disk D --encrypt), not from an image", rowstore.ErrInvalid)
	case (r.FromSnapshot == "") != (r.FromDisk == ""):
		return Disk{}, fmt.Errorf("%w: a copy needs both the snapshot and the disk in it", rowstore.ErrInvalid)
	case r.FromSnapshot != "" && (r.Size != 0 || r.BlockSize != 0):
		return Disk{}, fmt.Errorf("%w: a copy of a snapshot takes its size and block size from it", rowstore.ErrInvalid)
	case r.FromSnapshot == "" && r.Size == 0:
		return Disk{}, fmt.Errorf("%w: a new disk needs a size", rowstore.ErrInvalid)
	}
	key, err := rowstore.LoadKeyFile(r.KeyFile, r.AllowInsecureKeyFile)
	if err != nil {
		return Disk{}, err
	}
	var d Disk
	if r.FromSnapshot != "" {
		d, err = l.store.CopyToEncryptedDisk(r.Name, r.FromSnapshot, r.FromDisk, key)
	} else {
		d, err = l.store.CreateEncryptedDisk(r.Name, r.Size, r.BlockSize, key)
	}
	if err != nil {
		return Disk{}, err
	}
	l.namesChanged()
	return l.store.GetDisk(d.Name)
}

func (l *Local) needDaemon(what string) error {
	if l.mountpoint == "" {
		return fmt.Errorf("%w: %s keeps a key in the daemon's memory: start snapfs mount first (commands without a daemon take SNAPFS_KEY_FILE)", exitcode.ErrNoDaemon, what)
	}
	return nil
}

// UnlockDisk implements Service.
func (l *Local) UnlockDisk(_ context.Context, r KeyRequest) error {
	if err := l.needDaemon("disk unlock"); err != nil {
		return err
	}
	key, err := rowstore.LoadKeyFile(r.KeyFile, r.AllowInsecure)
	if err != nil {
		return err
	}
	if err := l.store.UnlockDisk(r.Name, key); err != nil {
		return err
	}
	l.log.Info("disk unlocked", "disk", r.Name, "key_file", key.Source())
	l.namesChanged()
	return nil
}

// LockDisk implements Service.
func (l *Local) LockDisk(_ context.Context, name string) error {
	if err := l.needDaemon("disk lock"); err != nil {
		return err
	}
	// The .files views nothing uses now hold scratch clones that share the
	// key (an open disk: the lock would be refused as busy over the
	// daemon's own cache): release them first; they reopen on demand.
	if l.files != nil {
		l.files.ReleaseUnusedAll("releasing the filesystem before a disk lock")
	}
	if err := l.store.LockDisk(name); err != nil {
		return err
	}
	l.log.Info("disk locked", "disk", name)
	l.namesChanged()
	return nil
}

// RekeyDisk implements Service.
func (l *Local) RekeyDisk(_ context.Context, r KeyRequest) error {
	if r.KeyFile == "" || r.NewKeyFile == "" {
		return fmt.Errorf("%w: disk rekey needs the current key file and the new one", rowstore.ErrInvalid)
	}
	oldKey, err := rowstore.LoadKeyFile(r.KeyFile, r.AllowInsecure)
	if err != nil {
		return err
	}
	newKey, err := rowstore.LoadKeyFile(r.NewKeyFile, r.AllowInsecure)
	if err != nil {
		return err
	}
	if err := l.store.RekeyDisk(r.Name, oldKey, newKey); err != nil {
		return err
	}
	l.log.Info("disk rekeyed", "disk", r.Name, "key_file", newKey.Source())
	return nil
}
