package fs

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	benchFileSize = 256 << 20
	benchChunk    = 1 << 20
)

// benchTarget is one file to benchmark: through the mount or plain.
type benchTarget struct {
	name  string
	flags int
	path  func(b *testing.B) string
}

func benchTargets(b *testing.B, direct bool) []benchTarget {
	fuseFile := func(writeback bool) func(b *testing.B) string {
		return func(b *testing.B) string {
			mb := newMemBackend()
			mb.addDisk("vol1", benchFileSize)
			_, mnt := mountT(b, mb, func(o *Options) { o.WritebackCache = writeback; o.Logger = nil })
			return filepath.Join(mnt, "disks/vol1")
		}
	}
	plain := func(b *testing.B) string {
		p := filepath.Join(b.TempDir(), "plain")
		f, err := os.Create(p)
		if err != nil {
			b.Fatal(err)
		}
		if err := f.Truncate(benchFileSize); err != nil {
			b.Fatal(err)
		}
		f.Close()
		return p
	}
	flags := 0
	if direct {
		flags = unix.O_DIRECT
	}
	ts := []benchTarget{
		{"plain", flags, plain},
		{"fuse", flags, fuseFile(false)},
	}
	if !direct {
		ts = append(ts, benchTarget{"fuse-writeback", flags, fuseFile(true)})
	}
	return ts
}

// runSequential runs op over 1 MiB chunks of a 256 MiB file for each target
// and logs each target's time per chunk relative to the plain file's.
func runSequential(b *testing.B, write bool) {
	for _, direct := range []bool{false, true} {
		mode := "buffered"
		if direct {
			mode = "odirect"
		}
		perOp := map[string]time.Duration{}
		for _, tg := range benchTargets(b, direct) {
			b.Run(mode+"/"+tg.name, func(b *testing.B) {
				p := tg.path(b)
				fd, err := unix.Open(p, unix.O_RDWR|tg.flags, 0)
				if err != nil {
					b.Fatal(err)
				}
				defer unix.Close(fd)
				buf := alignedBuf(b, benchChunk)
				for i := range buf {
					buf[i] = byte(i) | 1
				}
				if !write { // fill first so reads see data
					for off := int64(0); off < benchFileSize; off += benchChunk {
						if _, err := unix.Pwrite(fd, buf, off); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.SetBytes(benchChunk)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					off := int64(i) * benchChunk % benchFileSize
					var n int
					if write {
						n, err = unix.Pwrite(fd, buf, off)
					} else {
						n, err = unix.Pread(fd, buf, off)
					}
					if err != nil || n != benchChunk {
						b.Fatalf("%d@%d: %d, %v", benchChunk, off, n, err)
					}
				}
				if write {
					if err := unix.Fsync(fd); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				perOp[tg.name] = b.Elapsed() / time.Duration(b.N)
			})
		}
		for name, d := range perOp {
			if name != "plain" && perOp["plain"] > 0 {
				b.Logf("%s %s: %.2fx the time of a plain file (%v vs %v per MiB)",
					mode, name, float64(d)/float64(perOp["plain"]), d, perOp["plain"])
			}
		}
	}
}

// BenchmarkSequentialWrite writes 1 MiB chunks through the mount and to a
// plain file in the same run (then fsyncs once).
func BenchmarkSequentialWrite(b *testing.B) { runSequential(b, true) }

// BenchmarkSequentialRead reads 1 MiB chunks through the mount and from a
// plain file in the same run.
func BenchmarkSequentialRead(b *testing.B) { runSequential(b, false) }
