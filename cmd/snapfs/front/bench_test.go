package main

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkRun is the front's work for one hot command in process (flags,
// validation, the call on the socket, output), without the process's start:
// against a socket that answers as a daemon does.
func BenchmarkRun(b *testing.B) {
	dir := b.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, "control.sock"))
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		w.WriteHeader(http.StatusProcessing)
		_, _ = w.Write([]byte(`[{"name":"d","size":1073741824,"allocated":0,"block_size":16384,"open":0}]` + "\n"))
	})}
	go srv.Serve(ln)
	defer srv.Close()
	args := []string{"snapfs", "--store", dir, "disk", "list"}
	b.ReportAllocs()
	for b.Loop() {
		if code, handled := run(args, io.Discard, os.Stderr); !handled || code != 0 {
			b.Fatalf("run: %d %v", code, handled)
		}
	}
}
