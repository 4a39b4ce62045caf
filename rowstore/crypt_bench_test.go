package rowstore

import (
	"flag"
	"math/rand"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

var cryptBench = flag.Int("crypt.bench", 0, "TestEncryptionThroughput: rounds of interleaved plain/encrypted runs (0: do nothing)")

// TestEncryptionThroughput measures an encrypted disk against a plain one in
// the same process, interleaved (plain, encrypted, plain, ...), on tmpfs so
// that the cost of encryption is not hidden by the disk: sequential 1 MiB
// writes (one sync at the end), sequential 1 MiB reads (cold caches: a new
// Store), random 4 KiB writes with a sync every 64. Default block size.
// go test -run TestEncryptionThroughput -crypt.bench 3 ./rowstore/
func TestEncryptionThroughput(t *testing.T) {
	if *cryptBench == 0 {
		t.Log("measures nothing without -crypt.bench N")
		return
	}
	const size = 256 << 20
	opts := Options{SyncInterval: -1, GCInterval: -1, ReserveBytes: -1}
	key := &Key{secret: []byte("benchmark passphrase"), source: "bench"}
	buf := make([]byte, 1<<20)
	rand.New(rand.NewSource(1)).Read(buf)
	small := make([]byte, 4096)
	rand.New(rand.NewSource(2)).Read(small)
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	// cpus[k][phase]: CPU time of the process during each phase.
	var cpus [2][3]time.Duration
	run := func(encrypted bool) (w, r, rw float64) {
		k := 0
		if encrypted {
			k = 1
		}
		dir := filepath.Join(fastTempDir(t), "store")
		defer os.RemoveAll(dir)
		if err := Create(dir, opts); err != nil {
			t.Fatal(err)
		}
		s, err := Open(dir, opts)
		if err != nil {
			t.Fatal(err)
		}
		if encrypted {
			_, err = s.CreateEncryptedDisk("d", size, 0, key)
		} else {
			_, err = s.CreateDisk("d", size, 0)
		}
		if err != nil {
			t.Fatal(err)
		}
		h, _ := s.OpenDisk("d")
		start, c0 := time.Now(), cpu()
		for off := int64(0); off < size; off += int64(len(buf)) {
			buf[0]++
			if _, err := h.WriteAt(buf, off); err != nil {
				t.Fatal(err)
			}
		}
		if err := h.Sync(); err != nil {
			t.Fatal(err)
		}
		w = float64(size) / time.Since(start).Seconds() / 1e6
		cpus[k][0] += cpu() - c0
		h.Close()
		s.Close()
		o := opts
		if encrypted {
			o.Keys = []*Key{key}
		}
		if s, err = Open(dir, o); err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		h, err = s.OpenDisk("d")
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		start, c0 = time.Now(), cpu()
		for off := int64(0); off < size; off += int64(len(buf)) {
			if _, err := h.ReadAt(buf, off); err != nil {
				t.Fatal(err)
			}
		}
		r = float64(size) / time.Since(start).Seconds() / 1e6
		cpus[k][1] += cpu() - c0
		rng := rand.New(rand.NewSource(3))
		const n = 8192
		start, c0 = time.Now(), cpu()
		for i := 0; i < n; i++ {
			small[0] = byte(i)
			if _, err := h.WriteAt(small, rng.Int63n(size/4096)*4096); err != nil {
				t.Fatal(err)
			}
			if i%64 == 63 {
				if err := h.Sync(); err != nil {
					t.Fatal(err)
				}
			}
		}
		rw = float64(n) / time.Since(start).Seconds()
		cpus[k][2] += cpu() - c0
		return w, r, rw
	}
	var sum [2][3]float64
	for i := 0; i < *cryptBench; i++ {
		for _, enc := range []bool{false, true} {
			w, r, rw := run(enc)
			k := 0
			if enc {
				k = 1
			}
			sum[k][0] += w
			sum[k][1] += r
			sum[k][2] += rw
			t.Logf("round %d encrypted=%v: seq write %.0f MB/s, seq read %.0f MB/s, 4 KiB random write %.0f IOPS", i, enc, w, r, rw)
		}
	}
	t.Logf("ratios encrypted/plain over %d rounds: seq write %.2f, seq read %.2f, 4 KiB random write %.2f",
		*cryptBench, sum[1][0]/sum[0][0], sum[1][1]/sum[0][1], sum[1][2]/sum[0][2])
	t.Logf("CPU time plain/encrypted (throughput per CPU second, same ratio sense): seq write %.2f, seq read %.2f, 4 KiB random write %.2f",
		cpus[0][0].Seconds()/cpus[1][0].Seconds(), cpus[0][1].Seconds()/cpus[1][1].Seconds(), cpus[0][2].Seconds()/cpus[1][2].Seconds())
}
