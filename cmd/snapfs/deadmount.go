package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/service"
	"github.com/snapfs/snapfs/rowstore"
)

// clearDeadMount handles a mount point whose FUSE server died (SIGKILL, OOM
// killer, a crash): the kernel keeps the mount, and every access to it
// fails with ENOTCONN ("transport endpoint is not connected"). Before trial
// 8, `snapfs mount` then said "mountpoint M does not exist" (exit 3, which
// the unit's RestartPreventExitStatus takes as not worth retrying), and the
// store stayed unmounted until someone found `snapfs umount M`.
//
// The dead mount of this same store, with no daemon answering on its
// socket, is removed (as `snapfs umount` does: unmount, else detach it) and
// the mount goes on: it serves nothing, and everything acknowledged is in
// the store. What still holds files of the dead mount (a loop device, a VM,
// an open file) keeps failing with EIO or ENOTCONN and must be reopened on
// the new mount. A dead mount of another store or another filesystem is
// refused (busy) with what to do: it is not ours to remove.
func clearDeadMount(p, store string, log *slog.Logger) error {
	abs, err := filepath.Abs(p)
	if err != nil {
		return nil // existingDir reports it
	}
	if err := mountDead(abs); err != nil {
		if errors.Is(err, rowstore.ErrBusy) {
			return err // a server that hangs: not ours to judge
		}
		return nil // alive, or no FUSE mount: opening it says what is wrong
	}
	var entry *mountEntry
	for _, m := range mounts() {
		if m.target == abs {
			entry = &m // the last one is the one on top
		}
	}
	if entry == nil || !strings.HasPrefix(entry.fstype, "fuse") {
		return fmt.Errorf("%w: mountpoint %s: %v", rowstore.ErrBusy, abs, syscall.ENOTCONN)
	}
	if entry.fstype != "fuse.snapfs" || filepath.Clean(entry.source) != filepath.Clean(store) {
		return fmt.Errorf("%w: mountpoint %s is the dead mount of %s (%s; its server died): unmount it first (umount -l %s)",
			rowstore.ErrBusy, abs, entry.source, entry.fstype, abs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if client, _, err := service.Dial(ctx, store); err == nil {
		client.Close()
		return nil // a daemon answers for the store: opening it reports the busy store
	}
	if err := removeDeadMount(abs); err != nil {
		return fmt.Errorf("remove the dead mount of store %s at %s: %w", store, abs, err)
	}
	log.Warn("removed the dead mount of a daemon that died; files still open through it (loop devices, VMs) must be reopened",
		"mountpoint", abs, "store", store)
	return nil
}

// errMountAlive: the mount's server answers.
var errMountAlive = errors.New("the mount is alive")

// mountDead returns nil when the FUSE mount at mp is dead (its server is
// gone: statfs fails with ENOTCONN; statfs always reaches the FUSE server,
// where a stat may be answered from the kernel's attribute cache), errMountAlive when its server answers,
// and the error of statfs otherwise (EACCES: another user's mount), or a
// busy error when it does not answer within 10 s (a hung server).
func mountDead(mp string) error {
	done := make(chan error, 1)
	go func() {
		var sfs syscall.Statfs_t
		done <- syscall.Statfs(mp, &sfs)
	}()
	select {
	case err := <-done:
		switch {
		case errors.Is(err, syscall.ENOTCONN):
			return nil
		case err == nil:
			return errMountAlive
		}
		return err
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%w: the server of %s does not answer (statfs took over 10 s): its daemon hangs; kill it, then run snapfs umount again", rowstore.ErrBusy, mp)
	}
}

// removeDeadMount removes the mount at mp whose server died: unmounted, or
// detached when something still holds it open (`snapfs umount` of a dead
// mount, and mount over one: clearDeadMount).
func removeDeadMount(mp string) error {
	if err := syscall.Unmount(mp, 0); err != nil {
		return syscall.Unmount(mp, syscall.MNT_DETACH)
	}
	return nil
}
