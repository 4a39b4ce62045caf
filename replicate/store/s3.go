package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// s3ResponseTimeout bounds the wait for an S3 response's headers, once
// the request is sent (its body included): a var for tests.
var s3ResponseTimeout = 30 * time.Second

// s3IdleTimeout bounds a connection to S3 that moves no byte either way
// while in use: a request or response body that stalls mid-transfer (a
// server that stops reading an upload, or sends half an object and goes
// quiet) fails instead of hanging its operation for ever: a var for tests.
// Longer than s3ResponseTimeout, which bounds the silent wait for headers.
var s3IdleTimeout = 60 * time.Second

// idleConn is a connection whose every Read and Write pushes its deadline,
// both ways, s3IdleTimeout ahead: an operation on it fails once no byte
// has moved for that long. Both ways, because HTTP/1 reads the response
// while the body still goes up (a long upload is progress for the read
// waiting on its answer), and a pending call's deadline moves too
// (net.Conn.SetDeadline). An idle connection in the pool is closed by its
// timeout as well; the transport opens a new one.
type idleConn struct {
	net.Conn
	idle time.Duration
}

func (c *idleConn) Read(b []byte) (int, error) {
	_ = c.Conn.SetDeadline(time.Now().Add(c.idle))
	n, err := c.Conn.Read(b)
	if n > 0 {
		_ = c.Conn.SetDeadline(time.Now().Add(c.idle))
	}
	return n, err
}

func (c *idleConn) Write(b []byte) (int, error) {
	// One Write may be large: it goes in pieces, each pushing the deadline,
	// so a slow link that moves bytes is never cut.
	var done int
	for done < len(b) {
		_ = c.Conn.SetDeadline(time.Now().Add(c.idle))
		n, err := c.Conn.Write(b[done:min(len(b), done+idleWriteChunk)])
		done += n
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// idleWriteChunk: the piece of a Write that must go within s3IdleTimeout.
const idleWriteChunk = 64 << 10

// idleDialer dials as the default transport does, with idle deadlines.
func idleDialer(idle time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &idleConn{Conn: c, idle: idle}, nil
	}
}

// s3Store is a Store in an S3 bucket under a key prefix, through
// minio-go. Object "a/b" is the key "<prefix>/a/b".
type s3Store struct {
	client    *minio.Client
	bucket    string
	prefix    string // "" or ending in "/"
	location  string
	log       *slog.Logger
	transport *http.Transport
	closed    atomic.Bool
}

// s3PartSize: objects up to this size go up in one PUT; larger ones as a
// multipart upload, which S3 also publishes atomically on completion.
const s3PartSize = 64 << 20

func openS3(ctx context.Context, u *url.URL, opts Options) (Store, error) {
	bucket := u.Host
	if bucket == "" {
		return nil, fmt.Errorf("%w: %q: missing bucket, want s3://bucket/prefix", ErrInvalidURL, redact(u.String()))
	}
	if err := s3utils.CheckValidBucketNameStrict(bucket); err != nil {
		return nil, fmt.Errorf("%w: %q: bucket %q: %w", ErrInvalidURL, redact(u.String()), bucket, err)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return nil, fmt.Errorf("%w: %q: an s3 URL takes no query or fragment", ErrInvalidURL, redact(u.String()))
	}
	prefix := strings.Trim(u.Path, "/")
	if prefix != "" {
		if err := ValidName(prefix); err != nil {
			return nil, fmt.Errorf("%w: %q: prefix: %w", ErrInvalidURL, redact(u.String()), err)
		}
		prefix += "/"
	}
	opts, err := opts.withDefaults(u.User)
	if err != nil {
		return nil, err
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	// A service that takes a request and never answers (a hung or
	// stopped server, a proxy that black-holes) fails the request instead
	// of hanging it, and the operation above for ever: Go's default
	// transport waits for response headers without a limit, and no region
	// operation but reads sets deadlines of its own (a scheduled sync hung
	// for good, holding its job's lock: TestRtrial10S3NoAnswerFails).
	// (minio-go's own default transport has such a bound, a minute.)
	transport.ResponseHeaderTimeout = s3ResponseTimeout
	// Once headers come, nothing above bounds a body that stops moving
	// (a put whose server stops reading, a get whose body goes quiet): no
	// byte either way for s3IdleTimeout fails the call (idleConn;
	// TestRmend10S3StalledBodyFails).
	transport.DialContext = idleDialer(opts.IdleTimeout)
	lookup := minio.BucketLookupAuto
	if opts.PathStyle {
		lookup = minio.BucketLookupPath
	}
	client, err := minio.New(opts.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(opts.AccessKey, opts.SecretKey, ""),
		Secure:       !opts.Insecure,
		Region:       opts.Region,
		BucketLookup: lookup,
		Transport:    transport,
		// Retries are the job of the retry wrapper (Wrap), which knows
		// which errors are permanent; a few quick ones here ride over
		// dropped keep-alive connections.
		MaxRetries: 3,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: endpoint %q: %w", ErrInvalidURL, opts.Endpoint, err)
	}
	loc := url.URL{Scheme: "s3", Host: bucket, Path: "/" + strings.TrimSuffix(prefix, "/")}
	s := &s3Store{
		client:    client,
		bucket:    bucket,
		prefix:    prefix,
		location:  strings.TrimSuffix(loc.String(), "/"),
		log:       opts.Logger.With("store", strings.TrimSuffix(loc.String(), "/")),
		transport: transport,
	}
	if err := s.ensureBucket(ctx, opts.Region, !opts.NoCreateBucket); err != nil {
		if opts.AccessKey == "" || opts.SecretKey == "" {
			// Say where the credentials must be: a daemon opens the
			// stores with its own environment, not the command's.
			return nil, fmt.Errorf("%w (no S3 credentials in the store URL nor in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY of process %d: with a snapfs daemon running, that is the daemon's environment, e.g. Environment= in its unit)", err, os.Getpid())
		}
		return nil, err
	}
	return s, nil
}

func (s *s3Store) ensureBucket(ctx context.Context, region string, create bool) error {
	ok, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("store: %s: bucket exists: %w", s.location, err)
	}
	if ok {
		return nil
	}
	if !create {
		return fmt.Errorf("%w: bucket %s does not exist (deleted? the wrong endpoint?); not created", ErrMissing, s.bucket)
	}
	err = s.client.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{Region: region})
	if err != nil {
		switch minio.ToErrorResponse(err).Code {
		case minio.BucketAlreadyOwnedByYou, minio.BucketAlreadyExists:
			return nil // created concurrently
		}
		return fmt.Errorf("store: %s: create bucket: %w", s.location, err)
	}
	s.log.Info("created bucket", "bucket", s.bucket, "region", region)
	return nil
}

