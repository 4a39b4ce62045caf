package store

import (
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// TestRtrial10S3NoAnswerFails (trial 10, the scheduled job): an S3
// service that accepts connections and requests but never answers (a
// stopped or hung server, a black-holing proxy) must fail the store's
// calls, not hang them: nothing above sets a deadline for metadata calls.
//
// Seen on main e1f8edc: versitygw stopped with SIGSTOP, then
// `snapfs-sync.sh s3r` (and region check) hung in openStores →
// ensureBucket → BucketExists until killed after 300 s; the job kept its
// lock, so every later run exited 3 ("another run holds the lock"), which
// the systemd unit counts as success: backups stopped without a failure.
func TestRtrial10S3NoAnswerFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c) }() // reads, never answers
		}
	}()
	old := s3ResponseTimeout
	s3ResponseTimeout = 200 * time.Millisecond
	defer func() { s3ResponseTimeout = old }()
	done := make(chan error, 1)
	go func() {
		_, err := Open(context.Background(), "s3://bucket-a/p", Options{
			Endpoint: "http://" + ln.Addr().String(), PathStyle: true, AccessKey: "k", SecretKey: "secretsecret",
			NoCreateBucket: true, getenv: func(string) string { return "" }})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("open of a store whose server never answers: no error")
		}
		t.Logf("open failed as it should: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("open of a store whose server never answers still hangs after 30 s")
	}
}
