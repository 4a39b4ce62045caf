package main

import (
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/exitcode"
)

func pprofContext(addr string) *cli.Context {
	set := flag.NewFlagSet("mount", flag.ContinueOnError)
	set.String("pprof", addr, "")
	return cli.NewContext(cli.NewApp(), set, nil)
}

// TestPprof: --pprof serves the profiles the benchmarks fetch, and a busy
// address is a usage error, not a daemon without profiles.
func TestPprof(t *testing.T) {
	defer runtime.SetBlockProfileRate(0)
	defer runtime.SetMutexProfileFraction(0)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := startPprof(pprofContext(""), log); err != nil {
		t.Fatalf("no --pprof: %v", err)
	}
	if runtime.SetMutexProfileFraction(-1) != 0 {
		t.Fatal("mutex profiling turned on without --pprof")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if err := startPprof(pprofContext(addr), log); err != nil {
		t.Fatalf("--pprof %s: %v", addr, err)
	}
	if runtime.SetMutexProfileFraction(-1) == 0 {
		t.Error("--pprof did not turn on mutex profiling")
	}
	for _, p := range []string{"", "heap", "block?seconds=1", "mutex?debug=1", "goroutine?debug=1"} {
		resp, err := http.Get("http://" + addr + "/debug/pprof/" + p)
		if err != nil {
			t.Fatalf("GET %s: %v", p, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(body) == 0 {
			t.Errorf("GET /debug/pprof/%s: %s, %d bytes", p, resp.Status, len(body))
		}
	}
	err = startPprof(pprofContext(addr), log)
	if !errors.Is(err, exitcode.ErrUsage) || !strings.Contains(err.Error(), addr) {
		t.Errorf("--pprof on a busy address: %v, want a usage error naming it", err)
	}
}

// TestPprofFlagTakesValue: the flag's value is not mistaken for the mountpoint.
func TestPprofFlagTakesValue(t *testing.T) {
	in := strings.Fields("snapfs mount /m --pprof 127.0.0.1:6060 --background")
	want := "snapfs mount --pprof 127.0.0.1:6060 --background -- /m"
	got, err := reorderArgs(newApp(&state{}), in)
	if err != nil || strings.Join(got, " ") != want {
		t.Errorf("reorderArgs(%q) = %q, %v; want %q", in, got, err, want)
	}
}
