package service

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/dustin/go-humanize"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/wire"
	"github.com/snapfs/snapfs/rowstore"
	"github.com/snapfs/snapfs/rowstore/policy"
	"github.com/snapfs/snapfs/rowstore/vfs"
)

// CreateSnapshotRequest is a snapshot with consistency options: Freeze
// are mount points of filesystems (inside the disks, through loop
// devices) frozen with FIFREEZE while the snapshot is taken; PreHook and
// PostHook are shell commands run before and after (sh -c, with
// SNAPFS_SNAPSHOT and SNAPFS_DISKS set), each bounded by HookTimeout
// (default DefaultHookTimeout; the freeze too), killed with their process
// group at the timeout. OnPreHookFailure is "abort" (default: no
// snapshot) or "crash" (a crash-consistent snapshot, nothing frozen).
type CreateSnapshotRequest = wire.CreateSnapshotRequest

// DefaultHookTimeout bounds a hook, and a freeze, when no timeout is given.
const DefaultHookTimeout = wire.DefaultHookTimeout

// DeletePlan is what deleting a snapshot would free (nothing is deleted).
type DeletePlan struct {
	Snapshot string `json:"snapshot"`
	// Frees is the bytes only this snapshot holds: what deleting it frees
	// once gc has run (usage's "exclusive").
	Frees int64 `json:"frees"`
	// Logical and Allocated are the snapshot's sizes, for reference.
	Logical   int64 `json:"logical"`
	Allocated int64 `json:"allocated"`
	// FreesStale: Frees is from the last count of the exclusive figures
	// (usage's), and a change came since (snapfs usage --fresh recounts).
	FreesStale bool `json:"frees_stale"`
}

// Quotas are the snapshot limits of this store, in
// <store>/policies/quota.json ({"manual": N, "automatic": N,
// "max_snapshot_bytes": N}); zero fields take the defaults (256 manual and
// 1,000 automatic snapshots per disk; no cap on bytes).
type Quotas struct {
	policy.Quota
	// MaxSnapshotBytes caps the bytes all snapshots hold exclusively
	// (usage's exclusive, summed); 0: no cap. Over it, a manual create
	// fails and a policy evicts its oldest automatic snapshot first.
	MaxSnapshotBytes int64 `json:"max_snapshot_bytes,omitempty"`
}

func (l *Local) quotaPath() string { return filepath.Join(l.dir, "policies", "quota.json") }

func (l *Local) quotas() Quotas {
	var q Quotas
	if b, err := os.ReadFile(l.quotaPath()); err == nil {
		if err := json.Unmarshal(b, &q); err != nil {
			l.log.Warn("quota file unreadable; defaults apply", "path", l.quotaPath(), "err", err)
			q = Quotas{}
		}
	}
	q.Quota = q.Quota.WithDefaults()
	return q
}

func (l *Local) quota() policy.Quota { return l.quotas().Quota }

// consistencyOf is a snapshot's recorded consistency ("crash" when none
// was recorded: snapshots taken before it existed).
func consistencyOf(si rowstore.SnapshotInfo) string {
	if si.Consistency == "" {
		return policy.ConsistencyCrash
	}
	return si.Consistency
}

// CreateSnapshotWith implements Service: a manual snapshot, within the
// manual quota of each disk, with the request's consistency options.
func (l *Local) CreateSnapshotWith(ctx context.Context, r CreateSnapshotRequest) (Snapshot, error) {
	if err := rowstore.ValidateName("snapshot", r.Name); err != nil {
		return Snapshot{}, err
	}
	sis, err := l.store.ListSnapshots()
	if err != nil {
		return Snapshot{}, err
	}
	q := l.quotas()
	for _, d := range r.Disks {
		if err := policy.CheckManual(snapsOf(sis, d), d, q.Quota); err != nil {
			return Snapshot{}, quotaError{err}
		}
	}
	if q.MaxSnapshotBytes > 0 {
		if used, err := l.snapshotBytes(); err != nil {
			return Snapshot{}, err
		} else if used >= q.MaxSnapshotBytes {
			return Snapshot{}, quotaError{fmt.Errorf("%w: snapshots hold %s exclusively, the store's cap is %s (delete some, or raise it: snapfs policy quota --max-snapshot-bytes SIZE)", policy.ErrQuota, humanize.IBytes(uint64(used)), humanize.IBytes(uint64(q.MaxSnapshotBytes)))}
		}
	}
	return l.takeSnapshot(ctx, r, rowstore.SnapshotOptions{Kind: policy.KindManual})
}

// quotaError is a snapshot quota reached: exit 7 as the policy quota's
// help says (it wraps rowstore.ErrNoSpace), but its message names the
// quota, not "no space left" (trial 10: the store's filesystem was far
// from full).
type quotaError struct{ err error }

