package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
	"github.com/snapfs/snapfs/cmd/snapfs/internal/browse"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/exitcode"
	"github.com/snapfs/snapfs/cmd/snapfs/internal/metrics"
	"github.com/snapfs/snapfs/cmd/snapfs/internal/service"
	"github.com/snapfs/snapfs/fs"
	"github.com/snapfs/snapfs/rowstore"
)

// LockName is the daemon's lock file inside the store: the daemon holds an
// exclusive flock on it from before it opens the store until after it closed
// it, so "the daemon has exited" is "the lock can be taken" (WaitExited).
const LockName = "daemon.lock"

// Config configures Run.
type Config struct {
	Store      string // store directory (absolute)
	Mountpoint string // where to mount the namespace (absolute)
	Logger     *slog.Logger
	// Ready is called once the mount and the control socket are serving.
	Ready func(st service.Status)
	// RemoveMountpoint: the command created the mountpoint directory; the
	// daemon removes it (when empty) once unmounted.
	RemoveMountpoint bool
	// Store options (tests shorten intervals); Logger is filled in.
	StoreOptions rowstore.Options
	// AllowOther lets other users use the mount as the modes allow
	// (allow_other, default_permissions); default: only the mounting user.
	AllowOther bool
	// Files configures the .files directories (MaxOpen, Idle; 0: defaults).
	Files browse.Options
	// NewMetrics, when set, makes the daemon's metrics once the store is
	// open; they count its I/O and jobs and are served on MetricsListener
	// for the daemon's life (mount --metrics).
	NewMetrics      func(metrics.Source) *metrics.Metrics
	MetricsListener net.Listener
	// RegionCache bounds the on-disk cache of the blocks read from regions
	// through M/regions/ (mount --region-cache; 0: the default, 1 GiB).
	RegionCache int64
	// Keys are the mount's --key-file keys, tried on every encrypted disk
	// before the mount is made (keys.go): none opening any of the store's
	// encrypted disks is ErrWrongKey, nothing mounted; a key that opens
	// nothing otherwise is passed to Warn.
	Keys []*rowstore.Key
	// Warn, when set, gets each warning the user should see (not only the
	// log), before Ready is called.
	Warn func(msg string)
}

