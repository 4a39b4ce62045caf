package fs

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime/debug"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Options configure a mount.
type Options struct {
	// Backend is the storage behind the namespace. Required.
	Backend Backend
	// Logger receives errors at the FUSE boundary (once each) and, with Debug,
	// every FUSE request. nil discards.
	Logger *slog.Logger
	// Debug logs every FUSE request and reply (go-fuse's debug output) at
	// slog.LevelDebug.
	Debug bool
	// AllowOther lets users other than the one who mounted access the mount
	// (mount option allow_other). Default off.
	AllowOther bool
	// WritebackCache turns on the kernel's FUSE writeback cache for disks.
	// Default off; see doc.go for why.
	WritebackCache bool
	// NameTimeout is how long the kernel may cache a name (and the attributes
	// of disks) under disks/, snapshots/ and images/ before asking again. Zero
	// (the default) asks the Backend on every path lookup, so new and deleted
	// names show at once even without InvalidateNames.
	NameTimeout time.Duration
	// MaxBackground is the number of asynchronous requests (readahead, async
	// reads) the kernel may have in flight. 0 means 64.
	MaxBackground int
	// FsName is the "source" column of /proc/mounts. Empty means "snapfs".
	FsName string
	// Files, when set, shows the files inside snapshot disks and images as
	// <d>.files directories (node_files.go), and turns extended attributes
	// on (they are shown from the filesystems inside).
	Files Files
	// Regions, when set, shows the snapshots of remote regions under
	// M/regions/ (node_regions.go), read-only, read on demand.
	Regions Regions
	// StatfsPath is a directory on the filesystem that holds the store:
	// statfs of every node of the namespace (outside .files, which report
	// the filesystem inside the disk) reports that filesystem's blocks and
	// inodes, so df and free-space checks see what disks can still take.
	// Empty: no blocks (a block size only).
	StatfsPath string
	// Errno maps a Backend error to the errno the kernel sees (the caller's
	// one table of errors; see errno.go). nil: the errno an error wraps, EIO
	// for anything else.
	Errno func(error) syscall.Errno
}

// Server is a mounted snapfs namespace.
type Server struct {
	srv        *fuse.Server
	m          *mountState
	root       *rootNode
	mountpoint string
}

// mountState is everything one mount's nodes share. There is no package-level
// state: two mounts in one process have two of these.
type mountState struct {
	backend     Backend
	log         *slog.Logger
	uid, gid    uint32
	mounted     time.Time
	nameTimeout time.Duration
	files       Files      // nil: no .files entries
	filesState  filesState // inode numbers of .files trees
	errno       func(error) syscall.Errno
	regions     Regions // nil: no regions/ directory
	statfsPath  string  // Options.StatfsPath
}