func (e quotaError) Error() string   { return strings.TrimPrefix(e.err.Error(), "policy: ") }
func (e quotaError) Unwrap() []error { return []error{rowstore.ErrNoSpace, e.err} }

// snapshotBytes sums what snapshots hold exclusively, counted again if
// anything changed since the last count (FreshUsage: a pass over the
// index, O(data)); the figures usage shows at once may predate the last
// writes, and a cap checked against them was not enforced until the
// background recount (a snapshot holding 1 MiB exclusively passed a
// 512 KiB cap). Only a store with a byte cap pays it, at each snapshot.
func (l *Local) snapshotBytes() (int64, error) {
	u, err := l.store.FreshUsage()
	if err != nil {
		return 0, err
	}
	var n int64
	for _, s := range u.Snapshots {
		n += s.Exclusive
	}
	return n, nil
}

// DeleteSnapshotPlan implements Service.
func (l *Local) DeleteSnapshotPlan(_ context.Context, name string) (DeletePlan, error) {
	if _, err := l.store.GetSnapshot(name); err != nil {
		return DeletePlan{}, err
	}
	u, err := l.store.Usage()
	if err != nil {
		return DeletePlan{}, err
	}
	for _, s := range u.Snapshots {
		if s.Name == name {
			return DeletePlan{Snapshot: name, Frees: s.Exclusive, Logical: s.Logical, Allocated: s.Allocated, FreesStale: u.Store.ExclusiveStale}, nil
		}
	}
	return DeletePlan{Snapshot: name, FreesStale: u.Store.ExclusiveStale}, nil
}

// takeSnapshot runs the pre-hook, freezes, snapshots, thaws and runs the
// post-hook. The thaw always happens (error, timeout, cancellation: a
// SIGINT of the command cancels ctx); the post-hook always runs once the
// pre-hook was started.
func (l *Local) takeSnapshot(ctx context.Context, r CreateSnapshotRequest, o rowstore.SnapshotOptions) (snap Snapshot, err error) {
	timeout := r.HookTimeout
	if timeout <= 0 {
		timeout = DefaultHookTimeout
	}
	freeze := make([]string, 0, len(r.Freeze))
	for _, e := range r.Freeze { // before any hook runs
		mp, of, cerr := freezeEntry(e, r.Disks)
		if cerr == nil {
			cerr = l.checkFreezeTarget(mp, of)
		}
		if cerr != nil {
			return Snapshot{}, fmt.Errorf("snapshot %q not taken: %w", r.Name, cerr)
		}
		freeze = append(freeze, mp)
	}
	env := []string{"SNAPFS_SNAPSHOT=" + r.Name, "SNAPFS_DISKS=" + strings.Join(r.Disks, ",")}
	consistency := policy.ConsistencyCrash
	if r.PreHook != "" {
		if r.PostHook != "" {
			defer func() {
				// Not bound to ctx: the post-hook runs after a cancel too.
				if perr := runHook(context.WithoutCancel(ctx), "post-hook", r.PostHook, timeout, append(env, "SNAPFS_RESULT="+resultOf(err))); perr != nil {
					l.log.Error("post-hook failed", "snapshot", r.Name, "err", perr)
					if err == nil {
						err = fmt.Errorf("snapshot %q taken, but %w", r.Name, perr)
					}
				}
			}()
		}
		if herr := runHook(ctx, "pre-hook", r.PreHook, timeout, env); herr != nil {
			if ctx.Err() != nil {
				return Snapshot{}, fmt.Errorf("snapshot %q not taken: %w", r.Name, herr)
			}
			if r.OnPreHookFailure != "crash" {
				return Snapshot{}, &preHookError{fmt.Errorf("snapshot %q not taken: %w; nothing was snapshotted (try again once the application can be quiesced, or --on-pre-hook-failure crash)", r.Name, herr)}
			}
			l.log.Warn("pre-hook failed: taking a crash-consistent snapshot", "snapshot", r.Name, "err", herr)
			freeze = nil
		} else {
			consistency = policy.ConsistencyApplication
		}
	} else if r.PostHook != "" {
		defer func() {
			if perr := runHook(context.WithoutCancel(ctx), "post-hook", r.PostHook, timeout, append(env, "SNAPFS_RESULT="+resultOf(err))); perr != nil && err == nil {
				err = fmt.Errorf("snapshot %q taken, but %w", r.Name, perr)
			}
		}()
	}
	var frozen []*frozenFS
	defer func() {
		for i := len(frozen) - 1; i >= 0; i-- {
			if terr := frozen[i].thaw(); terr != nil {
				l.log.Error("thaw failed", "mountpoint", frozen[i].path, "err", terr)
				if err == nil {
					err = terr
				}
			}
		}
	}()
	for _, mp := range freeze {
		f, ferr := freezeFS(ctx, mp, timeout)
		if ferr != nil {
			return Snapshot{}, fmt.Errorf("snapshot %q not taken: %w", r.Name, ferr)
		}
		frozen = append(frozen, f)
	}
	if len(frozen) > 0 && consistency == policy.ConsistencyCrash {
		consistency = policy.ConsistencyFilesystem
	}
	if err := ctx.Err(); err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %q not taken: %w", r.Name, err)
	}
	o.Consistency = consistency
	si, err := l.store.CreateSnapshotWith(r.Name, r.Disks, o)
	if err != nil {
		return Snapshot{}, err
	}
	l.namesChanged()
	return l.snapshot(si, false)
}

