package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/wire"
	"github.com/snapfs/snapfs/rowstore"
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
		st, err := rowstore.Open(dir, opts)
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

// TypedJSON is v's JSON object with a leading "type" field: the form of every
// line the CLI prints with --json, and of snapshot.json (wire.TypedJSON).
func TypedJSON(typ string, v any) ([]byte, error) { return wire.TypedJSON(typ, v) }
