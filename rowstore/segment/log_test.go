package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/snapfs/snapfs/rowstore/ids"
	"github.com/snapfs/snapfs/rowstore/vfs"
)

// rec returns the i-th record (from 0) of a test history: its content is a
// function of i, so a reader can check it without the writer's memory.
func rec(i int) *Record {
	n := (i * 37) % 300
	p := make([]byte, n)
	for j := range p {
		p[j] = byte(i + j*7)
	}
	if i%10 == 9 {
		return &Record{Kind: KindZero, Layer: 1, Block: ids.Block(i), Epoch: ids.Epoch(i / 5), Seq: ids.Seq(i + 1), Payload: zeroPayload(uint64(i))}
	}
	return &Record{Kind: KindData, Flags: uint16(i), Layer: 1, Block: ids.Block(i), Epoch: ids.Epoch(i / 5), Seq: ids.Seq(i + 1), Payload: p}
}

func sameRecord(a, b *Record) bool {
	return a.Kind == b.Kind && a.Flags == b.Flags && a.Layer == b.Layer && a.Block == b.Block &&
		a.Epoch == b.Epoch && a.Seq == b.Seq && bytes.Equal(a.Payload, b.Payload)
}

func mustOpen(t testing.TB, fs vfs.FS, dir string, size int64) *Log {
	t.Helper()
	l, err := Open(fs, dir, Options{SegmentSize: size})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// scanAll returns the records of the whole log, checking that each is the
// history's record for its sequence number.
func scanAll(t *testing.T, l *Log) ([]Pos, Pos) {
	t.Helper()
	var got []Pos
	end, err := l.Scan(Pos{}, func(r *Record, pos Pos) error {
		i := int(r.Seq) - 1
		if i != len(got) {
			return fmt.Errorf("record %d at %v has seq %d: order or prefix broken", len(got), pos, r.Seq)
		}
		if !sameRecord(r, rec(i)) {
			return fmt.Errorf("record %d at %v has wrong content", i, pos)
		}
		got = append(got, pos)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got, end
}

func appendN(t *testing.T, l *Log, from, to int) []Pos {
	t.Helper()
	var ps []Pos
	for i := from; i < to; i++ {
		p, err := l.Append(rec(i))
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	return ps
}

func TestAppendReadScan(t *testing.T) {
	for _, fsName := range []string{"os", "crash"} {
		t.Run(fsName, func(t *testing.T) {
			var fs vfs.FS = vfs.NewCrashFS()
			dir := "log"
			if fsName == "os" {
				fs, dir = vfs.Default, filepath.Join(t.TempDir(), "log")
			}
			l := mustOpen(t, fs, dir, 4096)
			if l.Active() != 1 || l.Tail() != (Pos{Segment: 1, Offset: FileHeaderSize}) {
				t.Fatalf("fresh log: active %d tail %v", l.Active(), l.Tail())
			}
			const n = 300
			ps := appendN(t, l, 0, n)
			segs := l.Segments()
			if len(segs) < 5 {
				t.Fatalf("only %d segments", len(segs))
			}
			for _, s := range segs[:len(segs)-1] {
				if s.Size > 4096 {
					t.Fatalf("segment %d has %d bytes", s.Number, s.Size)
				}
			}
			var buf []byte
			for i, p := range ps { // before any Sync: reads see unsynced records
				r, err := l.Read(p, buf)
				if err != nil {
					t.Fatal(err)
				}
				if !sameRecord(&r, rec(i)) {
					t.Fatalf("Read %v: wrong record", p)
				}
				buf = r.Payload[:0]
			}
			got, end := scanAll(t, l)
			if len(got) != n || end != l.Tail() {
				t.Fatalf("scan: %d records, end %v, tail %v", len(got), end, l.Tail())
			}
			for i := range got {
				if got[i] != ps[i] {
					t.Fatalf("scan pos %v, append pos %v", got[i], ps[i])
				}
			}
			// From the middle of the log.
			k := 0
			if _, err := l.Scan(ps[150], func(r *Record, pos Pos) error {
				if r.Seq != ids.Seq(151+k) {
					return fmt.Errorf("seq %d", r.Seq)
				}
				k++
				return nil
			}); err != nil || k != n-150 {
				t.Fatalf("scan from middle: %d records, %v", k, err)
			}
			// A segment-only start, appending from inside fn (as the cleaner does).
			seg := segs[1].Number
			k = 0
			stop := errors.New("stop")
			_, err := l.Scan(Pos{Segment: seg}, func(r *Record, pos Pos) error {
				if pos.Segment != seg {
					return stop
				}
				k++
				_, err := l.Append(rec(n + k - 1))
				return err
			})
			if !errors.Is(err, stop) || k == 0 {
				t.Fatalf("scan of one segment: %d records, %v", k, err)
			}
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}
			if err := l.Remove(l.Active()); err == nil {
				t.Fatal("removed the active segment")
			}
			if err := l.Rotate(); err != nil {
				t.Fatal(err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Append(rec(0)); !errors.Is(err, os.ErrClosed) {
				t.Fatalf("append after close: %v", err)
			}

			l = mustOpen(t, fs, dir, 4096)
			defer l.Close()
			got, _ = scanAll(t, l)
			if len(got) != n+k {
				t.Fatalf("after reopen: %d records, want %d", len(got), n+k)
			}
			// Remove the oldest segment: Scan from 0 now starts after it, and
			// a position in it no longer reads.
			first := l.Segments()[0].Number
			if err := l.Remove(first); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Read(ps[0], nil); err == nil {
				t.Fatal("read from a removed segment")
			}
			if _, err := l.Scan(Pos{Segment: first, Offset: ps[0].Offset}, func(r *Record, pos Pos) error {
				if pos.Segment <= first {
					return fmt.Errorf("record in removed segment")
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestAppendInvalid(t *testing.T) {
	l := mustOpen(t, vfs.NewCrashFS(), "log", 0)
	defer l.Close()
	for _, r := range []*Record{
		{Kind: 0, Seq: 1},
		{Kind: KindData, Seq: 0},
		{Kind: KindZero, Seq: 1, Payload: []byte{1}},
		{Kind: KindData, Seq: 1, Payload: make([]byte, MaxPayload+1)},
	} {
		if _, err := l.Append(r); !errors.Is(err, ErrInvalid) {
			t.Fatalf("Append(%v %d): %v", r.Kind, r.Seq, err)
		}
	}
	if l.Tail().Offset != FileHeaderSize {
		t.Fatal("invalid records were written")
	}
}

func lastSegPath(t *testing.T, dir string) (string, int64) {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(m) == 0 {
		t.Fatal("no segments")
	}
	p := m[len(m)-1]
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return p, st.Size()
}

func TestTornTail(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, vfs.Default, dir, 1<<20)
	ps := appendN(t, l, 0, 10)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	last, size := lastSegPath(t, dir)
	// Cut the last record in half.
	cut := ps[9].Offset + int64(ps[9].Length)/2
	if err := os.Truncate(last, cut); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, vfs.Default, dir, 1<<20)
	got, end := scanAll(t, l)
	if len(got) != 9 || end.Segment != 2 || end.Offset != FileHeaderSize {
		t.Fatalf("torn tail: %d records, end %v", len(got), end)
	}
	if _, s := os.Stat(last); s != nil {
		t.Fatal(s)
	}
	if st, _ := os.Stat(last); st.Size() != ps[8].Offset+int64(ps[8].Length) {
		t.Fatalf("segment 1 not truncated at the last valid record: %d (was %d)", st.Size(), size)
	}
	p, err := l.Append(rec(9))
	if err != nil || p.Segment != 2 {
		t.Fatalf("next append at %v, %v: want segment 2", p, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// Garbage after the end of the last segment.
	last, size = lastSegPath(t, dir)
	f, err := os.OpenFile(last, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(bytes.Repeat([]byte{0xde, 0xad}, 100))
	f.Close()
	l = mustOpen(t, vfs.Default, dir, 1<<20)
	defer l.Close()
	got, _ = scanAll(t, l)
	if len(got) != 10 || l.Active() != 3 {
		t.Fatalf("garbage tail: %d records, active %d", len(got), l.Active())
	}
	if st, _ := os.Stat(last); st.Size() != size {
		t.Fatalf("garbage not truncated: %d, want %d", st.Size(), size)
	}
	// Restarts with nothing appended do not pile up empty segments.
	l.Close()
	l = mustOpen(t, vfs.Default, dir, 1<<20)
	l.Close()
	l = mustOpen(t, vfs.Default, dir, 1<<20)
	if segs := l.Segments(); len(segs) != 3 || l.Active() != 5 {
		t.Fatalf("segments after idle restarts: %v, active %d", segs, l.Active())
	}
}

func TestCorruptMiddleSegment(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, vfs.Default, dir, 2048)
	ps := appendN(t, l, 0, 100)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var victim Pos
	for _, p := range ps {
		if p.Segment == 2 && p.Offset > FileHeaderSize {
			victim = p
			break
		}
	}
	name := filepath.Join(dir, segName(2))
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	b[victim.Offset+HeaderSize-1] ^= 0x40 // inside the checksum
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var reported []*CorruptError
	l, err = Open(vfs.Default, dir, Options{SegmentSize: 2048, OnCorrupt: func(e *CorruptError) { reported = append(reported, e) }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	n := 0
	_, err = l.Scan(Pos{}, func(*Record, Pos) error { n++; return nil })
	if err != nil {
		t.Fatalf("Scan stopped at a corrupt record in the middle of the log: %v", err)
	}
	if len(reported) != 1 || reported[0].Segment != 2 || reported[0].Offset != victim.Offset || !errors.Is(reported[0], ErrCorrupt) {
		t.Fatalf("Scan reported %v, want the corrupt record at segment 2 offset %d", reported, victim.Offset)
	}
	if n != len(ps)-1 {
		t.Fatalf("Scan found %d records around the corrupt one, want %d", n, len(ps)-1)
	}
	var ce *CorruptError
	_, err = l.Read(victim, nil)
	if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) || ce.Segment != 2 || ce.Offset != victim.Offset {
		t.Fatalf("Read: %v", err)
	}
	if msg := err.Error(); !bytes.Contains([]byte(msg), []byte(fmt.Sprintf("segment 2 at offset %d", victim.Offset))) {
		t.Fatalf("error does not name the place: %s", msg)
	}
	// The records around it still read.
	for _, p := range ps {
		if p != victim {
			if _, err := l.Read(p, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestIncompatibleVersion(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, vfs.Default, dir, 0)
	appendN(t, l, 0, 3)
	l.Close()
	name, _ := lastSegPath(t, dir)
	b, _ := os.ReadFile(name)
	b[8] = FileVersion + 1
	binary.LittleEndian.PutUint32(b[28:], crc32.Checksum(b[:28], castagnoli))
	os.WriteFile(name, b, 0o644)
	if _, err := Open(vfs.Default, dir, Options{}); !errors.Is(err, ErrIncompatible) {
		t.Fatalf("Open of a version-%d segment: %v", FileVersion+1, err)
	}
}

// crashHistory appends records with a Sync every few, returning how many
// were appended and how many of them were synced.
func crashHistory(t *testing.T, l *Log, rng *rand.Rand, from int) (appended, synced int) {
	t.Helper()
	n := from + 1 + rng.Intn(60)
	every := 1 + rng.Intn(6)
	synced = from
	for i := from; i < n; i++ {
		if _, err := l.Append(rec(i)); err != nil {
			t.Fatal(err)
		}
		if (i+1)%every == 0 {
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}
			synced = i + 1
		}
	}
	return n, synced
}

func TestCrashLoop(t *testing.T) {
	for h := int64(0); h < 60; h++ {
		rng := rand.New(rand.NewSource(h))
		fs := vfs.NewCrashFS()
		l := mustOpen(t, fs, "store/log", 2048)
		appended, synced := crashHistory(t, l, rng, 0)
		for gen := 0; gen < 3; gen++ {
			// Explore several crash states of the same history.
			var next *vfs.CrashFS
			for s := int64(0); s < 5; s++ {
				seed := h*1000 + int64(gen)*10 + s
				c := fs.Crash(seed)
				l2, err := Open(c, "store/log", Options{SegmentSize: 2048})
				if err != nil {
					t.Fatalf("history %d gen %d seed %d: reopen: %v", h, gen, seed, err)
				}
				got, _ := scanAll(t, l2)
				if len(got) < synced || len(got) > appended {
					t.Fatalf("history %d gen %d seed %d: %d records found, synced %d, appended %d",
						h, gen, seed, len(got), synced, appended)
				}
				if s < 4 {
					l2.Close()
					continue
				}
				// Continue the history from the last crash state.
				synced = len(got)
				appended, synced = crashHistory(t, l2, rng, synced)
				next, l = c, l2
			}
			fs = next
		}
		_ = l
	}
}

func TestErrorFSLoop(t *testing.T) {
	const n = 20
	run := func(fs vfs.FS) error {
		l, err := Open(fs, "d/log", Options{SegmentSize: 1024})
		if err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			if _, err := l.Append(rec(i)); err != nil {
				l.Close()
				return err
			}
		}
		if err := l.Sync(); err != nil {
			l.Close()
			return err
		}
		return l.Close()
	}
	for i := int64(0); ; i++ {
		if i > 10000 {
			t.Fatal("no successful run")
		}
		mem := vfs.NewCrashFS()
		efs := vfs.NewErrorFS(mem, vfs.FailAt(i))
		err := run(efs)
		t.Logf("op %d: %v", i, err)
		if err == nil {
			t.Logf("a run takes %d ops; every earlier failure was reported and recovered", i)
			if i < 30 {
				t.Fatalf("succeeded after only %d ops", i)
			}
			break
		}
		if !errors.Is(err, vfs.ErrInjected) {
			t.Fatalf("op %d: error does not wrap the injected fault: %v", i, err)
		}
		check := func(fs vfs.FS) {
			l, err := Open(fs, "d/log", Options{SegmentSize: 1024})
			if err != nil {
				t.Fatalf("op %d: reopen: %v", i, err)
			}
			got, _ := scanAll(t, l)
			if len(got) > n {
				t.Fatalf("op %d: %d records", i, len(got))
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
		}
		check(mem)
		check(mem.Crash(i))
	}
}

func TestNoSpace(t *testing.T) {
	fs := vfs.NewCrashFS()
	fs.SetCapacity(16 << 10)
	l := mustOpen(t, fs, "log", 4096)
	defer l.Close()
	var err error
	i := 0
	for ; i < 1000 && err == nil; i++ {
		_, err = l.Append(rec(i))
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append to a full disk: %v", err)
	}
	i--
	// Appends are gathered in memory, so Sync may be where the full disk
	// shows: it must fail then, never claim durability.
	if err := l.Sync(); err != nil && !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("sync after ENOSPC: %v", err)
	}
	got, _ := scanAll(t, l)
	if len(got) != i {
		t.Fatalf("%d records after ENOSPC, want %d", len(got), i)
	}
	// Freeing space lets syncs and appends continue; nothing appended is lost.
	first := l.Segments()[0].Number
	inFirst := 0
	for _, p := range got {
		if p.Segment == first {
			inFirst++
		}
	}
	if err := l.Remove(first); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(); err != nil {
		t.Fatalf("sync after freeing space: %v", err)
	}
	n := 0
	if _, err := l.Scan(Pos{}, func(*Record, Pos) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != i-inFirst {
		t.Fatalf("%d records after freeing space, want %d", n, i-inFirst)
	}
	if _, err := l.Append(&Record{Kind: KindData, Seq: 1, Payload: []byte("x")}); err != nil {
		t.Fatalf("append after freeing space: %v", err)
	}
}

func TestConcurrent(t *testing.T) {
	l := mustOpen(t, vfs.NewCrashFS(), "log", 4096)
	defer l.Close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ps []Pos
	errs := make(chan error, 16)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				p, err := l.Append(rec(i))
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				ps = append(ps, p)
				mu.Unlock()
				if i%10 == 0 {
					if err := l.Sync(); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				mu.Lock()
				var p Pos
				if len(ps) > 0 {
					p = ps[i%len(ps)]
				}
				mu.Unlock()
				if p.Length == 0 {
					continue
				}
				if _, err := l.Read(p, nil); err != nil {
					errs <- err
					return
				}
				_ = l.Tail()
				_ = l.Segments()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	n := 0
	if _, err := l.Scan(Pos{}, func(*Record, Pos) error { n++; return nil }); err != nil || n != 400 {
		t.Fatalf("scan: %d records, %v", n, err)
	}
}

func BenchmarkAppend64K(b *testing.B) {
	l, err := Open(vfs.Default, b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	r := &Record{Kind: KindData, Layer: 1, Payload: bytes.Repeat([]byte{0x5a}, 64<<10)}
	b.SetBytes(int64(HeaderSize + len(r.Payload)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.Seq = ids.Seq(i + 1)
		r.Block = ids.Block(i)
		if _, err := l.Append(r); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Sync(); err != nil {
		b.Fatal(err)
	}
}

// TestOpenSegmentsBounded: reading more old segments than openSegmentsBound()
// keeps at most that many open, and every record still reads.
func TestOpenSegmentsBounded(t *testing.T) {
	fs := vfs.NewCrashFS()
	l := mustOpen(t, fs, "log", 64) // one record a segment
	defer l.Close()
	var ps []Pos
	for i := 0; i < openSegmentsBound()+40; i++ {
		p, err := l.Append(rec(i))
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if n := len(l.Segments()); n <= openSegmentsBound() {
		t.Fatalf("only %d segments; the test needs more than %d", n, openSegmentsBound())
	}
	for round := 0; round < 2; round++ {
		for i, p := range ps {
			r, err := l.Read(p, nil)
			if err != nil || r.Seq != rec(i).Seq {
				t.Fatalf("record %d: %v", i, err)
			}
		}
	}
	l.mu.RLock()
	open := 0
	for _, s := range l.segs {
		if s.f != nil {
			open++
		}
	}
	l.mu.RUnlock()
	if open > openSegmentsBound() {
		t.Fatalf("%d segment files open, want at most %d", open, openSegmentsBound())
	}
}

// TestAppendRawBatch: records copied as ScanSegmentRaw passes them (the
// cleaner's moves) read back and scan as the originals, across rotations
// and a reopen; bytes that are not exactly one framed record of a data,
// zero or catalog kind are refused and nothing of their batch is written.
func TestAppendRawBatch(t *testing.T) {
	fs := vfs.NewCrashFS()
	l := mustOpen(t, fs, "log", 16<<10)
	const n = 40
	for i := 0; i < n; i++ {
		if _, err := l.Append(rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	first := l.Segments()[0].Number
	var raws [][]byte
	var want []*Record
	if _, err := l.ScanSegmentRaw(first, func(r *Record, raw []byte, pos Pos) error {
		if int(pos.Length) != len(raw) {
			return fmt.Errorf("raw of %d bytes for a record of %d", len(raw), pos.Length)
		}
		raws = append(raws, append([]byte(nil), raw...))
		c := *r
		c.Payload = append([]byte(nil), r.Payload...)
		want = append(want, &c)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(raws) == 0 {
		t.Fatal("no record in the first segment")
	}
	pos, err := l.AppendRawBatch(raws, nil)
	if err != nil || len(pos) != len(raws) {
		t.Fatalf("AppendRawBatch: %d positions, %v", len(pos), err)
	}
	check := func(l *Log, what string) {
		t.Helper()
		buf := make([]byte, 64<<10)
		for i, p := range pos {
			r, err := l.Read(p, buf)
			if err != nil || !sameRecord(&r, want[i]) {
				t.Fatalf("%s: copy %d at %v: %v", what, i, p, err)
			}
		}
	}
	check(l, "before sync")
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	tail := l.Tail()
	long := raws[0]
	for _, b := range raws {
		if len(b) > len(long) {
			long = b
		}
	}
	bad := [][]byte{
		nil,
		long[:len(long)-1], // payload cut
		append(append([]byte(nil), raws[0]...), 0),                                    // a byte too many
		func() []byte { b := append([]byte(nil), raws[0]...); b[0] ^= 1; return b }(), // magic
		func() []byte { b := append([]byte(nil), raws[0]...); b[4] = Version + 1; return b }(),
		func() []byte { b := append([]byte(nil), raws[0]...); b[5] = byte(KindPad); return b }(),
	}
	for i, b := range bad {
		if _, err := l.AppendRawBatch([][]byte{raws[0], b}, nil); !errors.Is(err, ErrInvalid) {
			t.Fatalf("bad raw %d: %v", i, err)
		}
	}
	if l.Tail() != tail {
		t.Fatal("a refused batch wrote records")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, fs, "log", 16<<10)
	defer l.Close()
	check(l, "after a reopen")
}
