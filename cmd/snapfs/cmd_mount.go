package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/browse"
	"github.com/snapfs/snapfs/cmd/snapfs/internal/daemon"
	"github.com/snapfs/snapfs/cmd/snapfs/internal/exitcode"
	"github.com/snapfs/snapfs/cmd/snapfs/internal/metrics"
	"github.com/snapfs/snapfs/cmd/snapfs/internal/service"
	"github.com/snapfs/snapfs/rowstore"
	"github.com/snapfs/snapfs/rowstore/vfs"
)

// readyFDEnv names the file descriptor on which a daemon started by
// mount --background reports readiness to its parent: one line, "ok PID" or
// "error CODE MESSAGE", after a "warn MESSAGE" line per warning the user
// must see (a key file that opens no encrypted disk).
const readyFDEnv = "SNAPFS_READY_FD"

// createdEnv tells a daemon started by mount --background that its parent
// created the mountpoint (the daemon removes it when it unmounts).
const createdEnv = "SNAPFS_CREATED_MOUNTPOINT"

// LogName is the daemon's log file in the store when it runs in the background.
const LogName = "snapfs.log"

func mountCommand(st *state) *cli.Command {
	return &cli.Command{
		Name: "mount",
		Usage: "mount the store at MOUNTPOINT and serve it (the daemon); runs in the foreground until " +
			"snapfs umount, SIGINT or SIGTERM",
		ArgsUsage: "MOUNTPOINT",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "background", Usage: "return once the mount is ready; the daemon logs to <store>/" + LogName},
			&cli.DurationFlag{Name: "files-idle", Value: browse.DefaultIdle,
				Usage: "release the filesystem of a .files directory unused for this long"},
			&cli.IntFlag{Name: "files-max", Value: browse.DefaultMaxOpen,
				Usage: "at most this many .files filesystems open at once (least recently used released first)"},
			&cli.BoolFlag{Name: "force", Usage: "mount even on a directory that is not empty or is already a mount point (hiding what is there)"},
			&cli.StringFlag{Name: "metrics", Usage: "serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9477"},
			&cli.StringFlag{Name: "pprof", Usage: "serve net/http/pprof (CPU, heap, block and mutex profiles) on this address, e.g. 127.0.0.1:6060; " +
				"turns on block and mutex profiling"},
			&cli.StringSliceFlag{Name: "key-file", EnvVars: []string{"SNAPFS_KEY_FILE"},
				Usage: "unlock the encrypted disks this key file opens (repeatable); the others stay locked. A key file that opens " +
					"nothing is a warning on stderr; when the store has encrypted disks and no key file given opens any, nothing is mounted (exit 13)"},
			insecureKeyFlag,
			&cli.BoolFlag{Name: "allow-other", Usage: "let other users use the mount, as the file modes allow " +
				"(allow_other with default_permissions; needs user_allow_other in /etc/fuse.conf for non-root); default: only you"},
			&cli.StringFlag{Name: "region-cache", Value: "1G", Usage: "bound of the on-disk cache (in the store) of the blocks read from regions through M/regions/ (e.g. 512M, 4G)"},
			noCleanerFlag,
		},
		Action: func(c *cli.Context) (retErr error) {
			a, err := args(c, "MOUNTPOINT")
			if err != nil {
				return err
			}
			if err := checkMountValues(c); err != nil {
				return err // before anything is made
			}
			store, err := storeDir(c)
			if err != nil {
				return err
			}
			log, err := logger(c, st.stderr)
			if err != nil {
				return err
			}
			keys, err := mountKeys(c) // before anything is made: a bad key file changes nothing
			if err != nil {
				return err
			}
			if err := clearDeadMount(a[0], store, log); err != nil {
				return err
			}
			if err := checkOutsideStore(a[0], store); err != nil { // after: a dead mount's path cannot be resolved
				return err
			}
			_, lerr := os.Lstat(a[0])
			mp, rmdir, err := existingDir(a[0])
			if err != nil {
				return err
			}
			created := os.Getenv(createdEnv) == "1" // set by the parent of a --background child
			if fd := os.Getenv(readyFDEnv); fd != "" {
				return runChild(c, store, mp, fd, created, keys) // the parent cleans up
			}
			created = created || errors.Is(lerr, os.ErrNotExist)
			if !created && !c.Bool("force") {
				if err := checkMountpoint(mp); err != nil {
					return err
				}
			}
			defer func() {
				if retErr != nil {
					rmdir()
				}
			}()
			if c.Bool("background") {
				return startBackground(c, st, store, mp, created)
			}
			if err := startPprof(c, log); err != nil {
				return err
			}
			cfg := daemon.Config{Store: store, Mountpoint: mp, Logger: log, RemoveMountpoint: created, Files: filesOptions(c),
				AllowOther: c.Bool("allow-other"), StoreOptions: rowstore.Options{NoCleaner: c.Bool("no-cleaner")},
				Keys: keys, Warn: func(msg string) { fmt.Fprintf(st.stderr, "snapfs: warning: %s\n", msg) }}
			if cfg.RegionCache, err = parseSize("--region-cache", c.String("region-cache")); err != nil {
				return err
			}
			if err := withMetrics(c, log, &cfg); err != nil {
				return err
			}
			limitMemory()
			return daemon.Run(context.Background(), cfg)
		},
	}
}

