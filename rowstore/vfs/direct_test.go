package vfs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteFileDirect: WriteFileDirect replaces a file with exactly data
// whatever its size and alignment (aligned, unaligned through the bounce
// buffer, a tail under a block), and leaves no temporary file behind.
func TestWriteFileDirect(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "obj")
	big := make([]byte, 3*bounceSize+DirectAlign+123)
	for i := range big {
		big[i] = byte(i * 7)
	}
	for _, data := range [][]byte{
		big,                   // aligned (a large allocation), with a tail
		big[1:],               // unaligned: through the bounce buffer
		big[:2*DirectAlign],   // whole blocks only
		big[:DirectAlign-1],   // a tail only
		big[5 : 5+bounceSize], // unaligned, one bounce buffer's worth
	} {
		err := WriteFileDirect(name, data, 0o644)
		if errors.Is(err, ErrNoDirect) {
			// The file system refuses O_DIRECT: nothing may be left.
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if IsTemp(e.Name()) {
					t.Fatalf("refused direct write left %s behind", e.Name())
				}
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(name)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read back %d bytes (%v), want the %d written", len(got), err, len(data))
		}
		ents, err := os.ReadDir(dir)
		if err != nil || len(ents) != 1 {
			t.Fatalf("directory holds %v (%v), want only obj", ents, err)
		}
	}
}
