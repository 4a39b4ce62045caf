package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/exitcode"
	"github.com/snapfs/snapfs/cmd/snapfs/internal/wire"
	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/rowstore"
	"golang.org/x/sys/unix"
)

// The control API: HTTP over the unix socket <store>/control.sock. Every
// operation is "POST /v1/<Method>" with a JSON request body; the answer is
// 200 with the JSON result, or an error status with
// {"code": "...", "message": "..."} (codes in errors.go). Before it, as soon
// as the request is read, the daemon sends "102 Processing": clients bound
// only their wait for that first sign of life (wire.AnswerTimeout), so a
// hung daemon is told from a long operation without a round trip more.
//
// Long region jobs (Sync, Restore, CheckRegion, RepairRegion, PruneRegion)
// are streaming methods: the answer is 200 with JSON lines
// (application/x-ndjson), {"event": {...}} per progress event, flushed as
// it happens, then exactly one {"result": ...} or {"error": {"code",
// "message"}} (with "result" too when the job returned a partial result).
// Neither side sets a deadline on them (after the 102); a client that disconnects cancels
// the job (sync and restore are safe to interrupt and run again). The daemon's
// stop cancels what runs with ErrDaemonStopping: its client exits 130 and is
// told to run the job again.

// Wire request types: one per argument list.
type (
	empty    struct{}
	nameReq  struct{ Name string }
	forceReq struct {
		Name  string
		Force bool
	}
	resizeReq struct {
		Name string
		Size int64
	}
	rollbackReq = wire.RollbackRequest
	snapshotReq struct {
		Name  string
		Disks []string
	}
	listSnapshotsReq = wire.ListSnapshotsRequest
	imageReq         = wire.ImageRequest
	checkReq         struct {
		Name     string
		ReadData bool
	}
	umountReq struct{ Mountpoint string }
	// policyDisksReq names a policy and disks (ApplyPolicy, CancelPolicy).
	policyDisksReq struct {
		Name  string
		Disks []string
	}
)

type method func(ctx context.Context, s Service, body []byte) (any, error)

func op[Req any](f func(ctx context.Context, s Service, r Req) (any, error)) method {
	return func(ctx context.Context, s Service, body []byte) (any, error) {
		var r Req
		if len(body) > 0 {
			if err := json.Unmarshal(body, &r); err != nil {
				return nil, fmt.Errorf("%w: bad request body: %v", rowstore.ErrInvalid, err)
			}
		}
		return f(ctx, s, r)
	}
}

func result[T any](v T, err error) (any, error) { return v, err }

func done(err error) (any, error) { return struct{}{}, err }

