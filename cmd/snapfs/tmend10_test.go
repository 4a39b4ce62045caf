package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/exitcode"
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