// runChild is the daemon started by mount --background: it reports
// readiness, or the error that stopped it, on the inherited pipe.
func runChild(c *cli.Context, store, mp, fdStr string, created bool, keys []*rowstore.Key) error {
	fd, err := strconv.Atoi(fdStr)
	if err != nil {
		return usagef("%s=%q", readyFDEnv, fdStr)
	}
	pipe := os.NewFile(uintptr(fd), "ready")
	os.Unsetenv(readyFDEnv)
	log, _ := logger(c, os.Stderr)
	ready := false
	os.Unsetenv(createdEnv)
	cfg := daemon.Config{Store: store, Mountpoint: mp, Logger: log, RemoveMountpoint: created, Files: filesOptions(c),
		AllowOther: c.Bool("allow-other"), StoreOptions: rowstore.Options{NoCleaner: c.Bool("no-cleaner")}, Keys: keys,
		Warn: func(msg string) { fmt.Fprintf(pipe, "warn %s\n", strings.ReplaceAll(msg, "\n", " ")) },
		Ready: func(s service.Status) {
			ready = true
			fmt.Fprintf(pipe, "ok %d\n", s.PID)
			pipe.Close()
		}}
	err = startPprof(c, log)
	if err == nil {
		cfg.RegionCache, err = parseSize("--region-cache", c.String("region-cache"))
	}
	limitMemory()
	if err == nil {
		err = withMetrics(c, log, &cfg)
	}
	if err == nil {
		err = daemon.Run(context.Background(), cfg)
	}
	if !ready {
		msg := "exited"
		if err != nil {
			msg = oneLine(err)
		}
		fmt.Fprintf(pipe, "error %d %s\n", exitcode.Of(err), msg)
		pipe.Close()
	}
	return err
}