// methods is the control API: one entry per Service method (but Close).
var methods = map[string]method{
	"Status": op(func(ctx context.Context, s Service, _ empty) (any, error) { return result(s.Status(ctx)) }),
	"StatusReport": op(func(ctx context.Context, s Service, _ empty) (any, error) {
		return result(s.StatusReport(ctx))
	}),

	"CreateDisk": op(func(ctx context.Context, s Service, r CreateDiskRequest) (any, error) {
		return result(s.CreateDisk(ctx, r))
	}),
	"ListDisks": op(func(ctx context.Context, s Service, _ empty) (any, error) { return result(s.ListDisks(ctx)) }),
	"GetDisk":   op(func(ctx context.Context, s Service, r nameReq) (any, error) { return result(s.GetDisk(ctx, r.Name)) }),
	"ResizeDisk": op(func(ctx context.Context, s Service, r resizeReq) (any, error) {
		return result(s.ResizeDisk(ctx, r.Name, r.Size))
	}),
	"DeleteDisk": op(func(ctx context.Context, s Service, r forceReq) (any, error) {
		return done(s.DeleteDisk(ctx, r.Name, r.Force))
	}),
	"RollbackDisk": op(func(ctx context.Context, s Service, r rollbackReq) (any, error) {
		return result(s.RollbackDisk(ctx, r.Name, r.Snapshot, r.Force))
	}),

	"CreateSnapshot": op(func(ctx context.Context, s Service, r snapshotReq) (any, error) {
		return result(s.CreateSnapshot(ctx, r.Name, r.Disks))
	}),
	"ListSnapshots": op(func(ctx context.Context, s Service, r listSnapshotsReq) (any, error) {
		return result(s.ListSnapshots(ctx, r.Disk))
	}),
	"GetSnapshot": op(func(ctx context.Context, s Service, r nameReq) (any, error) {
		return result(s.GetSnapshot(ctx, r.Name))
	}),
	"DeleteSnapshot": op(func(ctx context.Context, s Service, r nameReq) (any, error) {
		return done(s.DeleteSnapshot(ctx, r.Name))
	}),
	"Diff": op(func(ctx context.Context, s Service, r DiffRequest) (any, error) { return result(s.Diff(ctx, r)) }),

	"CreateImage": op(func(ctx context.Context, s Service, r imageReq) (any, error) {
		return result(s.CreateImage(ctx, r.Name, r.Snapshot, r.Disk))
	}),
	"ListImages":  op(func(ctx context.Context, s Service, _ empty) (any, error) { return result(s.ListImages(ctx)) }),
	"GetImage":    op(func(ctx context.Context, s Service, r nameReq) (any, error) { return result(s.GetImage(ctx, r.Name)) }),
	"DeleteImage": op(func(ctx context.Context, s Service, r nameReq) (any, error) { return done(s.DeleteImage(ctx, r.Name)) }),

	"Usage": op(func(ctx context.Context, s Service, _ empty) (any, error) { return result(s.Usage(ctx)) }),
	"GC":    op(func(ctx context.Context, s Service, _ empty) (any, error) { return result(s.GC(ctx)) }),

	"FreshUsage": op(func(ctx context.Context, s Service, _ empty) (any, error) { return result(s.FreshUsage(ctx)) }),

	"Shutdown": op(func(ctx context.Context, s Service, _ empty) (any, error) { return done(s.Shutdown(ctx)) }),
	"DiffFiles": op(func(ctx context.Context, s Service, r FilesDiffRequest) (any, error) {
		return result(s.DiffFiles(ctx, r))
	}),
	"MountSnapshot": op(func(ctx context.Context, s Service, r SnapMountRequest) (any, error) {
		return result(s.MountSnapshot(ctx, r))
	}),
	"UmountSnapshot": op(func(ctx context.Context, s Service, r umountReq) (any, error) {
		return result(s.UmountSnapshot(ctx, r.Mountpoint))
	}),

	"AddRegion": op(func(ctx context.Context, s Service, r AddRegionRequest) (any, error) {
		return result(s.AddRegion(ctx, r))
	}),
	"ListRegions":  op(func(ctx context.Context, s Service, _ empty) (any, error) { return result(s.ListRegions(ctx)) }),
	"GetRegion":    op(func(ctx context.Context, s Service, r nameReq) (any, error) { return result(s.GetRegion(ctx, r.Name)) }),
	"RemoveRegion": op(func(ctx context.Context, s Service, r nameReq) (any, error) { return done(s.RemoveRegion(ctx, r.Name)) }),
	"RemoteSnapshots": op(func(ctx context.Context, s Service, r nameReq) (any, error) {
		return result(s.RemoteSnapshots(ctx, r.Name))
	}),
	"SetRegionRetention": op(func(ctx context.Context, s Service, r RetentionRequest) (any, error) {
		return result(s.SetRegionRetention(ctx, r))
	}),
	"CreatePolicy": op(func(ctx context.Context, s Service, r Policy) (any, error) { return result(s.CreatePolicy(ctx, r)) }),
	"ApplyPolicy": op(func(ctx context.Context, s Service, r policyDisksReq) (any, error) {
		return result(s.ApplyPolicy(ctx, r.Name, r.Disks))
	}),
	"CancelPolicy": op(func(ctx context.Context, s Service, r policyDisksReq) (any, error) {
		return result(s.CancelPolicy(ctx, r.Name, r.Disks))
	}),
	"ListPolicies": op(func(ctx context.Context, s Service, _ empty) (any, error) { return result(s.ListPolicies(ctx)) }),
	"GetPolicy":    op(func(ctx context.Context, s Service, r nameReq) (any, error) { return result(s.GetPolicy(ctx, r.Name)) }),
	"DeletePolicy": op(func(ctx context.Context, s Service, r nameReq) (any, error) { return done(s.DeletePolicy(ctx, r.Name)) }),
	"CreateSnapshotWith": op(func(ctx context.Context, s Service, r CreateSnapshotRequest) (any, error) {
		return result(s.CreateSnapshotWith(ctx, r))
	}),
	"Quotas":    op(func(ctx context.Context, s Service, _ empty) (any, error) { return result(s.Quotas(ctx)) }),
	"SetQuotas": op(func(ctx context.Context, s Service, r Quotas) (any, error) { return result(s.SetQuotas(ctx, r)) }),
	"DeleteSnapshotPlan": op(func(ctx context.Context, s Service, r nameReq) (any, error) {
		return result(s.DeleteSnapshotPlan(ctx, r.Name))
	}),

	"UnlockDisk": op(func(ctx context.Context, s Service, r KeyRequest) (any, error) { return done(s.UnlockDisk(ctx, r)) }),
	"LockDisk":   op(func(ctx context.Context, s Service, r nameReq) (any, error) { return done(s.LockDisk(ctx, r.Name)) }),
	"RekeyDisk":  op(func(ctx context.Context, s Service, r KeyRequest) (any, error) { return done(s.RekeyDisk(ctx, r)) }),
}

