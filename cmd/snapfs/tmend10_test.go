package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/exitcode"
	"github.com/snapfs/snapfs/cmd/snapfs/internal/service"
	"github.com/snapfs/snapfs/rowstore"
)

// runIn runs one snapfs command in-process on store.
func runIn(t *testing.T, store string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(append([]string{"snapfs", "--store", store}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// mustCLI runs one snapfs command in-process and fails the test unless it
// succeeds.
func mustCLI(t *testing.T, store string, args ...string) string {
	t.Helper()
	code, out, errs := runIn(t, store, args...)
	if code != 0 {
		t.Fatalf("snapfs %v: exit %d: %s", args, code, errs)
	}
	return out
}

func writeKey(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Local trial 10: `disk rekey` with the same old and new key (the same
// file, or another file with the same content) said "the new key file
// unlocks it, the old one no longer does", which is false: the old one
// still does. It is refused (exit 2, one line naming both files) and
// changes nothing: the old key still rekeys the disk afterwards.
func TestTmend10RekeySameKey(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	k := writeKey(t, filepath.Join(dir, "k"), "correct horse battery staple\n")
	same := writeKey(t, filepath.Join(dir, "same"), "correct horse battery staple") // same key: one newline is not part of it
	other := writeKey(t, filepath.Join(dir, "other"), "another passphrase")
	mustCLI(t, store, "init")
	mustCLI(t, store, "disk", "create", "vault", "--size", "4M", "--encrypt", "--key-file", k)
	for _, nk := range []string{k, same} {
		code, out, errs := runIn(t, store, "disk", "rekey", "vault", "--key-file", k, "--new-key-file", nk)
		if code != exitcode.Usage || !strings.HasPrefix(errs, "snapfs: ") || !strings.Contains(errs, "same key") || strings.Count(errs, "\n") != 1 {
			t.Errorf("rekey to %s: exit %d, want %d; stderr %q", filepath.Base(nk), code, exitcode.Usage, errs)
		}
		if strings.Contains(out, "no longer") {
			t.Errorf("rekey to %s printed %q", filepath.Base(nk), out)
		}
	}
	// Nothing changed: the old key still opens the disk (a rekey with it
	// succeeds), and then the new one does and the old one does not.
	mustCLI(t, store, "disk", "rekey", "vault", "--key-file", k, "--new-key-file", other)
	third := writeKey(t, filepath.Join(dir, "third"), "a third passphrase")
	if code, _, errs := runIn(t, store, "disk", "rekey", "vault", "--key-file", k, "--new-key-file", third); code != exitcode.WrongKey {
		t.Errorf("rekey with the replaced key: exit %d, want %d (%s)", code, exitcode.WrongKey, errs)
	}
}

// Local trial 10: `policy create --every 0s` was accepted as a daily
// schedule (0 is what "no --every" means inside). A flag given a value
// that means "not given" (0 or negative intervals and counts, empty
// strings) is refused with exit 2 and one line naming the flag, and no
// policy is made; valid flags still create one.
func TestTmend10PolicyFlagsZero(t *testing.T) {
	store := filepath.Join(t.TempDir(), "store")
	mustCLI(t, store, "init")
	base := []string{"policy", "create", "p", "--at", "02:00"}
	for _, tc := range []struct {
		flag string // the flag the error must name
		args []string
	}{
		{"--every", []string{"--every", "0s", "--retain-count", "3"}},
		{"--every", []string{"--every", "0", "--retain-count", "3"}},
		{"--every", []string{"--every", "-1h", "--retain-count", "3"}},
		{"--every", []string{"--every", "30s", "--retain-count", "3"}},
		{"--retain-days", []string{"--retain-days", "0", "--retain-count", "3"}},
		{"--retain-count", []string{"--retain-count", "0", "--retain-days", "3"}},
		{"--retain-count", []string{"--retain-count", "-2"}},
		{"--copy-retain-days", []string{"--retain-count", "3", "--copy-to", "dr", "--copy-retain-days", "0"}},
		{"--copy-retain-count", []string{"--retain-count", "3", "--copy-to", "dr", "--copy-retain-count", "-1"}},
		{"--copy-to", []string{"--retain-count", "3", "--copy-to", ""}},
		{"--hook-timeout", []string{"--retain-count", "3", "--hook-timeout", "0s"}},
		{"--hook-timeout", []string{"--retain-count", "3", "--hook-timeout", "-5s"}},
		{"--weekdays", []string{"--retain-count", "3", "--weekdays", ""}},
		{"--weekdays", []string{"--retain-count", "3", "--weekdays", " , "}},
		{"--timezone", []string{"--retain-count", "3", "--timezone", ""}},
		{"--consistency", []string{"--retain-count", "3", "--consistency", ""}},
		{"--on-pre-hook-failure", []string{"--retain-count", "3", "--on-pre-hook-failure", ""}},
		{"--disk", []string{"--retain-count", "3", "--disk", ""}},
		{"--post-hook", []string{"--retain-count", "3", "--post-hook", ""}},
	} {
		code, out, errs := runIn(t, store, append(base, tc.args...)...)
		if code != exitcode.Usage || !strings.HasPrefix(errs, "snapfs: ") || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, tc.flag) {
			t.Errorf("%v: exit %d, want %d naming %s; stdout %q, stderr %q", tc.args, code, exitcode.Usage, tc.flag, out, errs)
		}
	}
	if out := mustCLI(t, store, "--json", "policy", "list"); strings.Contains(out, `"p"`) {
		t.Fatalf("a refused policy create made a policy: %s", out)
	}
	out := mustCLI(t, store, append(base, "--every", "1h", "--retain-count", "3", "--weekdays", "mon")...)
	if !strings.Contains(out, "every 1h0m0s mon") {
		t.Errorf("valid policy: %q", out)
	}
}

// serveStore serves a Local over store's control socket, as the daemon
// does (without the mount), so that CLI runs share one open store. The
// store runs no background work: exclusive figures, once counted, stay
// as they are until --fresh.
func serveStore(t *testing.T, store string) {
	t.Helper()
	st, err := rowstore.Open(store, rowstore.Options{SyncInterval: -1, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	local := service.NewLocal(st, store)
	ln, err := net.Listen("unix", service.SocketPath(store))
	if err != nil {
		local.Close()
		t.Fatal(err)
	}
	hs := &http.Server{Handler: service.Handler(local, slog.New(slog.DiscardHandler))}
	go hs.Serve(ln)
	t.Cleanup(func() {
		hs.Close()
		if err := local.Close(); err != nil {
			t.Error(err)
		}
	})
}

// Local trial 10: `snapfs usage` printed a stale "live data" (149 MiB live
// with 115 MiB of segments) as if current, the stale flag sitting on the
// "exclusive counted" line. Every figure of the last count is now marked
// where it is printed while a change came since: each EXCLUSIVE cell and
// the live data line (text), exclusive_stale on every usage line and
// live_stale on store_usage (JSON); --fresh shows them unmarked.
func TestTmend10UsageStaleMarked(t *testing.T) {
	store := filepath.Join(t.TempDir(), "store")
	mustCLI(t, store, "init")
	serveStore(t, store)
	mustCLI(t, store, "disk", "create", "d", "--size", "4M")
	if out := mustCLI(t, store, "usage", "--no-regions"); strings.Contains(out, "stale") || strings.Contains(out, "*") {
		t.Fatalf("first count (current) is marked stale:\n%s", out)
	}
	mustCLI(t, store, "snapshot", "create", "s1", "--disk", "d") // a change after the count
	out := mustCLI(t, store, "usage", "--no-regions")
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 0 && (f[0] == "disk" || f[0] == "snapshot"):
			if !strings.HasSuffix(line, "*") {
				t.Errorf("stale exclusive figure not marked: %q", line)
			}
		case strings.HasPrefix(line, "live data:"):
			if !strings.Contains(line, "* (stale)") {
				t.Errorf("stale live figure not marked: %q", line)
			}
		}
	}
	if !strings.Contains(out, "\nlive, exclusive counted: ") || !strings.Contains(out, "(* stale: ") {
		t.Errorf("no note saying what * means:\n%s", out)
	}
	js := mustCLI(t, store, "--json", "usage", "--no-regions")
	for _, line := range strings.Split(strings.TrimSpace(js), "\n") {
		var v struct {
			Type           string
			ExclusiveStale *bool `json:"exclusive_stale"`
			LiveStale      *bool `json:"live_stale"`
		}
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		switch v.Type {
		case "usage":
			if v.ExclusiveStale == nil || !*v.ExclusiveStale {
				t.Errorf("usage line without exclusive_stale true: %s", line)
			}
		case "store_usage":
			if v.LiveStale == nil || !*v.LiveStale {
				t.Errorf("store_usage without live_stale true: %s", line)
			}
		}
	}
	// snapshot delete --dry-run's "frees" is the same figure.
	if out := mustCLI(t, store, "snapshot", "delete", "--dry-run", "s1"); !strings.Contains(out, "frees 0 B (stale") {
		t.Errorf("dry-run with a stale figure: %q", out)
	}
	if js := mustCLI(t, store, "--json", "snapshot", "delete", "--dry-run", "s1"); !strings.Contains(js, `"frees_stale":true`) {
		t.Errorf("dry-run --json with a stale figure: %q", js)
	}
	fresh := mustCLI(t, store, "usage", "--no-regions", "--fresh")
	if strings.Contains(fresh, "stale") || strings.Contains(fresh, "*") {
		t.Errorf("--fresh figures marked stale:\n%s", fresh)
	}
	if js := mustCLI(t, store, "--json", "usage", "--no-regions"); !strings.Contains(js, `"exclusive_stale":false`) || !strings.Contains(js, `"live_stale":false`) {
		t.Errorf("current figures in JSON:\n%s", js)
	}
	if out := mustCLI(t, store, "snapshot", "delete", "--dry-run", "s1"); strings.Contains(out, "stale") {
		t.Errorf("dry-run with a current figure: %q", out)
	}
}
