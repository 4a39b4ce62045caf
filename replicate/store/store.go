package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors, checked with errors.Is. Backends wrap them with context.
var (
	// ErrNotFound: the object does not exist.
	ErrNotFound = errors.New("store: object not found")
	// ErrInvalidName: the name breaks the naming rule (see ValidName).
	ErrInvalidName = errors.New("store: invalid object name")
	// ErrInvalidURL: Open was given a URL it cannot use.
	ErrInvalidURL = errors.New("store: invalid store URL")
	// ErrMissing: the store itself does not exist (a file:// directory
	// that is missing: an unmounted file system). Nothing was created.
	ErrMissing = errors.New("store: store does not exist")
	// ErrShortRead: a Get asked for bytes beyond the end of the object.
	// It is permanent: retrying gives the same answer.
	ErrShortRead = errors.New("store: short read")
)

// Store is a flat namespace of immutable-by-replacement objects: a local
// directory or an S3 bucket prefix. It is what one shard position of a
// region writes to. Implementations are safe for concurrent use.
//
// Every method checks its name argument first (see ValidName) and returns an
// error wrapping ErrInvalidName without touching the backend. Every method
// honours ctx: a cancelled context ends the call with an error wrapping
// ctx.Err().
type Store interface {
	// Put stores data under name atomically (readers see the whole
	// object or none, never a part, also while an older version is being
	// replaced) and idempotently (putting the same name again replaces it).
	// When Put returns nil the object is durable to the backend's standard
	// (fsync for local directories, the service's acknowledgement for
	// S3). Put does not keep data.
	Put(ctx context.Context, name string, data []byte) error

	// Get returns the object's bytes [off, off+length); length < 0 means
	// to the end. A missing object is an error wrapping ErrNotFound. A
	// range that does not lie inside the object (off < 0, off > size, or
	// off+length > size) is an error wrapping ErrShortRead: Get never
	// returns fewer bytes than asked for. off == size with length <= 0
	// returns no bytes.
	Get(ctx context.Context, name string, off, length int64) ([]byte, error)

	// Stat returns the object's size in bytes; an error wrapping
	// ErrNotFound if it is missing.
	Stat(ctx context.Context, name string) (int64, error)

	// List calls fn once per object whose name starts with prefix, in
	// lexical (byte-wise) order of names, with the object's size. prefix
	// is a plain string prefix, not a directory: "a" matches "a/b" and
	// "ab". The empty prefix lists everything. If fn returns an error,
	// List stops and returns it unchanged. Objects put or deleted while
	// List runs may or may not be seen.
	List(ctx context.Context, prefix string, fn func(name string, size int64) error) error

	// Delete removes an object; deleting a missing object is not an error.
	Delete(ctx context.Context, name string) error

	// Location is the URL the store was opened with, without credentials.
	// It is meant for messages and logs.
	Location() string

	// Close releases the store's resources. Calls after Close fail.
	Close() error
}

// ReaderInto is implemented by stores that read an object's bytes into
// the caller's buffers: a restore reads MiB-sized shards straight into the
// pack it assembles, without a buffer allocated (and cleared) per shard
// and a copy. Use the function ReadInto, which falls back to Get.
type ReaderInto interface {
	// ReadInto reads the object's bytes from off on into bufs, one after
	// the other (len of each), and returns the object's size. Errors are
	// Get's: ErrNotFound for a missing object, ErrShortRead when the bytes
	// asked for do not lie inside the object.
	ReadInto(ctx context.Context, name string, off int64, bufs ...[]byte) (size int64, err error)
}

// ReadInto reads object name of s from off on into bufs and returns its
// size: through s's ReadInto if it has one, else by getting the whole
// object (Get) and copying.
func ReadInto(ctx context.Context, s Store, name string, off int64, bufs ...[]byte) (int64, error) {
	if ri, ok := s.(ReaderInto); ok {
		return ri.ReadInto(ctx, name, off, bufs...)
	}
	b, err := s.Get(ctx, name, 0, -1)
	if err != nil {
		return 0, err
	}
	size := int64(len(b))
	total := int64(0)
	for _, p := range bufs {
		total += int64(len(p))
	}
	end, err := checkRange(name, size, off, total)
	if err != nil {
		return 0, err
	}
	b = b[off:end]
	for _, p := range bufs {
		b = b[copy(p, b):]
	}
	return size, nil
}

// MaxNameLen bounds an object name, well below S3's 1024-byte key limit so
// that a store prefix fits too.
const MaxNameLen = 512

// ValidName checks an object name: a slash-separated relative path of
// [A-Za-z0-9._-] components, none of them empty, "." or "..", at most
// MaxNameLen bytes. So no leading or trailing slash and no "//". One name
// must not be a directory of another ("a" and "a/b" cannot both exist): the
// local backend cannot store both, so callers choose layouts that never do.
// The error wraps ErrInvalidName.
func ValidName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrInvalidName)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrInvalidName, len(name), MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		if !nameByte(name[i]) {
			return fmt.Errorf("%w: %q: byte %q at %d not in [A-Za-z0-9._/-]", ErrInvalidName, name, name[i], i)
		}
	}
	for part := range strings.SplitSeq(name, "/") {
		switch part {
		case "":
			return fmt.Errorf("%w: %q: empty path component (leading, trailing or double slash)", ErrInvalidName, name)
		case ".", "..":
			return fmt.Errorf("%w: %q: %q component", ErrInvalidName, name, part)
		}
	}
	return nil
}

// validPrefix checks a List prefix: empty, or made of name bytes.
func validPrefix(prefix string) error {
	if len(prefix) > MaxNameLen {
		return fmt.Errorf("%w: prefix of %d bytes", ErrInvalidName, len(prefix))
	}
	for i := 0; i < len(prefix); i++ {
		if !nameByte(prefix[i]) {
			return fmt.Errorf("%w: prefix %q: byte %q not in [A-Za-z0-9._/-]", ErrInvalidName, prefix, prefix[i])
		}
	}
	if strings.HasPrefix(prefix, "/") {
		return fmt.Errorf("%w: prefix %q starts with a slash", ErrInvalidName, prefix)
	}
	return nil
}

func nameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '_' || c == '/' || c == '-'
}

// checkRange validates a Get range against an object of the given size and
// returns the end offset. Errors wrap ErrShortRead.
func checkRange(name string, size, off, length int64) (end int64, err error) {
	if off < 0 || off > size {
		return 0, fmt.Errorf("%w: %s: offset %d outside object of %d bytes", ErrShortRead, name, off, size)
	}
	if length < 0 {
		return size, nil
	}
	if length > size-off {
		return 0, fmt.Errorf("%w: %s: [%d, %d) beyond object of %d bytes", ErrShortRead, name, off, off+length, size)
	}
	return off + length, nil
}
