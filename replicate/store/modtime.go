package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/minio/minio-go/v7"
)

// ModTimer is implemented by stores that report the store's own time of an
// object's last put: a local directory's file mtime (the file system's
// clock: the NFS server's for an NFS mount), S3's LastModified (the
// service's clock, 1 s resolution). It is the same for every host that
// reads it, whatever their clocks say: replicate judges a lock's liveness
// and a pack's age by it, and measures a host's clock skew against it.
// Use the function ModTime.
type ModTimer interface {
	// ModTime returns the store's time of the object's last put; a
	// missing object is an error wrapping ErrNotFound.
	ModTime(ctx context.Context, name string) (time.Time, error)
}

// ErrNoModTime: the store does not report object times (see ModTimer).
var ErrNoModTime = errors.New("store: object times not reported")

// ModTime returns the store's time of object name's last put, through s's
// ModTimer; an error wrapping ErrNoModTime if s has none.
func ModTime(ctx context.Context, s Store, name string) (time.Time, error) {
	if mt, ok := s.(ModTimer); ok {
		return mt.ModTime(ctx, name)
	}
	return time.Time{}, fmt.Errorf("%w: %s", ErrNoModTime, s.Location())
}

// ModTime implements ModTimer: the file's mtime.
func (l *Local) ModTime(ctx context.Context, name string) (time.Time, error) {
	fi, err := l.stat(ctx, name)
	if err != nil {
		return time.Time{}, err
	}
	return fi.ModTime(), nil
}

// ModTime implements ModTimer: the object's LastModified.
func (s *s3Store) ModTime(ctx context.Context, name string) (time.Time, error) {
	if err := s.check(ctx, name); err != nil {
		return time.Time{}, err
	}
	info, err := s.client.StatObject(ctx, s.bucket, s.prefix+name, minio.StatObjectOptions{})
	if err != nil {
		return time.Time{}, s.mapErr("stat", name, err)
	}
	return info.LastModified, nil
}

// ModTime implements ModTimer through the inner store's, retried.
func (r *retryStore) ModTime(ctx context.Context, name string) (time.Time, error) {
	if _, ok := r.inner.(ModTimer); !ok {
		return ModTime(ctx, r.inner, name)
	}
	var t time.Time
	err := r.do(ctx, "stat", name, func() error {
		var err error
		t, err = ModTime(ctx, r.inner, name)
		return err
	})
	return t, err
}

// ModTime implements ModTimer through the inner store's; faults apply as
// to Stat.
func (s *faultyStore) ModTime(ctx context.Context, name string) (time.Time, error) {
	if _, err := s.f.enter(ctx, MethodStat, name); err != nil {
		return time.Time{}, err
	}
	return ModTime(ctx, s.inner, name)
}
