package rowstore

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// ReservedNames are names the mount's namespace uses itself (the metadata
// file in every snapshot directory); no disk, snapshot or image may take
// them. ReservedSuffixes likewise end names of namespace entries (the
// browsable files of a disk, "<disk>.files").
var (
	ReservedNames    = []string{"snapshot.json"}
	ReservedSuffixes = []string{".files"}
)

// MaxNameLen is the longest name of a disk, snapshot or image.
const MaxNameLen = 64

// ValidateName checks a disk, snapshot or image name: 1–64 characters of
// ASCII letters, digits, '.', '_' and '-', not starting with '.', and not a
// name the namespace reserves (ReservedNames, ReservedSuffixes). The error
// wraps ErrInvalid and says what is wrong, naming a bad character as the
// character (rune) it is, not its first byte.
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
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: %s name %q is not valid UTF-8", ErrInvalid, kind, name)
	}
	for _, c := range name {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return fmt.Errorf("%w: %s name %q has character %q (allowed: letters A-Z a-z, digits, '.', '_', '-')", ErrInvalid, kind, name, c)
		}
	}
	for _, r := range ReservedNames {
		if name == r {
			return fmt.Errorf("%w: %s name %q is reserved: the mount uses it in every snapshot directory", ErrInvalid, kind, name)
		}
	}
	for _, suf := range ReservedSuffixes {
		if strings.HasSuffix(name, suf) {
			return fmt.Errorf("%w: %s name %q ends with %q, which the mount reserves for its own entries", ErrInvalid, kind, name, suf)
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
		return fmt.Errorf("%w: disk size %s is not a multiple of 512 bytes", ErrInvalid, iec(size))
	case size > MaxDiskSize:
		return fmt.Errorf("%w: disk size %s is larger than the largest, %s", ErrInvalid, iec(size), iec(MaxDiskSize))
	}
	return nil
}

// iec formats n bytes for messages: "1000 PiB", "1.5 GiB", "512 B".
func iec(n int64) string {
	const units = "KMGTPE"
	if n < 1024 || n%512 != 0 {
		return fmt.Sprintf("%d bytes", n)
	}
	f, i := float64(n)/1024, 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	s := fmt.Sprintf("%.1f", f)
	s = strings.TrimSuffix(s, ".0")
	return s + " " + units[i:i+1] + "iB"
}

// handles is "1 open handle" or "N open handles".
func handles(n int) string {
	if n == 1 {
		return "1 open handle"
	}
	return fmt.Sprintf("%d open handles", n)
}