func (s *s3Store) check(ctx context.Context, name string) error {
	if s.closed.Load() {
		return errClosed
	}
	if err := ValidName(name); err != nil {
		return err
	}
	return ctx.Err()
}

// mapErr turns S3's "no such key" into ErrNotFound and adds context.
func (s *s3Store) mapErr(op, name string, err error) error {
	switch minio.ToErrorResponse(err).Code {
	case minio.NoSuchKey, "NotFound":
		return fmt.Errorf("%w: %s in %s", ErrNotFound, name, s.location)
	case minio.NoSuchBucket:
		return fmt.Errorf("%w: %s in %s (bucket gone)", ErrNotFound, name, s.location)
	}
	return fmt.Errorf("store: %s %s in %s: %w", op, name, s.location, err)
}

// Put implements Store.
func (s *s3Store) Put(ctx context.Context, name string, data []byte) error {
	if err := s.check(ctx, name); err != nil {
		return err
	}
	_, err := s.client.PutObject(ctx, s.bucket, s.prefix+name, bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{ContentType: "application/octet-stream", PartSize: s3PartSize})
	if err != nil {
		return s.mapErr("put", name, err)
	}
	return nil
}

// Get implements Store. A whole-object read is one GET; a range is one
// ranged GET whose length is checked; a range S3 rejects is told apart
// from a missing object by a Stat.
func (s *s3Store) Get(ctx context.Context, name string, off, length int64) ([]byte, error) {
	if err := s.check(ctx, name); err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("%w: %s: negative offset %d", ErrShortRead, name, off)
	}
	if length == 0 {
		size, err := s.Stat(ctx, name)
		if err != nil {
			return nil, err
		}
		if _, err := checkRange(name, size, off, length); err != nil {
			return nil, err
		}
		return []byte{}, nil
	}
	var opts minio.GetObjectOptions
	if length > 0 {
		if err := opts.SetRange(off, off+length-1); err != nil {
			return nil, fmt.Errorf("store: get %s: %w", name, err)
		}
	} else if off > 0 {
		if err := opts.SetRange(off, 0); err != nil {
			return nil, fmt.Errorf("store: get %s: %w", name, err)
		}
	}
	obj, err := s.client.GetObject(ctx, s.bucket, s.prefix+name, opts)
	if err != nil {
		return nil, s.mapErr("get", name, err)
	}
	defer func() { _ = obj.Close() }()
	var body io.Reader = obj
	if length > 0 {
		// One byte more than asked tells a body too long from a right
		// one without buffering all a lying or broken endpoint sends.
		body = io.LimitReader(obj, length+1)
	}
	data, err := io.ReadAll(body)
	if err != nil {
		if minio.ToErrorResponse(err).Code == "InvalidRange" {
			return s.outOfRange(ctx, name, off, length)
		}
		return nil, s.mapErr("get", name, err)
	}
	if length >= 0 && int64(len(data)) != length {
		// S3 shortens a range that runs past the end.
		return nil, fmt.Errorf("%w: %s: asked [%d, %d), got %d bytes", ErrShortRead, name, off, off+length, len(data))
	}
	return data, nil
}

