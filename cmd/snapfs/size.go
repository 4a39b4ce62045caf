package main

import (
	"fmt"
	"math"
	"strings"
	"syscall"

	"github.com/dustin/go-humanize"
	"github.com/urfave/cli/v2"

	"github.com/snapfs/snapfs/rowstore"
)

// parseSize parses a size: a number with an optional suffix. K, M, G, T, P, E
// alone (any case) are powers of 1024, like KiB, MiB, ...: 1G = 2^30 bytes,
// what dd, truncate and qemu-img mean. KB, MB, GB, ... are powers of 1000
// (go-humanize's reading). A plain number is bytes.
func parseSize(what, s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("%w: %s is empty", rowstore.ErrInvalid, what)
	}
	if strings.ContainsRune("kKmMgGtTpPeE", rune(t[len(t)-1])) {
		t += "iB"
	}
	if strings.HasPrefix(t, "-") {
		return 0, fmt.Errorf("%w: %s %q is negative", rowstore.ErrInvalid, what, s)
	}
	v, err := humanize.ParseBytes(t)
	if err != nil {
		return 0, fmt.Errorf("%w: %s %q is not a size (examples: 4096, 64K, 512M, 10G, 1T)", rowstore.ErrInvalid, what, s)
	}
	if v > math.MaxInt64 {
		return 0, fmt.Errorf("%w: %s %q is too large", rowstore.ErrInvalid, what, s)
	}
	return int64(v), nil
}

// size formats n bytes for people: IEC units (1.0 GiB).
func size(n int64) string {
	if n < 0 {
		return "-" + humanize.IBytes(uint64(-n))
	}
	return humanize.IBytes(uint64(n))
}

// sizeHelp documents the sizes every flag accepts (the app's help).
const sizeHelp = "Sizes are a number with an optional suffix: K, M, G, T, P, E (any case) are powers of 1024, as in\n" +
	"dd and qemu-img (1G = 2^30 bytes), and so are KiB, MiB, GiB, TiB, PiB, EiB; KB, MB, GB, TB, PB, EB\n" +
	"are powers of 1000; a plain number is bytes; fractions are allowed (1.5G)."

// defaultBlockSize is the engine's default block size for help texts.
var defaultBlockSize = strings.ReplaceAll(size(rowstore.DefaultBlockSize), " ", "")

// warnLargerThanFree warns on stderr when a new disk is larger than the
// free space of the filesystem holding the store: allowed (disks are thin),
// but writing it full will fail for lack of space.
func warnLargerThanFree(c *cli.Context, st *state, disk string, n int64) {
	dir, err := storeDir(c)
	if err != nil {
		return
	}
	var fs syscall.Statfs_t
	if syscall.Statfs(dir, &fs) != nil {
		return
	}
	free := int64(fs.Bavail) * int64(fs.Bsize)
	if n > free {
		fmt.Fprintf(st.stderr, "snapfs: warning: disk %s is %s but the store's filesystem has %s free; "+
			"writes will fail with no space (exit 7) before the disk is full\n", disk, size(n), size(free))
	}
}
