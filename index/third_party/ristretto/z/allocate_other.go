//go:build !linux

package z

import (
	"os"
	"sync/atomic"
)

// NoSpaceHook: see allocate_linux.go (never called here).
var NoSpaceHook atomic.Pointer[func(path string) bool]

// allocate is a sparse truncate where fallocate does not exist (upstream behaviour).
func allocate(fd *os.File, size int64) error { return fd.Truncate(size) }
