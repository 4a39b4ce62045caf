package integration

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Local trial 10: `snapfs mount --background --key-file K` with a key that
// opens nothing said "mounted"; the warning went only to the daemon's
// log. Now: when the store has encrypted disks and no key file given
// opens any of them, nothing is mounted (exit 13, one line naming the key
// file and the disks); a key file that opens nothing while another opens
// the disks, or on a store without encrypted disks, mounts with a warning
// on the command's stderr (and in --json's result).
func TestTmend10MountWrongKey(t *testing.T) {
	needRoot(t)
	tmp := t.TempDir()
	store, mp := filepath.Join(tmp, "store"), filepath.Join(tmp, "m")
	key := func(name, content string) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good, wrong := key("good", "the vault passphrase"), key("wrong", "not the vault passphrase")

	// A store without encrypted disks: a warning, and the mount serves.
	plain := filepath.Join(tmp, "plain")
	ok(t, plain, "init")
	pm := filepath.Join(tmp, "pm")
	r := snapfs(t, plain, "mount", "--background", "--key-file", wrong, pm)
	if r.code != 0 {
		t.Fatalf("mount of a plain store with a key file: exit %d: %s", r.code, r.stderr)
	}
	stopDaemon(t, plain, pm, "")
	if !strings.Contains(r.stderr, "snapfs: warning: key file "+wrong+" opens no encrypted disk (the store has no encrypted disk)") {
		t.Errorf("plain store, stderr %q: no warning", r.stderr)
	}

	ok(t, store, "init")
	ok(t, store, "disk", "create", "vault", "--size", "4M", "--encrypt", "--key-file", good)
	ok(t, store, "disk", "create", "open", "--size", "4M")

	// The wrong key only: refused, nothing mounted, the mountpoint the
	// command made is gone.
	r = fails(t, store, 13, "mount", "--background", "--key-file", wrong, mp)
	if !strings.Contains(r.stderr, wrong) || !strings.Contains(r.stderr, "vault") || !strings.Contains(r.stderr, "nothing was mounted") {
		t.Errorf("wrong key: stderr %q", r.stderr)
	}
	if isMounted(mp) {
		stopDaemon(t, store, mp, "")
		t.Fatal("a mount whose key file opens nothing was made")
	}
	if _, err := os.Stat(mp); !os.IsNotExist(err) {
		t.Errorf("the refused mount left its mountpoint: %v", err)
	}

	// The right key and a wrong one: mounted, the wrong one named on
	// stderr and in --json; the vault is readable.
	r = snapfs(t, store, "--json", "mount", "--background", "--key-file", good, "--key-file", wrong, mp)
	if r.code != 0 {
		t.Fatalf("mount with the right key and a wrong one: exit %d: %s", r.code, r.stderr)
	}
	t.Cleanup(func() { stopDaemon(t, store, mp, "") })
	if !strings.Contains(r.stderr, "snapfs: warning: key file "+wrong+" opens no encrypted disk") || strings.Contains(r.stderr, good) {
		t.Errorf("stderr %q: want one warning naming %s", r.stderr, wrong)
	}
	var m struct{ Warnings []string }
	jsonLine(t, r.stdout, "mount", &m)
	if len(m.Warnings) != 1 || !strings.Contains(m.Warnings[0], wrong) {
		t.Errorf("--json warnings %q", m.Warnings)
	}
	data := randBytes(t, 8192)
	writeAt(t, filepath.Join(mp, "disks", "vault"), 0, data)
	if got := readAt(t, filepath.Join(mp, "disks", "vault"), 0, len(data)); !bytes.Equal(got, data) {
		t.Error("the unlocked vault did not read back what was written")
	}
}
