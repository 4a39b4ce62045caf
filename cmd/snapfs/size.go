package main

import (
	"fmt"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/hot"
	"github.com/snapfs/snapfs/rowstore"
)

// parseSize parses a size: a number with an optional suffix. K, M, G, T, P, E
// alone (any case) are powers of 1024, like KiB, MiB, ...: 1G = 2^30 bytes,
// what dd, truncate and qemu-img mean. KB, MB, GB, ... are powers of 1000
// (go-humanize's reading). A plain number is bytes.
func parseSize(what, s string) (int64, error) {
	v, err := hot.ParseSize(what, s)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", rowstore.ErrInvalid, err)
	}
	return v, nil
}

// size formats n bytes for people: IEC units (1.0 GiB).
func size(n int64) string { return hot.Size(n) }

// sizeHelp documents the sizes every flag accepts (the app's help).
const sizeHelp = "Sizes are a number with an optional suffix: K, M, G, T, P, E (any case) are powers of 1024, as in\n" +
	"dd and qemu-img (1G = 2^30 bytes), and so are KiB, MiB, GiB, TiB, PiB, EiB; KB, MB, GB, TB, PB, EB\n" +
	"are powers of 1000; a plain number is bytes; fractions are allowed (1.5G)."