// startBackground re-executes this command detached (setsid) and waits for
// the child's readiness line on a pipe: no sleeping, no guessing.
func startBackground(c *cli.Context, st *state, store, mp string, created bool) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	if _, err := os.Stat(store); err != nil {
		return fmt.Errorf("%w: store %s does not exist (run snapfs init)", rowstore.ErrNotFound, store)
	}
	logPath := filepath.Join(store, LogName)
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("daemon log: %w", err)
	}
	defer logf.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("pipe: %w", err)
	}
	defer r.Close()
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(os.Environ(), readyFDEnv+"=3", "SNAPFS_STORE="+store)
	if created {
		cmd.Env = append(cmd.Env, createdEnv+"=1")
	}
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return fmt.Errorf("start daemon: %w", err)
	}
	w.Close()
	// "warn MSG" lines (a key file that opens nothing) come before the
	// readiness line: printed on stderr, and in --json's result.
	br := bufio.NewReader(r)
	var warnings []string
	line, _ := br.ReadString('\n')
	line = strings.TrimSpace(line)
	for strings.HasPrefix(line, "warn ") {
		w := strings.TrimPrefix(line, "warn ")
		warnings = append(warnings, w)
		fmt.Fprintf(st.stderr, "snapfs: warning: %s\n", w)
		line, _ = br.ReadString('\n')
		line = strings.TrimSpace(line)
	}
	switch {
	case strings.HasPrefix(line, "ok "):
		_ = cmd.Process.Release()
		pid := strings.TrimPrefix(line, "ok ")
		return newPrinter(c, st).result("mount", struct {
			Store      string   `json:"store"`
			Mountpoint string   `json:"mountpoint"`
			PID        string   `json:"pid"`
			Log        string   `json:"log"`
			Warnings   []string `json:"warnings,omitempty"`
		}{store, mp, pid, logPath, warnings}, "mounted %s at %s (daemon pid %s, log %s)", store, mp, pid, logPath)
	case strings.HasPrefix(line, "error "):
		_ = cmd.Wait()
		f := strings.SplitN(strings.TrimPrefix(line, "error "), " ", 2)
		code, _ := strconv.Atoi(f[0])
		msg := ""
		if len(f) > 1 {
			msg = f[1]
		}
		return &childError{code: code, msg: msg}
	default:
		werr := cmd.Wait()
		return fmt.Errorf("daemon exited before the mount was ready (%v); see %s", werr, logPath)
	}
}

// childError is the error a background daemon reported, with its exit code.
type childError struct {
	code int
	msg  string
}

func (e *childError) Error() string { return e.msg }

// Unwrap maps the child's exit code back to the sentinel, so the parent
// exits with the same code.
func (e *childError) Unwrap() error { return exitcode.Sentinel(e.code) }

func umountCommand(st *state) *cli.Command {
	return &cli.Command{
		Name: "umount",
		Usage: "ask the daemon serving MOUNTPOINT to flush everything, unmount and exit, and wait for it; " +
			"a stale mount whose daemon died is removed",
		ArgsUsage: "MOUNTPOINT",
		Action: func(c *cli.Context) error {
			a, err := args(c, "MOUNTPOINT")
			if err != nil {
				return err
			}
			mp, err := cleanPath(a[0])
			if err != nil {
				return err
			}
			store, err := storeDir(c)
			if err != nil {
				return err
			}
			// The mount's source names its store: use it unless --store is given.
			var snapfsMount bool
			var source string
			for _, m := range mounts() {
				if m.target == mp && m.fstype == "fuse.snapfs" {
					snapfsMount, source = true, m.source
					if !c.IsSet("store") && filepath.IsAbs(m.source) {
						store = m.source
					}
				}
			}
			ctx := context.Background()
			client, status, err := service.Dial(ctx, store)
			if err != nil {
				if errors.Is(err, os.ErrPermission) {
					return err // another user's store: not ours to judge dead
				}
				if !snapfsMount {
					return fmt.Errorf("%w: no snapfs daemon serves %s (store %s)", exitcode.ErrNoDaemon, mp, store)
				}
				// Only a dead mount is removed: one whose server is gone
				// (ENOTCONN). A live one is another store's (--store or
				// SNAPFS_STORE names a store other than the mount's), or
				// not ours to reach (another user's): removing it would
				// pull a working mount from under its users (trial14).
				if err := mountDead(mp); err != nil { // deadmount.go
					if errors.Is(err, errMountAlive) {
						return fmt.Errorf("%w: no daemon of store %s serves %s: it is the live mount of store %s (snapfs --store %s umount %s); nothing was unmounted",
							exitcode.ErrNoDaemon, store, mp, source, source, mp)
					}
					return fmt.Errorf("umount %s: %w; nothing was unmounted", mp, err)
				}
				// The daemon died: the kernel still holds its dead mount.
				if err := removeDeadMount(mp); err != nil { // deadmount.go
					return fmt.Errorf("remove stale mount %s: %w", mp, err)
				}
				return newPrinter(c, st).result("umount", map[string]string{"mountpoint": mp, "stale": "true"},
					"no daemon was serving %s; removed the stale mount", mp)
			}
			defer client.Close()
			if status.Mountpoint != mp {
				return fmt.Errorf("%w: the daemon of store %s is mounted at %s, not at %s", rowstore.ErrNotFound, store, status.Mountpoint, mp)
			}
			if err := client.Shutdown(ctx); err != nil {
				if errors.Is(err, rowstore.ErrBusy) {
					if h := service.Holders(mp, true); h != "" {
						return fmt.Errorf("%w; held by %s", err, h)
					}
				}
				return err
			}
			wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			defer cancel()
			if err := daemon.WaitExited(wctx, store); err != nil {
				return err
			}
			return newPrinter(c, st).result("umount", map[string]string{"mountpoint": mp, "store": store},
				"unmounted %s", mp)
		},
	}
}

