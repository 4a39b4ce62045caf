package hot

import (
	"fmt"
	"math"
	"strings"
	"syscall"

	"github.com/dustin/go-humanize"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/wire"
)

// ParseSize parses a size: a number with an optional suffix. K, M, G, T, P, E
// alone (any case) are powers of 1024, like KiB, MiB, ...: 1G = 2^30 bytes,
// what dd, truncate and qemu-img mean. KB, MB, GB, ... are powers of 1000
// (go-humanize's reading). A plain number is bytes. Its errors are usage
// errors.
func ParseSize(what, s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, wire.Usagef("%s is empty", what)
	}
	if strings.ContainsRune("kKmMgGtTpPeE", rune(t[len(t)-1])) {
		t += "iB"
	}
	if strings.HasPrefix(t, "-") {
		return 0, wire.Usagef("%s %q is negative", what, s)
	}
	v, err := humanize.ParseBytes(t)
	if err != nil {
		return 0, wire.Usagef("%s %q is not a size (examples: 4096, 64K, 512M, 10G, 1T)", what, s)
	}
	if v > math.MaxInt64 {
		return 0, wire.Usagef("%s %q is too large", what, s)
	}
	return int64(v), nil
}

// Size formats n bytes for people: IEC units (1.0 GiB).
func Size(n int64) string {
	if n < 0 {
		return "-" + humanize.IBytes(uint64(-n))
	}
	return humanize.IBytes(uint64(n))
}

// WarnLargerThanFree warns on w when a new disk is larger than the free
// space of the filesystem holding the store in dir: allowed (disks are
// thin), but writing it full will fail for lack of space.
func WarnLargerThanFree(dir string, w interface{ Write([]byte) (int, error) }, disk string, n int64) {
	var fs syscall.Statfs_t
	if syscall.Statfs(dir, &fs) != nil {
		return
	}
	free := int64(fs.Bavail) * int64(fs.Bsize)
	if n > free {
		fmt.Fprintf(w, "snapfs: warning: disk %s is %s but the store's filesystem has %s free; "+
			"writes will fail with no space (exit 7) before the disk is full\n", disk, Size(n), Size(free))
	}
}
