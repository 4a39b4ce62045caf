// Command snapfs-loopback is the userspace peer of scripts/bench.sh: a
// go-fuse loopback mount of a directory, configured the way snapfs's own
// mount is compared against it (MaxWrite 1 MiB, writeback cache, async
// direct I/O, CAP_PASSTHROUGH disabled so that every read and write reaches
// this process). With -passthrough it lets the kernel pass reads and writes
// straight to the backing files instead: the upper bound of any FUSE
// filesystem, reported separately.
//
//	snapfs-loopback [-passthrough] SOURCE_DIR MOUNTPOINT
//
// It mounts with mount(2) (run as root, no fusermount), prints "ready" on
// stdout once the mount serves requests, and unmounts on SIGINT or SIGTERM.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

func main() {
	passthrough := flag.Bool("passthrough", false, "let the kernel pass reads and writes to the backing files (no writeback cache)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: snapfs-loopback [-passthrough] SOURCE_DIR MOUNTPOINT")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 2 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(flag.Arg(0), flag.Arg(1), *passthrough); err != nil {
		fmt.Fprintln(os.Stderr, "snapfs-loopback:", err)
		os.Exit(1)
	}
}

func run(source, mountpoint string, passthrough bool) error {
	root, err := fs.NewLoopbackRoot(source)
	if err != nil {
		return fmt.Errorf("loopback root %s: %w", source, err)
	}
	sec := time.Second
	opts := &fs.Options{
		AttrTimeout:  &sec,
		EntryTimeout: &sec,
		MountOptions: fuse.MountOptions{
			FsName:            source,
			Name:              "snapfs-loopback",
			MaxWrite:          1 << 20,
			DirectMountStrict: true,
		},
	}
	if passthrough {
		// The kernel refuses FOPEN_PASSTHROUGH on a connection with the
		// writeback cache, so the upper bound runs without it.
		opts.ExtraCapabilities = fuse.CAP_ASYNC_DIO
	} else {
		opts.ExtraCapabilities = fuse.CAP_WRITEBACK_CACHE | fuse.CAP_ASYNC_DIO
		opts.DisabledCapabilities = fuse.CAP_PASSTHROUGH
	}
	server, err := fs.Mount(mountpoint, root, opts)
	if err != nil {
		return fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	if err := server.WaitMount(); err != nil {
		return fmt.Errorf("wait for mount %s: %w", mountpoint, err)
	}
	got := server.KernelSettings().Flags64()
	mode := "userspace"
	if passthrough {
		if got&fuse.CAP_PASSTHROUGH == 0 {
			_ = server.Unmount()
			return fmt.Errorf("the kernel does not offer CAP_PASSTHROUGH")
		}
		mode = "passthrough"
	}
	fmt.Printf("ready %s pid %d\n", mode, os.Getpid())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		if err := server.Unmount(); err != nil {
			fmt.Fprintln(os.Stderr, "snapfs-loopback: unmount:", err)
			_ = syscall.Unmount(mountpoint, syscall.MNT_DETACH)
			os.Exit(1)
		}
	}()
	server.Wait()
	return nil
}
