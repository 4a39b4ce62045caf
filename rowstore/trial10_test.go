package rowstore

import (
	"bytes"
	"strings"
	"sync/atomic"
	"testing"
)

// Trial 10: `disk create NEW --from-snapshot S --disk D --encrypt` made
// NEW at once and filled it block by block; a daemon killed mid-copy left
// NEW half copied, listed as an ordinary disk (seen: 33 MiB of 53 MiB,
// origin "-"). The copy is now built under a restore's temporary name
// (removed at the daemon's next start, hidden from listings) and renamed
// when complete: NEW is never listed before it holds the whole copy.
func TestTrial10EncryptedCopyAppearsWhole(t *testing.T) {
	s, _ := newTestStore(t, testOptions())
	_, key := writeKeyFile(t, "k", "the right passphrase", 0o600)
	const bs, nb = 4096, 2048 // 8 MiB, every block stored
	if _, err := s.CreateDisk("plain", nb*bs, bs); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, nb*bs)
	for b := range nb {
		copy(data[b*bs:], knownBlock(bs, b+1))
	}
	mustWrite(t, s, "plain", data, 0)
	if _, err := s.CreateSnapshot("s", []string{"plain"}, "manual"); err != nil {
		t.Fatal(err)
	}
	var done atomic.Bool
	seen, stopped := make(chan string, 1), make(chan struct{})
	go func() {
		defer close(stopped)
		for !done.Load() {
			ds, err := s.ListDisks()
			if err != nil {
				continue
			}
			for _, d := range ds {
				if d.Name != "copy" {
					continue
				}
				// Listed: it must be whole (it is listed from its rename on,
				// which may come before CopyToEncryptedDisk returns).
				msg := ""
				if h, err := s.OpenDisk("copy"); err != nil {
					msg = "copy listed but not opened: " + err.Error()
				} else {
					got := make([]byte, len(data))
					if _, err := h.ReadAt(got, 0); err != nil {
						msg = "copy listed but not read: " + err.Error()
					} else if !bytes.Equal(got, data) {
						msg = "copy listed while the copy ran: not whole"
					}
					h.Close()
				}
				if msg != "" {
					seen <- msg
				}
				return
			}
		}
	}()
	info, err := s.CopyToEncryptedDisk("copy", "s", "plain", key)
	done.Store(true)
	<-stopped
	if err != nil || !info.Encrypted || info.Name != "copy" || !strings.HasPrefix(info.Origin, "encrypted copy of snapshot s/plain") {
		t.Fatalf("encrypted copy: %+v %v", info, err)
	}
	select {
	case msg := <-seen:
		t.Fatal(msg)
	default:
	}
	ds, err := s.ListDisks()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if strings.HasPrefix(d.Name, "restore-") {
			t.Fatalf("temporary disk %s left behind", d.Name)
		}
	}
	if got := mustReadDisk(t, s, "copy", nb*bs); !bytes.Equal(got, data) {
		t.Fatal("the encrypted copy reads other data")
	}
}
