package store

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// A lying S3 endpoint (fault injection: versitygw never does this) that
// answers a ranged GET with a body far longer than the range. Get must
// fail with ErrShortRead after reading little more than the range, not
// buffer the whole body: a malicious or broken store must not make a
// reader allocate without bound.
func TestS3GetRangeBoundsBody(t *testing.T) {
	const body = 256 << 20
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead || r.URL.Query().Has("location") || r.URL.Path == "/bkt" || r.URL.Path == "/bkt/" {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT")
		w.Header().Set("ETag", "\"e\"")
		w.WriteHeader(http.StatusOK) // not 206, and no Content-Length: the whole "object"
		chunk := make([]byte, 1<<20)
		for served.Load() < body {
			n, err := w.Write(chunk)
			served.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	s, err := Open(ctx, "s3://bkt/p", Options{Endpoint: strings.TrimPrefix(srv.URL, "http://"), Insecure: true, PathStyle: true, Region: "us-east-1", AccessKey: "a", SecretKey: "s"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b, err := s.Get(ctx, "x", 64, 4096)
	if !errors.Is(err, ErrShortRead) {
		t.Fatalf("ranged get of a lying store: %d bytes, %v; want ErrShortRead", len(b), err)
	}
	if n := served.Load(); n >= body {
		t.Fatalf("read the whole %d-byte body for a 4096-byte range", n)
	}
}