// preHookError is a pre-hook that failed or timed out, so no snapshot was
// taken: exit 5 (busy), as for a disk in use: nothing changed, and the
// same command may succeed once the application can be quiesced. It is
// not exit 1, which a post-hook failure gives after the snapshot was
// taken, so that scripts can tell "not taken" from "taken, but". The
// message is the hook's own (no "busy:" tag in front).
type preHookError struct{ err error }

func (e *preHookError) Error() string   { return e.err.Error() }
func (e *preHookError) Unwrap() []error { return []error{rowstore.ErrBusy, e.err} }

func resultOf(err error) string {
	if err != nil {
		return "failed"
	}
	return "ok"
}

// runHook runs cmd with sh -c in its own process group, killed (the whole
// group) at the timeout or when ctx ends.
func runHook(ctx context.Context, what, cmd string, timeout time.Duration, env []string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := exec.Command("/bin/sh", "-c", cmd)
	c.Env = append(os.Environ(), env...)
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	if err := c.Start(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			if last := lastLine(out.String()); last != "" {
				return fmt.Errorf("%s %q failed: %w: %s", what, cmd, err, last)
			}
			return fmt.Errorf("%s %q failed: %w", what, cmd, err)
		}
		return nil
	case <-ctx.Done():
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		<-done
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("%s %q killed after its timeout of %s", what, cmd, timeout)
		}
		return fmt.Errorf("%s %q killed: %w", what, cmd, ctx.Err())
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// FIFREEZE and FITHAW are _IOWR('X', 119, int) and _IOWR('X', 120, int).
const (
	ioctlFIFREEZE = 0xC0045877
	ioctlFITHAW   = 0xC0045878
)

// frozenFS is a frozen filesystem; thaw unfreezes it once.
type frozenFS struct {
	path string
	f    *os.File
}

func (z *frozenFS) thaw() error {
	if z.f == nil {
		return nil
	}
	defer func() { z.f.Close(); z.f = nil }()
	if err := ioctl(z.f, ioctlFITHAW); err != nil && !errors.Is(err, syscall.EINVAL) { // EINVAL: not frozen
		return fmt.Errorf("thaw %s: %w", z.path, err)
	}
	return nil
}

// freezeFS freezes the filesystem mounted at path. FIFREEZE waits for
// writes in flight, which may take long: past timeout (or ctx's end) it
// fails, and the freeze, when it completes after all, is undone at once.
func freezeFS(ctx context.Context, path string, timeout time.Duration) (*frozenFS, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: freeze %s: %w", rowstore.ErrInvalid, path, err)
	}
	if fi, err := f.Stat(); err != nil || !fi.IsDir() {
		f.Close()
		return nil, fmt.Errorf("%w: freeze %s: not a mounted filesystem's directory", rowstore.ErrInvalid, path)
	}
	done := make(chan error) // unbuffered: a result nobody takes is undone
	abandoned := make(chan struct{})
	go func() {
		err := ioctl(f, ioctlFIFREEZE)
		select {
		case done <- err:
		case <-abandoned:
			if err == nil {
				_ = ioctl(f, ioctlFITHAW)
			}
			f.Close()
		}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-done:
		if err != nil {
			f.Close()
			if errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOTTY) {
				return nil, fmt.Errorf("%w: freeze %s: the filesystem cannot be frozen (%v)", rowstore.ErrInvalid, path, err)
			}
			return nil, fmt.Errorf("freeze %s: %w", path, err)
		}
		return &frozenFS{path: path, f: f}, nil
	case <-t.C:
		close(abandoned)
		return nil, fmt.Errorf("freeze %s: not frozen within %s (thawed once it completes)", path, timeout)
	case <-ctx.Done():
		close(abandoned)
		return nil, fmt.Errorf("freeze %s: %w", path, ctx.Err())
	}
}

func ioctl(f *os.File, req uintptr) error {
	_, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), req, 0)
	if e != 0 {
		return e
	}
	return nil
}

