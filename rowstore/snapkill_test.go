package rowstore

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestSnapshotKillUnderLoad: snapshots taken while writers keep writing,
// the process SIGKILLed right after a snapshot create returned (Badger not
// closed, the index's catalog sync left to the background). After a reopen
// every acknowledged snapshot is there and holds every write acknowledged
// before its create was called (or a later write of the same writer, which
// raced with it), and the disk holds them too. The child (this binary, with
// snapKillEnv set) runs 4 writers of 4 KiB partial writes and whole 16 KiB
// blocks on disjoint blocks through the write-back cache, with the
// background write-back, commits and early writeback on, on a real
// directory.
func TestSnapshotKillUnderLoad(t *testing.T) {
	rounds := 4
	if raceEnabled {
		rounds = 2
	}
	seed := time.Now().UnixNano() % 1_000_000
	t.Logf("seed %d", seed)
	for r := 0; r < rounds; r++ {
		s := seed + int64(r)
		if !t.Run(fmt.Sprint(s), func(t *testing.T) { snapKillRound(t, s) }) {
			break
		}
	}
}

const snapKillEnv = "SNAPFS_SNAPKILL_CHILD" // "dir seed": run as the child

const (
	skBS     = 16 << 10
	skBlocks = 256
	skSlot   = 4 << 10
	skSlots  = skBlocks * skBS / skSlot
	skW      = 4 // writers; writer w owns the blocks b with b%skW == w
)

// skFill is the content of a slot at a generation: slot and gen, then
// bytes derived from both.
func skFill(p []byte, slot int, gen uint64) {
	binary.LittleEndian.PutUint64(p[0:], uint64(slot)+1)
	binary.LittleEndian.PutUint64(p[8:], gen)
	x := uint64(slot)*0x9e3779b97f4a7c15 ^ gen*0xbf58476d1ce4e5b9
	for i := 16; i < len(p); i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(p[i:], x)
	}
}

// skGen returns the generation a slot holds (0: never written), or an error
// if the content is not one skFill wrote for that slot.
func skGen(p []byte, slot int) (uint64, error) {
	if isZero(p) {
		return 0, nil
	}
	gen := binary.LittleEndian.Uint64(p[8:])
	want := make([]byte, len(p))
	skFill(want, slot, gen)
	if !bytes.Equal(p, want) {
		return 0, fmt.Errorf("slot %d: content is no generation of it (header %x)", slot, p[:16])
	}
	return gen, nil
}

// TestSnapshotKillChild is the child's body; it does nothing unless run by
// TestSnapshotKillUnderLoad.
func TestSnapshotKillChild(t *testing.T) {
	spec := os.Getenv(snapKillEnv)
	if spec == "" {
		return // not a child: nothing to do (this is not a skip)
	}
	var dir string
	var seed int64
	if _, err := fmt.Sscan(spec, &dir, &seed); err != nil {
		t.Fatalf("bad %s %q: %v", snapKillEnv, spec, err)
	}
	report := bufio.NewWriter(os.NewFile(3, "report"))
	say := func(format string, args ...any) {
		fmt.Fprintf(report, format+"\n", args...)
		report.Flush()
	}
	if err := runSnapKillChild(dir, seed, say); err != nil {
		say("error %v", strings.ReplaceAll(err.Error(), "\n", " "))
		t.Fatal(err)
	}
	time.Sleep(time.Minute) // killed meanwhile
}

func snapKillOptions() Options {
	opts := testOptions()
	opts.SyncInterval = 20 * time.Millisecond // background write-back, commits, index sync
	return opts
}

