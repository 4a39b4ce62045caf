package rowstore

import "fmt"

// MaxNameLen is the longest name of a disk, snapshot or image.
const MaxNameLen = 64

// ValidateName checks a disk, snapshot or image name: 1–64 characters of
// letters, digits, '.', '_' and '-', not starting with '.'. The error wraps
// ErrInvalid and says what is wrong.
func ValidateName(kind, name string) error {
	if name == "" {
		return fmt.Errorf("%w: %s name is empty", ErrInvalid, kind)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("%w: %s name %.20q... is longer than %d characters", ErrInvalid, kind, name, MaxNameLen)
	}
	if name[0] == '.' {
		return fmt.Errorf("%w: %s name %q starts with '.'", ErrInvalid, kind, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return fmt.Errorf("%w: %s name %q has character %q (allowed: letters, digits, '.', '_', '-')", ErrInvalid, kind, name, c)
		}
	}
	return nil
}

// Block sizes a disk may have.
const (
	MinBlockSize     = 4 << 10
	MaxBlockSize     = 1 << 20
	DefaultBlockSize = 16 << 10
	// MaxDiskSize bounds a disk's logical size (256 TiB).
	MaxDiskSize = 256 << 40
)

// ValidateBlockSize checks a block size: a power of two from 4 KiB to 1 MiB.
func ValidateBlockSize(bs int) error {
	if bs < MinBlockSize || bs > MaxBlockSize || bs&(bs-1) != 0 {
		return fmt.Errorf("%w: block size %d is not a power of two from 4 KiB to 1 MiB", ErrInvalid, bs)
	}
	return nil
}

// ValidateDiskSize checks a disk size: positive, a multiple of 512 bytes (a
// sector; loop devices and VMs need it), at most MaxDiskSize.
func ValidateDiskSize(size int64) error {
	switch {
	case size <= 0:
		return fmt.Errorf("%w: disk size %d must be positive", ErrInvalid, size)
	case size%512 != 0:
		return fmt.Errorf("%w: disk size %d is not a multiple of 512 bytes", ErrInvalid, size)
	case size > MaxDiskSize:
		return fmt.Errorf("%w: disk size %d is larger than 256 TiB", ErrInvalid, size)
	}
	return nil
}