// Mount mounts the snapfs namespace over opts.Backend at mountpoint and
// returns once the kernel has completed the mount (the first request can be
// served). As root it mounts with mount(2) directly; otherwise, or when that
// fails, it uses fusermount3 if it is on PATH.
func Mount(mountpoint string, opts Options) (*Server, error) {
	if opts.Backend == nil {
		return nil, errors.New("fs.Mount: Options.Backend is nil")
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := &mountState{
		backend:     opts.Backend,
		log:         logger,
		uid:         uint32(os.Geteuid()),
		gid:         uint32(os.Getegid()),
		mounted:     time.Now(),
		nameTimeout: opts.NameTimeout,
		files:       opts.Files,
		errno:       opts.Errno,
		regions:     opts.Regions,
		statfsPath:  opts.StatfsPath,
	}
	if m.nameTimeout < 0 {
		m.nameTimeout = 0
	}
	root := &rootNode{m: m}

	mo := fuseMountOptions(opts, logger)
	fsOpts := &gofs.Options{
		MountOptions: mo,
		// Timeouts are set per node by our Lookup/Getattr; leaving these nil
		// means "zero unless the node says otherwise".
		RootStableAttr: &gofs.StableAttr{Ino: inoRoot},
		Logger:         slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	direct := os.Geteuid() == 0
	fusermount, lookErr := exec.LookPath("fusermount3")
	var srv *fuse.Server
	var err error
	if direct {
		fsOpts.MountOptions.DirectMountStrict = true
		srv, err = fuse.NewServer(gofs.NewNodeFS(root, fsOpts), mountpoint, &fsOpts.MountOptions)
		if err != nil && lookErr == nil {
			logger.Warn("snapfs: direct mount failed, trying fusermount3", "mountpoint", mountpoint, "err", err)
			direct = false
			root = &rootNode{m: m}
		}
	}
	if !direct {
		if lookErr != nil {
			return nil, fmt.Errorf("mount %s: not root and no fusermount3 on PATH: %w", mountpoint, lookErr)
		}
		logger.Debug("snapfs: mounting with fusermount", "fusermount", fusermount)
		fsOpts.MountOptions.DirectMountStrict = false
		fsOpts.MountOptions.DirectMount = false
		srv, err = fuse.NewServer(gofs.NewNodeFS(root, fsOpts), mountpoint, &fsOpts.MountOptions)
	}
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	go srv.Serve()
	if err := srv.WaitMount(); err != nil {
		_ = srv.Unmount()
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	logger.Info("snapfs: mounted", "mountpoint", mountpoint, "direct", direct)
	return &Server{srv: srv, m: m, root: root, mountpoint: mountpoint}, nil
}

// fuseMountOptions are the kernel-facing choices; doc.go explains each.
func fuseMountOptions(opts Options, logger *slog.Logger) fuse.MountOptions {
	name := opts.FsName
	if name == "" {
		name = "snapfs"
	}
	bg := opts.MaxBackground
	if bg <= 0 {
		bg = 64
	}
	mo := fuse.MountOptions{
		FsName:                   name,
		Name:                     "snapfs",
		AllowOther:               opts.AllowOther,
		MaxWrite:                 1 << 20, // capped by go-fuse at what the kernel allows
		MaxReadAhead:             1 << 20, // the kernel clamps to its readahead window
		MaxBackground:            bg,
		ExplicitDataCacheControl: true,
		DisableSplice:            true,
		DisableXAttrs:            true,
		DisabledCapabilities:     fuse.CAP_PASSTHROUGH,
		// mmap of FOPEN_DIRECT_IO files; asynchronous direct I/O (doc.go).
		ExtraCapabilities: fuse.CAP_DIRECT_IO_ALLOW_MMAP | fuse.CAP_ASYNC_DIO,
		Debug:             opts.Debug,
		Logger:            slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
		PanicHandler: func(r any) fuse.Status {
			logger.Error("snapfs: panic in FUSE request", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			return fuse.EIO
		},
	}
	if opts.WritebackCache {
		mo.ExtraCapabilities |= fuse.CAP_WRITEBACK_CACHE
	}
	if opts.AllowOther {
		// Others get what the modes give them, checked by the kernel: no
		// disk or image (diskMode, imageMode), the listings, snapshot.json
		// and the files inside .files directories as their own modes say.
		mo.Options = append(mo.Options, "default_permissions")
	}
	if opts.Files != nil {
		mo.DisableXAttrs = false // xattrs of the files inside .files
	}
	return mo
}

// Mountpoint is the directory the namespace is mounted on.
func (s *Server) Mountpoint() string { return s.mountpoint }

// Unmount unmounts the namespace. Open files keep it busy (EBUSY).
func (s *Server) Unmount() error {
	if err := s.srv.Unmount(); err != nil {
		return fmt.Errorf("unmount %s: %w", s.mountpoint, err)
	}
	return nil
}

// Wait blocks until the namespace is unmounted (by Unmount or umount(8)).
func (s *Server) Wait() { s.srv.Wait() }

// InvalidateDisk drops the kernel's cached pages and attributes of
// disks/<name>. The daemon calls it after anything changed the disk's content
// or size behind the mount's back (a forced rollback, a resize or a restore).
// It must not be called from inside a FUSE request of this mount.
func (s *Server) InvalidateDisk(name string) {
	ch := s.root.disks.GetChild(name)
	if ch == nil {
		return // the kernel holds no inode for it: nothing is cached
	}
	if errno := ch.NotifyContent(0, 0); errno != 0 && errno != syscall.ENOENT {
		s.m.log.Warn("snapfs: invalidate disk", "disk", name, "err", errno)
	}
}

// InvalidateNames drops the kernel's cached names under disks/, snapshots/
// and images/ that no longer name the same object (deleted, or deleted and
// made again), so changes show at once even with a non-zero NameTimeout.
// Names that still name the same object are left alone: invalidating them
// would detach the dentries of open files (a loop device's backing file would
// then read "(deleted)"). New names need nothing: failed lookups are never
// cached. It must not be called from inside a FUSE request of this mount, nor
// with a lock held that a FUSE request may need (the kernel waits for the
// directory's readers before it returns).
func (s *Server) InvalidateNames() {
	b := s.m.backend
	check := []struct {
		dir *gofs.Inode
		ino func(name string) (uint64, bool)
	}{
		{s.root.disks, func(name string) (uint64, bool) {
			e, err := b.Disk(name)
			return diskIno(e.ID), err == nil
		}},
		{s.root.snapshots, func(name string) (uint64, bool) {
			e, err := b.Snapshot(name)
			return snapDirIno(e.ID), err == nil
		}},
		{s.root.images, func(name string) (uint64, bool) {
			e, err := b.Image(name)
			return imageIno(e.ID), err == nil
		}},
	}
	for _, c := range check {
		for name, ch := range c.dir.Children() {
			if ino, ok := c.ino(name); ok && ino == ch.StableAttr().Ino {
				continue // still the same object
			}
			if errno := c.dir.NotifyEntry(name); errno != 0 && errno != syscall.ENOENT {
				s.m.log.Warn("snapfs: invalidate name", "dir", c.dir.Path(nil), "name", name, "err", errno)
			}
		}
	}
}

// recoverOp is deferred by every node method that calls into the Backend: a
// panic becomes EIO for that request and one log record, never a dead daemon.
func (m *mountState) recoverOp(op, name string, errno *syscall.Errno) {
	if r := recover(); r != nil {
		m.log.Error("snapfs: panic in FUSE operation", "op", op, "name", name,
			"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		*errno = syscall.EIO
	}
}

// fail maps a Backend error to an errno and logs it once, here at the
// boundary. Expected outcomes (ENOENT, EINVAL, EBUSY, ...) log at Debug;
// EIO-class errors at Error.
func (m *mountState) fail(op, name string, err error) syscall.Errno {
	errno := m.toErrno(err)
	switch errno {
	case syscall.EIO, syscall.ENOSPC:
		m.log.Error("snapfs: "+op, "name", name, "err", err, "errno", errno.Error())
	default:
		m.log.Debug("snapfs: "+op, "name", name, "err", err, "errno", errno.Error())
	}
	return errno
}