// Run is the daemon: it opens the store, mounts the namespace, serves the
// control socket, and on SIGINT, SIGTERM, a Shutdown request or an external
// unmount flushes everything, unmounts and returns nil. SIGHUP is logged
// and ignored. Errors before Ready
// is called mean nothing was mounted.
func Run(ctx context.Context, cfg Config) (err error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// SIGHUP (a closed terminal, kill -HUP as "reload") would end the
	// process at once, as SIGKILL does: the mount dead (ENOTCONN), loop
	// devices on its disks failing. The daemon keeps serving and says so.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer func() { signal.Stop(hup); close(hup) }()
	go func() {
		for range hup {
			log.Warn("SIGHUP ignored: the daemon keeps serving; stop it with snapfs umount (or SIGTERM)")
		}
	}()
	if cfg.MetricsListener != nil {
		defer cfg.MetricsListener.Close()
	}
	if fi, err := os.Stat(cfg.Mountpoint); err != nil {
		return fmt.Errorf("%w: mountpoint: %v", rowstore.ErrNotFound, err)
	} else if !fi.IsDir() {
		return fmt.Errorf("%w: mountpoint %s is not a directory", rowstore.ErrInvalid, cfg.Mountpoint)
	}
	if len(service.SocketPath(cfg.Store)) >= 108 {
		return fmt.Errorf("%w: store path %s is too long for a unix socket (control.sock path must be under 108 bytes)", rowstore.ErrInvalid, cfg.Store)
	}
	if c, st, err := service.Dial(ctx, cfg.Store); err == nil {
		c.Close()
		if st.Mountpoint == "" || service.MountedAt(st.Mountpoint) {
			return fmt.Errorf("%w: store %s is already served by daemon pid %d, mounted at %s", rowstore.ErrBusy, cfg.Store, st.PID, st.Mountpoint)
		}
		// Its mount is gone: a daemon stopping (SIGTERM, umount) unmounts
		// before it has flushed and closed the store, and answers until
		// then; a mount right after it (a restart) waits for it, as
		// lockFile does. Still there after lockWait: detached from outside.
		wctx, cancel := context.WithTimeout(ctx, lockWait)
		werr := WaitExited(wctx, cfg.Store)
		cancel()
		if werr != nil {
			return fmt.Errorf("%w: store %s is still served by daemon pid %d, whose mount at %s was detached from outside (umount -l) while files are open through it (loop devices, VMs, open disks: snapfs status lists them); close them and the daemon flushes and stops by itself, then mount again", rowstore.ErrBusy, cfg.Store, st.PID, st.Mountpoint)
		}
	}
	// Nothing is created in a directory that is not a store (no daemon.lock
	// left behind by a mount of the wrong directory).
	if _, err := os.Stat(filepath.Join(cfg.Store, "superblock")); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: %s is not a snapfs store (run snapfs init)", rowstore.ErrNotFound, cfg.Store)
		}
		return fmt.Errorf("store %s: %w", cfg.Store, err)
	}
	lock, err := lockFile(filepath.Join(cfg.Store, LockName))
	if err != nil {
		return err
	}
	defer lock.Close() // releases the flock: WaitExited returns

	opts := cfg.StoreOptions
	opts.Logger = log
	// The metrics are made once the store is open; every gc (background
	// too) reaches them through mref.
	var mref atomic.Pointer[metrics.Metrics]
	onGC := opts.OnGC
	opts.OnGC = func(st rowstore.GCStats, err error) {
		mref.Load().GCDone(st, err)
		if onGC != nil {
			onGC(st, err)
		}
	}
	st, err := service.OpenStore(cfg.Store, opts)
	if err != nil {
		return err
	}
	local := service.NewLocal(st, cfg.Store)
	local.SetLogger(log)
	local.CleanRegionLeftovers() // a killed restore's temporary disk, before the mount lists it
	local.CleanScratch()         // what snapshot mounts of a killed daemon left
	defer func() {
		if cerr := local.Close(); cerr != nil { // the region manager, then the store
			log.Error("close store", "err", cerr)
			if err == nil {
				err = fmt.Errorf("close store: %w", cerr)
			}
		} else {
			log.Info("store closed", "store", cfg.Store)
		}
	}()
	warnings, err := unlockKeys(st, cfg.Keys, log)
	if w := fileLimitWarning(); w != "" {
		log.Warn(w)
		warnings = append(warnings, w)
	}
	if err != nil {
		return err
	}
	cfg.Keys = nil // the store keeps data keys, not key files
	// A daemon killed mid-sync left its region lock: this host knows its
	// process is gone, so it removes it now rather than letting it block
	// the other hosts until it goes stale (in the background: a region's
	// stores may be slow or unreachable; done before the store closes).
	deadCtx, stopDead := context.WithTimeout(context.Background(), 2*time.Minute)
	deadDone := make(chan struct{})
	go func() { defer close(deadDone); local.RemoveDeadRegionLocks(deadCtx) }()
	defer func() { stopDead(); <-deadDone }()

	var m *metrics.Metrics
	if cfg.NewMetrics != nil {
		m = cfg.NewMetrics(source{local})
		mref.Store(m)
	}
	metricsAddr := ""
	if m != nil && cfg.MetricsListener != nil {
		mctx, stopMetrics := context.WithCancel(context.Background())
		defer stopMetrics()
		go m.Serve(mctx, cfg.MetricsListener)
		metricsAddr = cfg.MetricsListener.Addr().String()
		log.Info("metrics serving", "addr", metricsAddr)
	}
	svc := newObserved(local, m, metricsAddr)

	fsName := "snapfs"
	if !strings.ContainsAny(cfg.Store, " ,\t\n\\") {
		fsName = cfg.Store
	}
	fcfg := cfg.Files
	fcfg.Logger = log
	// M/regions/ (regions.go): the bound of its block cache.
	local.SetRegionCache(cfg.RegionCache)
	filesMgr := local.EnableFiles(cfg.Mountpoint, fcfg) // .files: released before every unmount, closed with local
	srv, err := fs.Mount(cfg.Mountpoint, fs.Options{Backend: instrument(newBackend(local), m), Logger: log, FsName: fsName, Errno: exitcode.Errno,
		Files: files{b: newBackend(local), m: filesMgr}, AllowOther: cfg.AllowOther, Regions: regions{l: local},
		StatfsPath: cfg.Store})
	if err != nil {
		return err
	}
	unmounted := make(chan struct{})
	go func() { srv.Wait(); close(unmounted) }()
	var umountMu sync.Mutex
	unmount := func() error {
		umountMu.Lock()
		defer umountMu.Unlock()
		select {
		case <-unmounted:
			return nil
		default:
		}
		local.ReleaseFiles() // their loop devices hold the mount's disk files
		// The kernel may still be releasing files closed just before.
		var err error
		for i := 0; i < 20; i++ {
			if err = srv.Unmount(); err == nil {
				<-unmounted
				log.Info("unmounted", "mountpoint", cfg.Mountpoint)
				return nil
			}
			if !errors.Is(err, syscall.EBUSY) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if errors.Is(err, syscall.EBUSY) {
			return fmt.Errorf("%w: %s is in use (open files, loop devices or snapshot mounts on its disks); release them and try again", rowstore.ErrBusy, cfg.Mountpoint)
		}
		if errors.Is(err, syscall.EINVAL) {
			// Not a mount point any more, yet the kernel still talks to us:
			// it was detached from outside (umount -l) while files were open
			// through it. Their last close ends the connection (unmounted),
			// maybe at once if they were our own .files just released.
			select {
			case <-unmounted:
				log.Info("unmounted", "mountpoint", cfg.Mountpoint)
				return nil
			case <-time.After(time.Second):
			}
			return fmt.Errorf("%w: the mount at %s was detached from outside (umount -l) while files are still open through it (loop devices, VMs, open disks: snapfs status lists them); close them and the daemon flushes and stops by itself", rowstore.ErrBusy, cfg.Mountpoint)
		}
		return err
	}
	defer func() {
		if uerr := unmount(); uerr != nil {
			log.Error("unmount at exit failed; detaching lazily", "mountpoint", cfg.Mountpoint, "err", uerr)
			_ = syscall.Unmount(cfg.Mountpoint, syscall.MNT_DETACH)
		}
		if cfg.RemoveMountpoint {
			if rerr := os.Remove(cfg.Mountpoint); rerr != nil {
				log.Warn("remove the mountpoint snapfs created", "mountpoint", cfg.Mountpoint, "err", rerr)
			}
		}
	}()

	stop := make(chan struct{})
	var stopOnce sync.Once
	local.SetDaemon(cfg.Mountpoint, service.Hooks{
		NamesChanged: srv.InvalidateNames,
		DiskChanged:  srv.InvalidateDisk,
		Shutdown: func(context.Context) error {
			if err := st.Sync(); err != nil {
				return err
			}
			if err := unmount(); err != nil {
				return err
			}
			stopOnce.Do(func() { close(stop) })
			return nil
		},
	})

	sock := service.SocketPath(cfg.Store)
	_ = os.Remove(sock) // stale: we hold the store, so nobody serves it
	// Created 0600 from the start (umask), not chmod'ed after: no window in
	// which another user could connect.
	oldMask := syscall.Umask(0o077)
	ln, err := net.Listen("unix", sock)
	syscall.Umask(oldMask)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("control socket: %w", err)
	}
	ln = service.PeerCredListener(ln, log) // only our uid (and root), whatever the socket's mode
	// Requests run under jobCtx: shutting down cancels long jobs (sync,
	// restore, check: all resumable) and waits for them to return before the
	// store closes. The cause tells their clients why (exit 130, run again).
	jobCtx, cancelCause := context.WithCancelCause(context.Background())
	cancelJobs := func() { cancelCause(service.ErrDaemonStopping) }
	defer cancelJobs()
	hs := &http.Server{Handler: service.Handler(svc, log), ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext: func(net.Listener) context.Context { return jobCtx }}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("control socket", "err", err)
		}
	}()
	defer func() {
		cancelJobs()
		sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := hs.Shutdown(sctx); err != nil {
			log.Warn("control socket: requests still running at shutdown", "err", err)
		}
		_ = os.Remove(sock)
	}()

	if cfg.Warn != nil {
		for _, w := range warnings {
			cfg.Warn(w)
		}
	}
	status, _ := svc.Status(ctx)
	log.Info("serving", "store", cfg.Store, "mountpoint", cfg.Mountpoint, "socket", sock, "pid", status.PID)
	if cfg.Ready != nil {
		cfg.Ready(status)
	}
	// systemd (Type=notify): ready now; the watchdog is pinged while the
	// mount answers; STOPPING when the daemon begins to stop.
	notify(log, fmt.Sprintf("READY=1\nMAINPID=%d\nSTATUS=serving %s at %s", os.Getpid(), cfg.Store, cfg.Mountpoint))
	defer notify(log, "STOPPING=1")
	wdCtx, stopWatchdog := context.WithCancel(context.Background())
	defer stopWatchdog()
	go watchdog(wdCtx, log, cfg.Mountpoint)
	schedDone := make(chan struct{})
	go func() { defer close(schedDone); runScheduler(jobCtx, local, log, m) }() // the policy scheduler (scheduler.go)
	defer func() { cancelJobs(); <-schedDone }()

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	for {
		select {
		case <-stop:
			log.Info("shutdown requested")
			return nil
		case <-unmounted:
			log.Info("unmounted from outside", "mountpoint", cfg.Mountpoint)
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case s := <-sigs:
			log.Info("signal", "signal", s.String())
			if err := st.Sync(); err != nil {
				log.Error("sync", "err", err)
			}
			if err := unmount(); err != nil {
				log.Error("cannot stop yet", "err", err)
				continue
			}
			stopDelayForTest()
			return nil
		}
	}
}