// streamMethod is a streaming operation: it reports progress through p.
type streamMethod func(ctx context.Context, s Service, body []byte, p Progress) (any, error)

func sop[Req any](f func(ctx context.Context, s Service, r Req, p Progress) (any, error)) streamMethod {
	return func(ctx context.Context, s Service, body []byte, p Progress) (any, error) {
		var r Req
		if len(body) > 0 {
			if err := json.Unmarshal(body, &r); err != nil {
				return nil, fmt.Errorf("%w: bad request body: %v", rowstore.ErrInvalid, err)
			}
		}
		return f(ctx, s, r, p)
	}
}

// streams are the streaming methods of the control API.
var streams = map[string]streamMethod{
	"Sync": sop(func(ctx context.Context, s Service, r SyncRequest, p Progress) (any, error) {
		return result(s.Sync(ctx, r, p))
	}),
	"Restore": sop(func(ctx context.Context, s Service, r RestoreRequest, p Progress) (any, error) {
		return result(s.Restore(ctx, r, p))
	}),
	"CheckRegion": sop(func(ctx context.Context, s Service, r checkReq, p Progress) (any, error) {
		return result(s.CheckRegion(ctx, r.Name, r.ReadData, p))
	}),
	"RepairRegion": sop(func(ctx context.Context, s Service, r nameReq, p Progress) (any, error) {
		return result(s.RepairRegion(ctx, r.Name, p))
	}),
	"PruneRegion": sop(func(ctx context.Context, s Service, r PruneRequest, _ Progress) (any, error) {
		return result(s.PruneRegion(ctx, r))
	}),
	"CheckStore": sop(func(ctx context.Context, s Service, r CheckStoreRequest, p Progress) (any, error) {
		return result(s.CheckStore(ctx, r, p))
	}),
	"RepairFromRegion": sop(func(ctx context.Context, s Service, r nameReq, p Progress) (any, error) {
		return result(s.RepairFromRegion(ctx, r.Name, p))
	}),
	"UnlockRegion": sop(func(ctx context.Context, s Service, r UnlockRequest, _ Progress) (any, error) {
		return result(s.UnlockRegion(ctx, r))
	}),
	"ReleaseHolds": sop(func(ctx context.Context, s Service, r ReleaseHoldsRequest, _ Progress) (any, error) {
		return result(s.ReleaseHolds(ctx, r))
	}),
	"RegionUsage": sop(func(ctx context.Context, s Service, _ empty, _ Progress) (any, error) {
		return result(s.RegionUsage(ctx))
	}),
	"RepairRegionWith": sop(func(ctx context.Context, s Service, r RepairRequest, p Progress) (any, error) {
		return result(s.RepairRegionWith(ctx, r, p))
	}),
}

// streamLine is one line of a streaming answer.
type streamLine struct {
	Event  *replicate.Event `json:"event,omitempty"`
	Result json.RawMessage  `json:"result,omitempty"`
	Error  *wireError       `json:"error,omitempty"`
}

// serveStream runs a streaming method, writing its events and its end.
func serveStream(w http.ResponseWriter, r *http.Request, name string, m streamMethod, s Service, body []byte, log *slog.Logger) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	var mu sync.Mutex
	enc := json.NewEncoder(w)
	write := func(l streamLine) {
		mu.Lock()
		defer mu.Unlock()
		if err := enc.Encode(l); err == nil {
			_ = rc.Flush()
		}
	}
	res, err := call(r.Context(), func(ctx context.Context, s Service, body []byte) (any, error) {
		return m(ctx, s, body, func(e replicate.Event) { write(streamLine{Event: &e}) })
	}, s, body)
	var raw json.RawMessage
	if res != nil {
		if b, merr := json.Marshal(res); merr == nil {
			raw = b
		}
	}
	if err != nil {
		if codeOf(err) == "" {
			log.Error("control: "+name, "err", err)
		} else {
			log.Debug("control: "+name, "err", err)
		}
		write(streamLine{Result: raw, Error: &wireError{Code: codeOf(err), Message: err.Error()}})
		return
	}
	log.Debug("control: " + name)
	if raw == nil {
		raw = json.RawMessage("null")
	}
	write(streamLine{Result: raw})
}

type wireError = wire.Error

