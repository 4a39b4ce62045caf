package service

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/wire"
	"github.com/snapfs/snapfs/rowstore"
	"golang.org/x/sys/unix"
)

// SocketName is the control socket's file name inside the store directory.
const SocketName = wire.SocketName

// SocketPath is the control socket of the store in dir.
func SocketPath(dir string) string { return wire.SocketPath(dir) }

// Dial returns a Client of the daemon serving the store in dir, and its
// status, if one answers; otherwise it returns the error.
func Dial(ctx context.Context, dir string) (*Client, Status, error) {
	c := NewClient(SocketPath(dir))
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := c.Status(ctx)
	if err != nil {
		c.Close()
		return nil, Status{}, err
	}
	return c, st, nil
}

// Open returns the Service for the store in dir: a Client when a daemon
// answers on the control socket, otherwise a Local over the store opened in
// this process. A store held by another process whose socket does not answer
// (a daemon starting up, hung, or another program) is an error wrapping
// rowstore.ErrBusy, after a short wait for a starting daemon.
func Open(ctx context.Context, dir string, opts rowstore.Options) (Service, error) {
	deadline := time.Now().Add(3 * time.Second)
	for {
		if c, _, err := Dial(ctx, dir); err == nil {
			return c, nil
		}
		st, err := OpenStore(dir, opts)
		if err == nil {
			l := NewLocal(st, dir)
			l.SetLogger(opts.Logger)
			return l, nil
		}
		if !errors.Is(err, rowstore.ErrBusy) {
			return nil, err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w: store %s is in use by another process, but no daemon answers on %s (a daemon starting or hung?)",
				rowstore.ErrBusy, dir, SocketPath(dir))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// OpenStore is rowstore.Open, the one way the CLI and the daemon open a
// store, with one failure made clear: no space for the files the index
// makes at every open, typically a filesystem out of inodes (df -i) while
// df still shows free bytes. The error the index's library returns then
// no longer wraps ENOSPC, so it would read as an unexplained failure (exit
// 1). It is ErrNoSpace (exit 7), saying what to free.
func OpenStore(dir string, opts rowstore.Options) (*rowstore.Store, error) {
	st, err := rowstore.Open(dir, opts)
	if err == nil || errors.Is(err, rowstore.ErrNoSpace) {
		return st, err
	}
	msg, _, _ := strings.Cut(err.Error(), "\n")
	if !errors.Is(err, syscall.ENOSPC) && !errors.Is(err, syscall.EDQUOT) &&
		!strings.Contains(msg, syscall.ENOSPC.Error()) && !strings.Contains(msg, syscall.EDQUOT.Error()) {
		return nil, err
	}
	var sfs unix.Statfs_t
	if unix.Statfs(dir, &sfs) == nil && sfs.Files > 0 && sfs.Ffree < lowInodes {
		return nil, fmt.Errorf("%w on the store's filesystem (%s): %d free inodes (df -i) although bytes are free: remove files there outside snapfs, then run the command again (%s)", rowstore.ErrNoSpace, dir, sfs.Ffree, msg)
	}
	return nil, fmt.Errorf("%w on the store's filesystem (%s) to open the store: free some there outside snapfs, then run the command again (%s)", rowstore.ErrNoSpace, dir, msg)
}

// lowInodes: fewer free inodes than this, on a store that cannot make its
// index's files, is the reason given.
const lowInodes = 64

// TypedJSON is v's JSON object with a leading "type" field: the form of every
// line the CLI prints with --json, and of snapshot.json (wire.TypedJSON).
func TypedJSON(typ string, v any) ([]byte, error) { return wire.TypedJSON(typ, v) }