// lockWait is how long lockFile waits for a held lock. Run asks it only
// after no daemon answered on the control socket: the holder is a daemon
// that was killed and is still exiting (a SIGKILLed daemon holds its
// locks until the kernel has torn it down; a restart loop such as
// systemd's Restart= mounts again at once), or one still starting.
var lockWait = 5 * time.Second

// lockFile creates and exclusively flocks path, waiting up to lockWait
// for another process to release it.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s is not a snapfs store (run snapfs init)", rowstore.ErrNotFound, filepath.Dir(path))
		}
		return nil, fmt.Errorf("daemon lock: %w", err)
	}
	for deadline := time.Now().Add(lockWait); ; time.Sleep(50 * time.Millisecond) {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("%w: another snapfs daemon holds %s (waited %s for it to exit)", rowstore.ErrBusy, path, lockWait)
		}
	}
}

// stopDelayForTest sleeps between the unmount and the store's close when
// SNAPFS_TEST_STOP_DELAY names a duration: the integration tests' way to
// hold a stopping daemon in the window a restart's mount must wait out
// (TestMountRightAfterSIGTERM).
func stopDelayForTest() {
	if d, err := time.ParseDuration(os.Getenv("SNAPFS_TEST_STOP_DELAY")); err == nil && d > 0 {
		time.Sleep(d)
	}
}