// startPprof serves net/http/pprof on the address of --pprof, if given, for
// the life of the daemon process, and only then turns on block and mutex
// profiling (they cost a little on every contended lock). The listener is
// opened here so that a busy or bad address fails the mount at once.
func startPprof(c *cli.Context, log *slog.Logger) error {
	addr := c.String("pprof")
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return usagef("--pprof %s: %v", addr, err)
	}
	runtime.SetBlockProfileRate(int(10 * time.Microsecond))
	runtime.SetMutexProfileFraction(10)
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("pprof server stopped", "addr", addr, "err", err)
		}
	}()
	log.Info("pprof serving", "addr", ln.Addr().String())
	return nil
}

// mountKeys loads the mount's key files (--key-file, SNAPFS_KEY_FILE).
func mountKeys(c *cli.Context) ([]*rowstore.Key, error) {
	var keys []*rowstore.Key
	for _, p := range c.StringSlice("key-file") {
		k, err := rowstore.LoadKeyFile(p, c.Bool("allow-insecure-key-file"))
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// checkMountValues refuses values of mount's flags that the daemon would
// take as "not given" (the default), as policy flags do: --files-max and
// --files-idle below 1, --region-cache 0 or a size that is not one.
func checkMountValues(c *cli.Context) error {
	if n := c.Int("files-max"); n < 1 {
		return usagef("--files-max %d: want at least 1 .files filesystem open at once, or leave --files-max out (%d)", n, browse.DefaultMaxOpen)
	}
	if d := c.Duration("files-idle"); d <= 0 {
		return usagef("--files-idle %s: want a positive duration (e.g. 30s), or leave --files-idle out (%s)", d, browse.DefaultIdle)
	}
	n, err := parseSize("--region-cache", c.String("region-cache"))
	if err != nil {
		return err
	}
	if n == 0 {
		return usagef("--region-cache 0: want a positive size (e.g. 256M), or leave --region-cache out (1G)")
	}
	return nil
}

// filesOptions are the .files settings of mount (--files-idle, --files-max).
func filesOptions(c *cli.Context) browse.Options {
	return browse.Options{Idle: c.Duration("files-idle"), MaxOpen: c.Int("files-max")}
}

// checkMountpoint refuses a mountpoint that is already a mount point or is
// not empty: mounting there would hide what is there (a store's files, or a
// running mount). --force skips it.
func checkMountpoint(mp string) error {
	for _, m := range mounts() {
		if m.target == mp {
			return fmt.Errorf("%w: %s is already a mount point (%s of %s); unmount it, choose another directory, or use --force", rowstore.ErrBusy, mp, m.fstype, m.source)
		}
	}
	f, err := os.Open(mp)
	if err != nil {
		return fmt.Errorf("mountpoint %s: %w", mp, err)
	}
	defer f.Close()
	names, _ := f.Readdirnames(1)
	if len(names) > 0 {
		return fmt.Errorf("%w: mountpoint %s is not empty (it holds %s, ...): the mount would hide it; choose an empty directory, or use --force", rowstore.ErrBusy, mp, names[0])
	}
	return nil
}

// checkOutsideStore refuses, even with --force, a mountpoint inside the
// store's directory or one the store is inside of. Trial 10: mounted at
// STORE/files (accepted: a new, empty directory), the mount hid the
// directory the daemon opens .files in, and every <disk>.files/ was EIO;
// the store's other directories (policies, regions, caches) are made on
// first use and would be hidden the same way; a mount over a parent of the
// store (--force) hides the store itself.
func checkOutsideStore(mountpoint, store string) error {
	mp, err := vfs.RealPath(mountpoint)
	if err != nil {
		return fmt.Errorf("mountpoint %s: %w", mountpoint, err)
	}
	st, err := vfs.RealPath(store)
	if err != nil {
		return fmt.Errorf("store %s: %w", store, err)
	}
	switch {
	case vfs.Contains(st, mp):
		return fmt.Errorf("%w: mountpoint %s is inside the store's directory %s, where the store keeps its own files: choose a directory outside it", rowstore.ErrInvalid, mountpoint, store)
	case vfs.Contains(mp, st):
		return fmt.Errorf("%w: the store %s is inside mountpoint %s: the mount would hide it; choose a directory that does not hold the store", rowstore.ErrInvalid, store, mountpoint)
	}
	return nil
}

// withMetrics sets up --metrics: the listener is opened here, so that a busy
// or bad address fails the mount at once.
func withMetrics(c *cli.Context, log *slog.Logger, cfg *daemon.Config) error {
	addr := c.String("metrics")
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return usagef("--metrics %s: %v", addr, err)
	}
	cfg.MetricsListener = ln
	cfg.NewMetrics = func(src metrics.Source) *metrics.Metrics { return metrics.New(src, log) }
	return nil
}

// daemonMemoryLimit is the Go runtime's soft memory limit for the daemon
// (unless GOMEMLIMIT is set): the garbage collector works harder as the heap
// nears it instead of letting it grow to twice the live data, so the
// daemon's resident size stays flat however much is written. Issue 8: at
// most 256 MiB resident after 16 GiB written, and flat beyond.
//
// The budget (scripts/bench-memory.sh measures it: a 16 GiB disk of 16 KiB
// blocks written twice, snapshots, random 4 KiB rewrites, a restart):
//   - file-backed, outside this limit, 20 to 45 MiB: the binary's text (19
//     MiB), the index's memtable logs (up to 8 MiB each, as they fill) and
//     its SST tables, which package index keeps released (0 to 13 MiB
//     measured; they were 100 MiB at 16 GiB written and 213 at 32, growing
//     with the index: see "Memory" in package index);
//   - the Go heap, within this limit: the cleaner's live map (rowstore
//     liveMapMax: 2^20 versions, 90 to 135 MiB at 16 GiB of 16 KiB blocks,
//     dropped past it), the block maps (16 MiB a disk at most), the
//     write-back cache (32 MiB a disk), the index's memtables and table
//     builders (index heapBudget: 80 MiB at worst, 15 to 45 measured), FUSE
//     buffers (4 to 12 MiB).
//
// The limit must sit above what is live, with room: a live heap at the
// limit makes the collector run without end. It did with 128 MiB and a
// map of 208 bytes a version (~44 collections a second, 20-25 % of a core,
// idle included). At 16 GiB written the live map is at its bound and the
// live heap near this limit (175 MiB in use; hundreds of collections while
// it lasts), so RSS peaks there. Past 2^20 versions the map is dropped and
// the heap in use falls to 70-140 MiB. Measured (7 Dec 2026, load 14-16):
// peak RSS 231 MiB after 16 GiB written, 241 after 32 GiB, 217 10 s after
// a restart; file-backed 19-31 MiB throughout. Lowering this limit would
// not lower that peak, only burn CPU; a smaller liveMapMax or map entry
// would.
const daemonMemoryLimit = 192 << 20

func limitMemory() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(daemonMemoryLimit)
	}
}

// noCleanerFlag is mount's hidden --no-cleaner (also SNAPFS_BENCH_NO_CLEANER=1):
// the background cleaner does not run, so the segments grow with every
// overwrite until the periodic GC. For benchmarks of what the cleaner costs
// (scripts/bench-space.sh) only.
var noCleanerFlag = &cli.BoolFlag{Name: "no-cleaner", Hidden: true, EnvVars: []string{"SNAPFS_BENCH_NO_CLEANER"},
	Usage: "benchmarks only: no background cleaner (the segments grow until the periodic GC)"}
