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

	"github.com/snapfs/snapfs/cmd/snapfs/internal/daemon"
	"github.com/snapfs/snapfs/cmd/snapfs/internal/exitcode"
	"github.com/snapfs/snapfs/cmd/snapfs/internal/service"
	"github.com/snapfs/snapfs/rowstore"
)

// readyFDEnv names the file descriptor on which a daemon started by
// mount --background reports readiness to its parent: one line, "ok PID" or
// "error CODE MESSAGE".
const readyFDEnv = "SNAPFS_READY_FD"

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
			&cli.StringFlag{Name: "pprof", Usage: "serve net/http/pprof (CPU, heap, block and mutex profiles) on this address, e.g. 127.0.0.1:6060; " +
				"turns on block and mutex profiling"},
		},
		Action: func(c *cli.Context) (retErr error) {
			a, err := args(c, "MOUNTPOINT")
			if err != nil {
				return err
			}
			store, err := storeDir(c)
			if err != nil {
				return err
			}
			log, err := logger(c, st.stderr)
			if err != nil {
				return err
			}
			mp, rmdir, err := existingDir(a[0])
			if err != nil {
				return err
			}
			if fd := os.Getenv(readyFDEnv); fd != "" {
				return runChild(c, store, mp, fd) // the parent cleans up
			}
			defer func() {
				if retErr != nil {
					rmdir()
				}
			}()
			if c.Bool("background") {
				return startBackground(c, st, store, mp)
			}
			if err := startPprof(c, log); err != nil {
				return err
			}
			limitMemory()
			return daemon.Run(context.Background(), daemon.Config{Store: store, Mountpoint: mp, Logger: log})
		},
	}
}

// runChild is the daemon started by mount --background: it reports
// readiness, or the error that stopped it, on the inherited pipe.
func runChild(c *cli.Context, store, mp, fdStr string) error {
	fd, err := strconv.Atoi(fdStr)
	if err != nil {
		return usagef("%s=%q", readyFDEnv, fdStr)
	}
	pipe := os.NewFile(uintptr(fd), "ready")
	os.Unsetenv(readyFDEnv)
	log, _ := logger(c, os.Stderr)
	ready := false
	err = startPprof(c, log)
	limitMemory()
	if err == nil {
		err = daemon.Run(context.Background(), daemon.Config{Store: store, Mountpoint: mp, Logger: log,
			Ready: func(s service.Status) {
				ready = true
				fmt.Fprintf(pipe, "ok %d\n", s.PID)
				pipe.Close()
			}})
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
func startBackground(c *cli.Context, st *state, store, mp string) error {
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
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return fmt.Errorf("start daemon: %w", err)
	}
	w.Close()
	line, _ := bufio.NewReader(r).ReadString('\n')
	line = strings.TrimSpace(line)
	switch {
	case strings.HasPrefix(line, "ok "):
		_ = cmd.Process.Release()
		pid := strings.TrimPrefix(line, "ok ")
		return newPrinter(c, st).result("mount", struct {
			Store      string `json:"store"`
			Mountpoint string `json:"mountpoint"`
			PID        string `json:"pid"`
			Log        string `json:"log"`
		}{store, mp, pid, logPath}, "mounted %s at %s (daemon pid %s, log %s)", store, mp, pid, logPath)
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
			for _, m := range mounts() {
				if m.target == mp && m.fstype == "fuse.snapfs" {
					snapfsMount = true
					if !c.IsSet("store") && filepath.IsAbs(m.source) {
						store = m.source
					}
				}
			}
			ctx := context.Background()
			client, status, err := service.Dial(ctx, store)
			if err != nil {
				if !snapfsMount {
					return fmt.Errorf("%w: no snapfs daemon serves %s (store %s)", exitcode.ErrNoDaemon, mp, store)
				}
				// The daemon died: the kernel still holds its dead mount.
				if err := syscall.Unmount(mp, 0); err != nil {
					if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil {
						return fmt.Errorf("remove stale mount %s: %w", mp, err)
					}
				}
				return newPrinter(c, st).result("umount", map[string]string{"mountpoint": mp, "stale": "true"},
					"no daemon was serving %s; removed the stale mount", mp)
			}
			defer client.Close()
			if status.Mountpoint != mp {
				return fmt.Errorf("%w: the daemon of store %s is mounted at %s, not at %s", rowstore.ErrNotFound, store, status.Mountpoint, mp)
			}
			if err := client.Shutdown(ctx); err != nil {
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

// daemonMemoryLimit is the Go runtime's soft memory limit for the daemon
// (unless GOMEMLIMIT is set): the garbage collector works harder as the heap
// nears it instead of letting it grow to twice the live data, so the
// daemon's resident size stays flat however much is written (issue 8: at
// most 256 MiB, and the index's memory-mapped tables count in it too). What
// is live is bounded on its own: the write-back cache (32 MiB a disk), the
// block maps (16 MiB a disk at most), the index's memtables and block cache.
// Measured (1 GiB disk, 512 MiB written, then random 4 KiB writes and reads,
// 2 interleaved pairs, load 27 to 31): peak RSS 179 and 190 MiB with 192
// MiB, 136 and 131 MiB with 128 MiB, for 10 to 30 % more CPU per random
// write (more collections). An 8 GiB disk written twice sequentially, then
// 30 s of random 4 KiB writes: peak 246 MiB (301 MiB with 192 MiB), of which
// 108 to 113 MiB are the index's memory-mapped tables: that part grows with
// the index (about 1 % of the data), so beyond ~20 GiB the peak passes 256
// MiB unless Badger's tables stop being mapped whole.
const daemonMemoryLimit = 128 << 20

func limitMemory() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(daemonMemoryLimit)
	}
}