// Handler serves s on the control API. Errors are logged once here, at the
// boundary; a panic in an operation becomes an error answer, never a dead
// daemon. A nil log discards.
func Handler(s Service, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := strings.CutPrefix(r.URL.Path, "/v1/")
		m := methods[name]
		sm := streams[name]
		if !ok || (m == nil && sm == nil) || r.Method != http.MethodPost {
			writeError(w, http.StatusNotFound, fmt.Errorf("%w: no operation %s %s in the control API (daemon and client versions differ?)", rowstore.ErrIncompatible, r.Method, r.URL.Path))
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("read request: %w", err))
			return
		}
		// The request is read: say so at once (102 Processing), so a client
		// bounds its wait for a sign of life (wire.AnswerTimeout), not for
		// the operation.
		w.WriteHeader(http.StatusProcessing)
		if sm != nil {
			serveStream(w, r, name, sm, s, body, log)
			return
		}
		start := time.Now()
		res, err := call(r.Context(), m, s, body)
		took := time.Since(start)
		if err != nil {
			status := http.StatusConflict
			if codeOf(err) == "" {
				status = http.StatusInternalServerError
				log.Error("control: "+name, "err", err, "took", took)
			} else {
				log.Debug("control: "+name, "err", err, "took", took)
			}
			writeError(w, status, err)
			return
		}
		log.Debug("control: "+name, "took", took)
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(res); err != nil {
			log.Warn("control: write answer", "op", name, "err", err)
		}
	})
}

// Invoke makes control API call method on s without a socket: req is
// encoded as a client encodes it, served by the daemon's own table
// (methods), and the result is returned as the JSON the daemon answers. The
// full binary runs its hot commands (package hot) with it when no daemon
// serves the store, so both paths share one mapping of calls to Service
// methods.
func Invoke(ctx context.Context, s Service, method string, req any) (json.RawMessage, error) {
	m := methods[method]
	if m == nil {
		return nil, fmt.Errorf("%w: no operation %s in the control API", rowstore.ErrIncompatible, method)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", method, err)
	}
	res, err := call(ctx, m, s, body)
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("encode the answer to %s: %w", method, err)
	}
	return raw, nil
}

func call(ctx context.Context, m method, s Service, body []byte) (res any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error (panic: %v)\n%s", r, debug.Stack())
		}
		err = stoppedByDaemon(ctx, err)
	}()
	return m(ctx, s, body)
}

// ErrDaemonStopping is the cause with which the daemon cancels the
// operations it is running when it stops (snapfs umount, SIGINT or SIGTERM,
// its mount unmounted from outside). It wraps exitcode.ErrInterrupted: the
// client exits 130, told to run the job again.
var ErrDaemonStopping = fmt.Errorf("%w: the daemon serving the store stopped (snapfs umount, a signal, or its mount was unmounted) before the job finished", exitcode.ErrInterrupted)

// stoppedByDaemon is err, or, when the daemon's stop cancelled ctx and err
// is that cancellation, an error that says so and what to do (the bare
// "context canceled" a job returns tells the user nothing).
func stoppedByDaemon(ctx context.Context, err error) error {
	if err == nil || !errors.Is(context.Cause(ctx), ErrDaemonStopping) {
		return err
	}
	const again = "; run it again once a daemon serves the store, or with none (it is safe to repeat)"
	switch {
	case errors.Is(err, ErrDaemonStopping): // the job wrapped the cause itself
		return fmt.Errorf("%w%s", err, again)
	case errors.Is(err, context.Canceled) && !errors.Is(err, exitcode.ErrInterrupted):
		return fmt.Errorf("%w%s", ErrDaemonStopping, again)
	default: // not cut by the stop (Shutdown's own answer among them)
		return err
	}
}

func writeError(w http.ResponseWriter, status int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	var re *RemoteError
	code := codeOf(err)
	if errors.As(err, &re) {
		code = re.Code
	}
	_ = json.NewEncoder(w).Encode(wireError{Code: code, Message: err.Error()})
}

// PeerCredListener accepts only connections whose peer (SO_PEERCRED) runs
// as this process's effective uid or as root: the control socket's 0600
// mode is the first fence, this the second (a socket whose mode was widened,
// or a directory another user can reach, lets nobody else in). A refused
// connection is closed at once and logged (uid and pid, nothing else).
func PeerCredListener(ln net.Listener, log *slog.Logger) net.Listener {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &peerCredListener{Listener: ln, log: log, uid: uint32(os.Geteuid())}
}

type peerCredListener struct {
	net.Listener
	log *slog.Logger
	uid uint32
}

func (l *peerCredListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		cred, err := peerCred(c)
		if err == nil && (cred.Uid == l.uid || cred.Uid == 0) {
			return c, nil
		}
		if err != nil {
			l.log.Warn("control socket: refused a connection whose peer cannot be identified", "err", err)
		} else {
			l.log.Warn("control socket: refused a connection of another user", "uid", cred.Uid, "pid", cred.Pid)
		}
		c.Close()
	}
}

// peerCred is the credentials of a unix socket's peer.
func peerCred(c net.Conn) (*unix.Ucred, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil, fmt.Errorf("not a unix socket connection (%T)", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	return cred, cerr
}
