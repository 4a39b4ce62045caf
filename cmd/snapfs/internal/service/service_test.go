package service

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/exitcode"
	"github.com/snapfs/snapfs/rowstore"
)

// both runs fn against a Local and against a Client of a Handler serving
// another Local: the two must behave the same.
func both(t *testing.T, fn func(t *testing.T, s Service)) {
	t.Run("local", func(t *testing.T) { fn(t, newLocal(t)) })
	t.Run("client", func(t *testing.T) { fn(t, serve(t, newLocal(t))) })
}

// serve serves s on a control socket until the test ends; it returns a
// Client of it.
func serve(t *testing.T, s Service) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "c.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: Handler(s, nil)}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	c := NewClient(sock)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestServiceSameOnBothPaths(t *testing.T) {
	both(t, func(t *testing.T, s Service) {
		ctx := context.Background()
		if _, err := s.CreateDisk(ctx, CreateDiskRequest{Name: "d", Size: 1 << 20}); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			err  error
			want error
		}{
			{func() error { _, err := s.CreateDisk(ctx, CreateDiskRequest{Name: "d", Size: 1 << 20}); return err }(), rowstore.ErrExists},
			{func() error {
				_, err := s.CreateDisk(ctx, CreateDiskRequest{Name: "bad name", Size: 1 << 20})
				return err
			}(), rowstore.ErrInvalid},
			{func() error { _, err := s.GetDisk(ctx, "nope"); return err }(), rowstore.ErrNotFound},
			{func() error {
				_, err := s.MountSnapshot(ctx, SnapMountRequest{Snapshot: "s", Disk: "d", Mountpoint: "/nonexistent"})
				return err
			}(), exitcode.ErrNoDaemon},
			{s.Shutdown(ctx), exitcode.ErrNoDaemon},
		} {
			if !errors.Is(tc.err, tc.want) {
				t.Errorf("got %v, want %v", tc.err, tc.want)
			}
		}
		if _, err := s.CreateSnapshot(ctx, "s", []string{"d"}); err != nil {
			t.Fatal(err)
		}
		d, err := s.Diff(ctx, DiffRequest{Old: "s", Disk: "d"})
		if err != nil || len(d.Ranges) != 0 || d.BlockSize != rowstore.DefaultBlockSize {
			t.Fatalf("diff: %+v %v", d, err)
		}
		ss, err := s.ListSnapshots(ctx, "d")
		if err != nil || len(ss) != 1 || ss[0].State != "available" {
			t.Fatalf("list: %+v %v", ss, err)
		}
	})
}

func TestTypedJSON(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string
	}{
		{struct{ A int }{1}, `{"type":"x","A":1}`},
		{struct{}{}, `{"type":"x"}`},
		{[]int{1}, `{"type":"x","value":[1]}`},
	} {
		b, err := TypedJSON("x", tc.v)
		if err != nil || string(b) != tc.want {
			t.Errorf("TypedJSON(%v) = %s, %v; want %s", tc.v, b, err, tc.want)
		}
	}
}

// TestInvokeAnswersAsTheDaemon: Invoke (the full binary's hot commands
// without a daemon) answers a call with the JSON the daemon answers, and
// its errors keep their sentinel.
func TestInvokeAnswersAsTheDaemon(t *testing.T) {
	ctx := context.Background()
	l := newLocal(t)
	c := serve(t, l)
	if _, err := Invoke(ctx, l, "CreateDisk", CreateDiskRequest{Name: "d", Size: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	got, err := Invoke(ctx, l, "ListDisks", struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	want, err := c.wc.Call(ctx, "ListDisks", struct{}{})
	if err != nil || string(got) != string(want) {
		t.Errorf("Invoke answered\n%s\nthe daemon\n%s (%v)", got, want, err)
	}
	if _, err := Invoke(ctx, l, "CreateDisk", CreateDiskRequest{Name: "d", Size: 1 << 20}); !errors.Is(err, rowstore.ErrExists) {
		t.Errorf("create twice: %v", err)
	}
	if _, err := Invoke(ctx, l, "NoSuchCall", struct{}{}); !errors.Is(err, rowstore.ErrIncompatible) {
		t.Errorf("unknown call: %v", err)
	}
}