// Quotas implements Service.
func (l *Local) Quotas(_ context.Context) (Quotas, error) { return l.quotas(), nil }

// SetQuotas implements Service.
func (l *Local) SetQuotas(_ context.Context, q Quotas) (Quotas, error) {
	if q.Manual < 0 || q.Automatic < 0 || q.MaxSnapshotBytes < 0 {
		return Quotas{}, fmt.Errorf("%w: negative quota", rowstore.ErrInvalid)
	}
	b, err := json.MarshalIndent(q, "", "  ")
	if err != nil {
		return Quotas{}, err
	}
	if err := os.MkdirAll(filepath.Dir(l.quotaPath()), 0o700); err != nil {
		return Quotas{}, err
	}
	if err := vfs.WriteFile(vfs.Default, l.quotaPath(), append(b, '\n'), 0o600); err != nil {
		return Quotas{}, err
	}
	return l.quotas(), nil
}

// freezeEntry splits an entry of CreateSnapshotRequest.Freeze: a mount
// point (the filesystem of any of disks), or DISK=MOUNTPOINT as policies
// write it (the filesystem of DISK, which must be one of disks).
func freezeEntry(e string, disks []string) (mp string, of []string, err error) {
	d, p, ok := strings.Cut(e, "=")
	if !ok || d == "" || strings.Contains(d, "/") {
		return e, disks, nil
	}
	if !slices.Contains(disks, d) {
		return "", nil, fmt.Errorf("%w: freeze %s: disk %q is not one of the snapshot's disks (%s)", rowstore.ErrInvalid, e, d, strings.Join(disks, ", "))
	}
	return p, []string{d}, nil
}

// checkFreezeTarget makes sure mp is the mount point of a filesystem
// inside one of disks: mounted from a loop device whose backing file is
// <daemon mountpoint>/disks/<disk>. Freezing anything else (the root file
// system, the one holding the store) could block the snapshot's own writes
// and never thaw.
func (l *Local) checkFreezeTarget(mp string, disks []string) error {
	if l.mountpoint == "" {
		return fmt.Errorf("%w: --freeze needs the daemon (snapfs mount): the filesystem to freeze lives in a disk file under its mount", rowstore.ErrInvalid)
	}
	clean, err := filepath.EvalSymlinks(mp)
	if err != nil {
		return fmt.Errorf("%w: freeze %s: %w", rowstore.ErrInvalid, mp, err)
	}
	source, err := mountSource(clean)
	if err != nil {
		return fmt.Errorf("%w: freeze %s: %w", rowstore.ErrInvalid, mp, err)
	}
	dev := strings.TrimPrefix(source, "/dev/")
	if !strings.HasPrefix(dev, "loop") || strings.Contains(dev, "/") {
		return fmt.Errorf("%w: freeze %s: mounted from %s, not from a loop device of a snapfs disk", rowstore.ErrInvalid, mp, source)
	}
	if i := strings.LastIndexByte(dev, 'p'); i > len("loop") {
		dev = dev[:i] // loop0p1: a partition of loop0
	}
	b, err := os.ReadFile(filepath.Join("/sys/block", dev, "loop", "backing_file"))
	if err != nil {
		return fmt.Errorf("%w: freeze %s: backing file of %s: %w", rowstore.ErrInvalid, mp, source, err)
	}
	backing := strings.TrimSpace(string(b))
	if rb, err := filepath.EvalSymlinks(backing); err == nil {
		backing = rb
	}
	root := l.mountpoint
	if r, err := filepath.EvalSymlinks(root); err == nil {
		root = r
	}
	for _, d := range disks {
		if backing == filepath.Join(root, "disks", d) {
			return nil
		}
	}
	return fmt.Errorf("%w: freeze %s: its filesystem is in %s, not in a disk of this snapshot (%s)", rowstore.ErrInvalid, mp, backing, strings.Join(disks, ", "))
}

// mountSource returns the source device of the filesystem mounted exactly
// at dir (the last such mount in /proc/self/mountinfo).
func mountSource(dir string) (string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	src := ""
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		// id parent major:minor root mountpoint options [optional...] - fstype source superopts
		if len(f) < 10 || unescapeMount(f[4]) != dir {
			continue
		}
		for i := 5; i < len(f)-2; i++ {
			if f[i] == "-" {
				src = f[i+2]
				break
			}
		}
	}
	if src == "" {
		return "", fmt.Errorf("not a mount point")
	}
	return src, nil
}

// unescapeMount undoes the octal escapes of mountinfo (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var out strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + byte(c-'0')
			}
			if ok {
				out.WriteByte(v)
				i += 3
				continue
			}
		}
		out.WriteByte(s[i])
	}
	return out.String()
}