func runSnapKillChild(dir string, seed int64, say func(string, ...any)) error {
	s, err := Open(filepath.Join(dir, "store"), snapKillOptions())
	if err != nil {
		return err
	}
	h, err := s.OpenDisk("d")
	if err != nil {
		return err
	}
	var mu sync.Mutex
	acked := make([]uint64, skSlots) // per slot: the last generation acknowledged
	var failed error
	for w := 0; w < skW; w++ {
		go func() {
			rng := rand.New(rand.NewSource(seed*10 + int64(w)))
			gen := uint64(0)
			p := make([]byte, skBS)
			for {
				b := rng.Intn(skBlocks/skW)*skW + w
				slot, n := b*skBS/skSlot, 1
				if rng.Intn(6) == 0 {
					n = skBS / skSlot // the whole block
				} else {
					slot += rng.Intn(skBS / skSlot)
				}
				gen++
				for i := 0; i < n; i++ {
					skFill(p[i*skSlot:(i+1)*skSlot], slot+i, gen)
				}
				if _, err := h.WriteAt(p[:n*skSlot], int64(slot)*skSlot); err != nil {
					mu.Lock()
					failed = err
					mu.Unlock()
					return
				}
				mu.Lock()
				for i := 0; i < n; i++ {
					acked[slot+i] = gen
				}
				mu.Unlock()
			}
		}()
	}
	rng := rand.New(rand.NewSource(seed))
	for i := 0; ; i++ {
		time.Sleep(time.Duration(rng.Intn(10)) * time.Millisecond)
		mu.Lock()
		exp, err := json.Marshal(acked)
		if failed != nil {
			err = failed
		}
		mu.Unlock()
		if err != nil {
			return err
		}
		// Before the call: what it must hold (the page cache keeps the file
		// through the kill).
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("exp-%d", i)), exp, 0o600); err != nil {
			return err
		}
		if _, err := s.CreateSnapshot(fmt.Sprintf("s%d", i), []string{"d"}, ""); err != nil {
			return err
		}
		say("snap %d", i)
	}
}

func snapKillRound(t *testing.T, seed int64) {
	dir := t.TempDir() // a real filesystem: fsync and early writeback as in use
	store := filepath.Join(dir, "store")
	opts := snapKillOptions()
	if err := Create(store, opts); err != nil {
		t.Fatal(err)
	}
	s, err := Open(store, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateDisk("d", skBlocks*skBS, skBS); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSnapshotKillChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d", snapKillEnv, dir, seed))
	cmd.ExtraFiles = []*os.File{pw}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	killAfter := 3 + rand.New(rand.NewSource(seed)).Intn(8)
	watchdog := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() })
	defer watchdog.Stop()
	lines := bufio.NewScanner(pr)
	last := -1
	for lines.Scan() {
		f := strings.Fields(lines.Text())
		if f[0] == "error" {
			t.Fatalf("child: %s\n%s", lines.Text(), stderr.String())
		}
		if f[0] == "snap" {
			last, _ = strconv.Atoi(f[1])
			if last+1 == killAfter {
				cmd.Process.Signal(syscall.SIGKILL) // right after the ack
				break
			}
		}
	}
	cmd.Wait()
	if last+1 != killAfter {
		t.Fatalf("child ended after %d snapshots, want %d\n%s", last+1, killAfter, stderr.String())
	}

	s, err = Open(store, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check := func(what string, r interface {
		ReadAt([]byte, int64) (int, error)
	}, exp []uint64) {
		t.Helper()
		buf := make([]byte, skBlocks*skBS)
		if _, err := r.ReadAt(buf, 0); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		for slot := range skSlots {
			gen, err := skGen(buf[slot*skSlot:(slot+1)*skSlot], slot)
			if err != nil {
				t.Fatalf("seed %d: %s: %v", seed, what, err)
			}
			if gen < exp[slot] {
				t.Fatalf("seed %d: %s: slot %d holds generation %d, but %d was acknowledged before", seed, what, slot, gen, exp[slot])
			}
		}
	}
	var exp []uint64
	for i := 0; i <= last; i++ {
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("exp-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		exp = nil
		if err := json.Unmarshal(b, &exp); err != nil {
			t.Fatal(err)
		}
		r, err := s.OpenSnapshotDisk(fmt.Sprintf("s%d", i), "d")
		if err != nil {
			t.Fatalf("seed %d: acknowledged snapshot s%d: %v", seed, i, err)
		}
		check(fmt.Sprintf("snapshot s%d", i), r, exp)
		r.Close()
	}
	h, err := s.OpenDisk("d")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	check("disk after the last snapshot", h, exp)
}