// outOfRange answers a Get that S3 refused as unsatisfiable: off == size
// with length < 0 is an empty read, anything else a short read.
func (s *s3Store) outOfRange(ctx context.Context, name string, off, length int64) ([]byte, error) {
	size, err := s.Stat(ctx, name)
	if err != nil {
		return nil, err
	}
	if _, err := checkRange(name, size, off, length); err != nil {
		return nil, err
	}
	if off == size {
		return []byte{}, nil
	}
	return nil, fmt.Errorf("%w: %s: server refused range at %d of %d bytes", ErrShortRead, name, off, size)
}

// Stat implements Store.
func (s *s3Store) Stat(ctx context.Context, name string) (int64, error) {
	if err := s.check(ctx, name); err != nil {
		return 0, err
	}
	info, err := s.client.StatObject(ctx, s.bucket, s.prefix+name, minio.StatObjectOptions{})
	if err != nil {
		return 0, s.mapErr("stat", name, err)
	}
	return info.Size, nil
}

// List implements Store. S3 lists keys in UTF-8 binary order, which is the
// lexical order of our ASCII names; keys that are not valid names (put there
// by someone else, or a "directory" marker) are skipped.
func (s *s3Store) List(ctx context.Context, prefix string, fn func(name string, size int64) error) error {
	if s.closed.Load() {
		return errClosed
	}
	if err := validPrefix(prefix); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: list %q: %w", prefix, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops minio-go's listing goroutine when fn fails
	last := ""
	for obj := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + prefix, Recursive: true}) {
		if obj.Err != nil {
			if errors.Is(obj.Err, context.Canceled) || errors.Is(obj.Err, context.DeadlineExceeded) {
				return fmt.Errorf("store: list %q in %s: %w", prefix, s.location, obj.Err)
			}
			return s.mapErr("list", prefix, obj.Err)
		}
		name, ok := strings.CutPrefix(obj.Key, s.prefix)
		if !ok || ValidName(name) != nil {
			continue
		}
		if name <= last && last != "" {
			return fmt.Errorf("store: list %q in %s: server listed %q after %q, not in lexical order", prefix, s.location, name, last)
		}
		last = name
		if err := fn(name, obj.Size); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// Delete implements Store.
func (s *s3Store) Delete(ctx context.Context, name string) error {
	if err := s.check(ctx, name); err != nil {
		return err
	}
	err := s.client.RemoveObject(ctx, s.bucket, s.prefix+name, minio.RemoveObjectOptions{})
	if err != nil {
		if code := minio.ToErrorResponse(err).Code; code == minio.NoSuchKey {
			return nil
		}
		return s.mapErr("delete", name, err)
	}
	return nil
}

// Location implements Store.
func (s *s3Store) Location() string { return s.location }

// Close implements Store.
func (s *s3Store) Close() error {
	s.closed.Store(true)
	s.transport.CloseIdleConnections()
	return nil
}
