package replicate

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/snapfs/snapfs/rowstore"
)

// newInternalRegion makes a local store, a Manager with opts and region
// "r" of k+m file:// stores under root, keyed by 32 bytes of keyByte; the
// store and Manager are closed when the test ends.
func newInternalRegion(t *testing.T, root string, opts Options, k, m int, keyByte byte) (*rowstore.Store, *Manager, []string, string) {
	t.Helper()
	dir := filepath.Join(root, "store")
	if err := rowstore.Create(dir, rowstore.Options{}); err != nil {
		t.Fatal(err)
	}
	rs, err := rowstore.Open(dir, rowstore.Options{SyncInterval: -1, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	mgr, err := New(dir, rs, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mgr.Close() })
	var urls []string
	for i := range k + m {
		d := filepath.Join(root, "s"+string(rune('0'+i)))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		urls = append(urls, "file://"+d)
	}
	key := filepath.Join(root, "key")
	if err := os.WriteFile(key, bytes.Repeat([]byte{keyByte}, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := mgr.AddRegion(context.Background(), RegionConfig{Name: "r", K: k, M: m, Stores: urls, KeyFile: key}); err != nil {
		t.Fatal(err)
	}
	return rs, mgr, urls, key
}

// newInternalDisk creates disk name of size bytes in blocks of bs in rs
// and opens it; the handle is closed when the test ends.
func newInternalDisk(t *testing.T, rs *rowstore.Store, name string, size int64, bs int) *rowstore.Disk {
	t.Helper()
	if _, err := rs.CreateDisk(name, size, bs); err != nil {
		t.Fatal(err)
	}
	h, err := rs.OpenDisk(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}
