package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"

	"github.com/snapfs/snapfs/rowstore"
)

// The control API: HTTP over the unix socket <store>/control.sock. Every
// operation is "POST /v1/<Method>" with a JSON request body; the answer is
// 200 with the JSON result, or an error status with
// {"code": "...", "message": "..."} (codes in errors.go).

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
	rollbackReq struct {
		Name, Snapshot string
		Force          bool
	}
	snapshotReq struct {
		Name  string
		Disks []string
	}
	listSnapshotsReq struct{ Disk string }
	imageReq         struct{ Name, Snapshot, Disk string }
	scratchReq       struct{ Snapshot, Disk string }
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

	"CreateScratchClone": op(func(ctx context.Context, s Service, r scratchReq) (any, error) {
		return result(s.CreateScratchClone(ctx, r.Snapshot, r.Disk))
	}),
	"Shutdown": op(func(ctx context.Context, s Service, _ empty) (any, error) { return done(s.Shutdown(ctx)) }),
}

type wireError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

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
		if !ok || m == nil || r.Method != http.MethodPost {
			writeError(w, http.StatusNotFound, fmt.Errorf("%w: no operation %s %s in the control API (daemon and client versions differ?)", rowstore.ErrIncompatible, r.Method, r.URL.Path))
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("read request: %w", err))
			return
		}
		res, err := call(r.Context(), m, s, body)
		if err != nil {
			status := http.StatusConflict
			if codeOf(err) == "" {
				status = http.StatusInternalServerError
				log.Error("control: "+name, "err", err)
			} else {
				log.Debug("control: "+name, "err", err)
			}
			writeError(w, status, err)
			return
		}
		log.Debug("control: " + name)
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(res); err != nil {
			log.Warn("control: write answer", "op", name, "err", err)
		}
	})
}

func call(ctx context.Context, m method, s Service, body []byte) (res any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error (panic: %v)\n%s", r, debug.Stack())
		}
	}()
	return m(ctx, s, body)
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