// WaitExited waits until no daemon holds the store's lock (it has closed the
// store and is exiting), or ctx ends.
func WaitExited(ctx context.Context, store string) error {
	f, err := os.OpenFile(filepath.Join(store, LockName), os.O_RDONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("daemon lock: %w", err)
	}
	defer f.Close()
	for {
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err == nil {
			_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the daemon to exit: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// notify sends state to systemd when it started the daemon (NOTIFY_SOCKET).
func notify(log *slog.Logger, state string) {
	if _, err := sd.SdNotify(false, state); err != nil {
		log.Warn("sd_notify", "err", err)
	}
}

// watchdog pings systemd's watchdog (WatchdogSec=) at half its interval,
// each time after the mount answered a directory listing: a hung FUSE
// server stops the pings and systemd restarts the service.
func watchdog(ctx context.Context, log *slog.Logger, mountpoint string) {
	every, err := sd.SdWatchdogEnabled(false)
	if err != nil || every <= 0 {
		return
	}
	t := time.NewTicker(every / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		answered := make(chan error, 1)
		go func() {
			_, err := os.ReadDir(filepath.Join(mountpoint, "disks"))
			answered <- err
		}()
		select {
		case err := <-answered:
			if err != nil {
				log.Warn("watchdog: the mount does not answer; not pinging", "err", err)
				continue
			}
			notify(log, "WATCHDOG=1")
		case <-time.After(every / 2):
			log.Error("watchdog: the mount did not answer in time; not pinging", "after", every/2)
		case <-ctx.Done():
			return
		}
	}
}

// minFiles is the open file limit below which the daemon warns at start: it
// keeps a descriptor per segment file (about a hundred on a large store),
// per disk being written and per index table, plus what .files and snapshot
// mounts open.
const minFiles = 1024

// fileLimitWarning says when the open file limit (RLIMIT_NOFILE, which Go
// has raised to its hard limit) is below minFiles: writes then fail with
// "too many open files" once enough disks are written (seen at 64 with 7).
func fileLimitWarning() string {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur >= minFiles {
		return ""
	}
	return fmt.Sprintf("the open file limit is %d: with fewer than %d, writes to disks can fail with \"too many open files\" (the daemon keeps a descriptor per segment file and per disk being written); raise it (ulimit -n, LimitNOFILE=)", rl.Cur, minFiles)
}
