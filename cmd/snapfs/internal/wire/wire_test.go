package wire

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"
)

// TestNoAnswer: only a call whose connection could not be made is
// ErrNoAnswer (a caller may then try another way without running the
// operation twice); a daemon that took the request and failed is not.
func TestNoAnswer(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	c := NewClient(SocketPath(dir))
	defer c.Close()
	if _, err := c.Call(ctx, "Status", struct{}{}); !errors.Is(err, ErrNoAnswer) {
		t.Fatalf("no socket: %v, want ErrNoAnswer", err)
	}

	// A socket whose server reads the request and drops the connection.
	ln, err := net.Listen("unix", filepath.Join(dir, SocketName))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan struct{}, 1)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 4096)
			_, _ = conn.Read(buf)
			got <- struct{}{}
			conn.Close()
		}
	}()
	if _, err := c.Call(ctx, "CreateSnapshotWith", CreateSnapshotRequest{Name: "s"}); err == nil || errors.Is(err, ErrNoAnswer) {
		t.Fatalf("request sent, connection dropped: %v, want an error that is not ErrNoAnswer", err)
	}
	<-got

	// A daemon's error answer: an *Error with its code and exit code.
	ln.Close()
	c2 := serveHTTP(t, filepath.Join(dir, "b.sock"), func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusConflict)
		_, _ = w.Write([]byte(`{"code":"exists","message":"already exists: snapshot \"s\""}`))
	})
	_, err = c2.Call(ctx, "CreateSnapshotWith", CreateSnapshotRequest{Name: "s"})
	var we *Error
	if !errors.As(err, &we) || we.Code != "exists" || ExitOf(err) != 4 || Message(err) != `already exists: snapshot "s"` {
		t.Fatalf("error answer: %#v (exit %d)", err, ExitOf(err))
	}
}

// serveHTTP serves h on a unix socket at sock until the test ends and
// returns a client of it.
func serveHTTP(t *testing.T, sock string, h http.HandlerFunc) *Client {
	t.Helper()
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	c := NewClient(sock)
	t.Cleanup(c.Close)
	return c
}

// TestTypedJSON: the "type" field leads; a raw answer prints as the value.
func TestTypedJSON(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string
	}{
		{struct {
			A int `json:"a"`
		}{1}, `{"type":"x","a":1}`},
		{struct{}{}, `{"type":"x"}`},
		{[]int{1}, `{"type":"x","value":[1]}`},
	} {
		b, err := TypedJSON("x", tc.v)
		if err != nil || string(b) != tc.want {
			t.Errorf("TypedJSON(%v) = %s, %v; want %s", tc.v, b, err, tc.want)
		}
	}
}

// TestAnswerBound: a daemon that takes the connection and sends nothing is
// *Unanswered after the bound (Sent: the request was written); one that
// says "102 Processing" at once may take longer than the bound.
func TestAnswerBound(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	ln, err := net.Listen("unix", filepath.Join(dir, "hung.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, conn) }()
		}
	}()
	// Without a bound (package service's client) it waits as before.
	c0 := NewClient(filepath.Join(dir, "hung.sock"))
	defer c0.Close()
	cctx0, cancel0 := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel0()
	var ua *Unanswered
	if _, err := c0.Call(cctx0, "Status", struct{}{}); err == nil || errors.As(err, &ua) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("unbounded client, hung daemon: %v, want the context's error after its deadline", err)
	}
	c := NewClient(filepath.Join(dir, "hung.sock"))
	defer c.Close()
	c.SetAnswerTimeout(300 * time.Millisecond)
	start := time.Now()
	_, err = c.Call(ctx, "CreateSnapshotWith", CreateSnapshotRequest{Name: "s"})
	if !errors.As(err, &ua) || !ua.Timeout || !ua.Sent || errors.Is(err, ErrNoAnswer) || time.Since(start) > 5*time.Second {
		t.Fatalf("hung daemon: %v after %v, want *Unanswered (sent, timeout)", err, time.Since(start))
	}

	c2 := serveHTTP(t, filepath.Join(dir, "slow.sock"), func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		w.WriteHeader(http.StatusProcessing)
		time.Sleep(time.Second)
		_, _ = w.Write([]byte(`{"ok":true}`))
	})
	c2.SetAnswerTimeout(300 * time.Millisecond)
	raw, err := c2.Call(ctx, "CreateSnapshotWith", CreateSnapshotRequest{Name: "s"})
	if err != nil || string(raw) != `{"ok":true}` {
		t.Fatalf("slow daemon that said 102: %s, %v", raw, err)
	}
	// A cancelled context (SIGINT) is *Unanswered too, not a timeout.
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err = c.Call(cctx, "CreateSnapshotWith", CreateSnapshotRequest{Name: "s"})
	if !errors.As(err, &ua) || ua.Timeout || !ua.Sent {
		t.Fatalf("cancelled: %v, want *Unanswered (sent, no timeout)", err)
	}
}
