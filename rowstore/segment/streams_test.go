package segment

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"math/rand"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/snapfs/snapfs/rowstore/ids"
	"github.com/snapfs/snapfs/rowstore/vfs"
)

// Tests of the two append streams (the foreground's and the cleaner's):
// shared numbering, the cleaner stream's own sync, and Open's recovery of
// both tails after a crash.

// clBase is where the cleaner stream's sequence numbers start in these
// tests (the foreground's are rec(i)'s, i+1).
const clBase = 1 << 20

// clRec is the cleaner stream's j-th record in these tests.
func clRec(j int) *Record {
	r := rec(j)
	r.Seq = clBase + ids.Seq(j)
	return r
}

// tailLog counts the torn tails Open cut, by segment.
type tailLog struct {
	mu  sync.Mutex
	cut map[uint64]bool
}

func (h *tailLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *tailLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *tailLog) WithGroup(string) slog.Handler            { return h }
func (h *tailLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "segment: truncating torn or corrupt tail" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "segment" {
			h.mu.Lock()
			h.cut[a.Value.Resolve().Uint64()] = true
			h.mu.Unlock()
		}
		return true
	})
	return nil
}

// streamsScan scans the whole log and splits it by stream, checking that
// each stream's records are a prefix of its history, in order, and that
// no record was reported corrupt.
func streamsScan(t *testing.T, l *Log, corrupt *int) (fg, cl int) {
	t.Helper()
	_, err := l.Scan(Pos{}, func(r *Record, pos Pos) error {
		if r.Seq >= clBase {
			j := int(r.Seq - clBase)
			if j != cl || !sameRecord(r, clRec(j)) {
				return fmt.Errorf("cleaner record %d at %v: want record %d", j, pos, cl)
			}
			cl++
			return nil
		}
		i := int(r.Seq) - 1
		if i != fg || !sameRecord(r, rec(i)) {
			return fmt.Errorf("foreground record %d at %v: want record %d", i, pos, fg)
		}
		fg++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if *corrupt > 0 {
		t.Fatalf("%d records reported corrupt", *corrupt)
	}
	return fg, cl
}

// TestTwoStreamsCrash appends to both streams at random (with syncs of
// each, and writes of gathered records without a sync, so the files hold
// unsynced bytes), crashes, and reopens: Open must cut both streams' torn
// tails (the foreground's last segment and the cleaner's, numbered in any
// order), every synced record of each stream must be there, each stream's
// records must be a prefix of its history, no record may be reported
// corrupt, and the reopened log must go on with both streams (new
// segments numbered after every old one). Some runs must tear both tails
// at once. Half the histories create each stream's next segment ahead
// (SetPrecreate: header-only files between segments holding records).
func TestTwoStreamsCrash(t *testing.T) {
	both := 0
	for h := int64(0); h < 40; h++ {
		rng := rand.New(rand.NewSource(h))
		fs := vfs.NewCrashFS()
		l := mustOpen(t, fs, "store/log", 2048)
		l.SetPrecreate(h%2 == 1) // spares of both streams, created ahead
		fgN, fgSynced, clN, clSynced := 0, 0, 0, 0
		var durable, clDurable Pos
		for op := 0; op < 80+rng.Intn(80); op++ {
			switch k := rng.Intn(10); {
			case k < 4:
				appendN(t, l, fgN, fgN+1)
				fgN++
			case k < 7:
				n := 1 + rng.Intn(4)
				var raws [][]byte
				for j := clN; j < clN+n; j++ {
					raws = append(raws, Encode(nil, clRec(j)))
				}
				if _, err := l.AppendCleanerRawBatch(raws, nil); err != nil {
					t.Fatal(err)
				}
				clN += n
			case k == 7:
				d := l.Tail()
				if err := l.Sync(); err != nil {
					t.Fatal(err)
				}
				durable, fgSynced = d, fgN
			case k == 8:
				d := l.CleanerTail()
				if err := l.SyncCleaner(); err != nil {
					t.Fatal(err)
				}
				clDurable, clSynced = d, clN
			default:
				// Unsynced bytes in the files: a torn write at the crash.
				l.appendMu.Lock()
				l.fg.active.flush()
				l.appendMu.Unlock()
				l.clMu.Lock()
				if l.cl.active != nil {
					l.cl.active.flush()
				}
				l.clMu.Unlock()
			}
		}
		// The cleaner's segments must carry the flag, the foreground's not.
		cleanerSegs := map[ids.Segment]bool{}
		for _, si := range l.Segments() {
			cleanerSegs[si.Number] = si.Cleaner
		}
		fgLast, clLast := l.Active(), l.CleanerActive()
		for seed := int64(0); seed < 4; seed++ {
			c := fs.Crash(h*100 + seed)
			tl := &tailLog{cut: map[uint64]bool{}}
			corrupt := 0
			l2, err := Open(c, "store/log", Options{SegmentSize: 2048, Durable: durable, CleanerDurable: clDurable,
				Logger: slog.New(tl), OnCorrupt: func(*CorruptError) { corrupt++ }})
			if err != nil {
				t.Fatalf("history %d seed %d: reopen: %v", h, seed, err)
			}
			fg, cl := streamsScan(t, l2, &corrupt)
			if fg < fgSynced || fg > fgN || cl < clSynced || cl > clN {
				t.Fatalf("history %d seed %d: foreground %d records (synced %d, appended %d), cleaner %d (synced %d, appended %d)",
					h, seed, fg, fgSynced, fgN, cl, clSynced, clN)
			}
			var cutFg, cutCl bool
			for n := range tl.cut {
				if cleanerSegs[ids.Segment(n)] {
					cutCl = true
				} else {
					cutFg = true
				}
			}
			if cutFg && cutCl {
				both++
			}
			// Both streams go on after the reopen, numbered after every
			// old segment; another reopen finds everything synced.
			if a := l2.Active(); a <= max(fgLast, clLast) {
				t.Fatalf("history %d seed %d: new foreground segment %d, old ones up to %d", h, seed, a, max(fgLast, clLast))
			}
			appendN(t, l2, fg, fg+3)
			var raws [][]byte
			for j := cl; j < cl+3; j++ {
				raws = append(raws, Encode(nil, clRec(j)))
			}
			if _, err := l2.AppendCleanerRawBatch(raws, nil); err != nil {
				t.Fatal(err)
			}
			if a := l2.CleanerActive(); a <= l2.Active() || l2.Segments()[len(l2.Segments())-1].Number != a {
				t.Fatalf("history %d seed %d: new cleaner segment %d, foreground %d", h, seed, a, l2.Active())
			}
			if err := l2.Close(); err != nil {
				t.Fatal(err)
			}
			l3, err := Open(c, "store/log", Options{SegmentSize: 2048, OnCorrupt: func(*CorruptError) { corrupt++ }})
			if err != nil {
				t.Fatal(err)
			}
			if fg3, cl3 := streamsScan(t, l3, &corrupt); fg3 != fg+3 || cl3 != cl+3 {
				t.Fatalf("history %d seed %d: after a clean close %d and %d records, want %d and %d", h, seed, fg3, cl3, fg+3, cl+3)
			}
			l3.Close()
		}
	}
	if both == 0 {
		t.Fatal("no crash tore both streams' tails")
	}
	t.Logf("%d crash states with both tails torn", both)
}

// TestCleanerDurableKeepsCorruption: a bad record in the cleaner stream's
// last segment before CleanerDurable is corruption: the segment is kept
// whole (the records after it are copies the index may name) and the bad
// record reads as corrupt; without the mark (a rebuild) it is a torn tail.
func TestCleanerDurableKeepsCorruption(t *testing.T) {
	for _, marked := range []bool{true, false} {
		t.Run(fmt.Sprint("marked=", marked), func(t *testing.T) {
			dir := t.TempDir()
			l := mustOpen(t, vfs.Default, dir, 1<<20)
			appendN(t, l, 0, 3)
			var raws [][]byte
			for j := 0; j < 6; j++ {
				raws = append(raws, Encode(nil, clRec(j)))
			}
			pos, err := l.AppendCleanerRawBatch(raws, nil)
			if err != nil {
				t.Fatal(err)
			}
			mark := l.CleanerTail()
			if err := l.SyncCleaner(); err != nil {
				t.Fatal(err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			name := filepath.Join(dir, segName(pos[2].Segment))
			b, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			if got := binary.LittleEndian.Uint16(b[10:]); got != FlagCleanerStream || binary.LittleEndian.Uint16(b[8:]) != FileVersion {
				t.Fatalf("cleaner segment header: version %d flags %#x", binary.LittleEndian.Uint16(b[8:]), got)
			}
			b[pos[2].Offset+HeaderSize/2] ^= 0xff
			if err := os.WriteFile(name, b, 0o644); err != nil {
				t.Fatal(err)
			}
			o := Options{}
			if marked {
				o.CleanerDurable = mark
			}
			l2, err := Open(vfs.Default, dir, o)
			if err != nil {
				t.Fatal(err)
			}
			defer l2.Close()
			fi, err := os.Stat(name)
			if err != nil {
				t.Fatal(err)
			}
			if marked {
				if fi.Size() != int64(len(b)) {
					t.Fatalf("segment cut to %d bytes, was %d: a corrupt record before the mark taken for a torn tail", fi.Size(), len(b))
				}
				if _, err := l2.Read(pos[2], nil); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("read of the bad record: %v", err)
				}
				if r, err := l2.Read(pos[5], nil); err != nil || !sameRecord(&r, clRec(5)) {
					t.Fatalf("read of a record after the bad one: %v", err)
				}
			} else if fi.Size() != pos[2].Offset {
				t.Fatalf("without the mark the segment is %d bytes, want the torn tail cut at %d", fi.Size(), pos[2].Offset)
			}
		})
	}
}

// TestStreamsNumbering: the streams share one numbering (numbers only
// grow, a segment of either is numbered after every segment before it),
// SealCleaner ends the cleaner's segment (the next append starts another),
// neither stream's active segment can be removed, and Bytes counts both.
func TestStreamsNumbering(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, vfs.Default, dir, 1024)
	defer l.Close()
	if l.CleanerActive() != 0 || l.CleanerTail() != (Pos{}) {
		t.Fatal("the cleaner stream has a segment before its first append")
	}
	if err := l.SyncCleaner(); err != nil {
		t.Fatal(err)
	}
	seen := map[ids.Segment]bool{}
	last := ids.Segment(0)
	note := func() {
		for _, si := range l.Segments() {
			if !seen[si.Number] {
				if si.Number <= last {
					t.Fatalf("segment %d created after %d", si.Number, last)
				}
				seen[si.Number], last = true, si.Number
			}
		}
	}
	for i := 0; i < 40; i++ {
		appendN(t, l, i, i+1)
		note()
		if _, err := l.AppendCleanerRawBatch([][]byte{Encode(nil, clRec(i))}, nil); err != nil {
			t.Fatal(err)
		}
		note()
		if i == 20 {
			c := l.CleanerActive()
			if err := l.SealCleaner(); err != nil {
				t.Fatal(err)
			}
			if l.CleanerActive() != 0 {
				t.Fatal("SealCleaner left an active segment")
			}
			if err := l.Remove(c); err != nil {
				t.Fatalf("remove the sealed cleaner segment: %v", err)
			}
		}
	}
	for _, n := range []ids.Segment{l.Active(), l.CleanerActive()} {
		if err := l.Remove(n); err == nil {
			t.Fatalf("removed active segment %d", n)
		}
	}
	var sum int64
	for _, si := range l.Segments() {
		sum += si.Size
		if si.Cleaner != (si.Number == l.CleanerActive()) && si.Number >= l.CleanerActive() {
			t.Fatalf("segment %d: cleaner flag %v", si.Number, si.Cleaner)
		}
	}
	if sum != l.Bytes() {
		t.Fatalf("Bytes %d, segments sum to %d", l.Bytes(), sum)
	}
}

// FuzzFileHeader: checkFileHeader never panics, and what it accepts is a
// header of a known version with known flags (version 1: none).
func FuzzFileHeader(f *testing.F) {
	f.Add(fileHeader(7, 0), uint64(7))
	f.Add(fileHeader(7, FlagCleanerStream), uint64(7))
	v1 := fileHeader(3, 0)
	v1[8] = 1
	binary.LittleEndian.PutUint32(v1[28:], crc32.Checksum(v1[:28], castagnoli))
	f.Add(v1, uint64(3))
	f.Fuzz(func(t *testing.T, h []byte, n uint64) {
		err := checkFileHeader(h, ids.Segment(n))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrIncompatible) && !errors.Is(err, ErrShort) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		v, fl := binary.LittleEndian.Uint16(h[8:]), headerFlags(h)
		if v < 1 || v > FileVersion || fl&^FlagCleanerStream != 0 || v == 1 && fl != 0 {
			t.Fatalf("accepted version %d flags %#x", v, fl)
		}
		if binary.LittleEndian.Uint64(h[16:]) != n {
			t.Fatal("accepted a header of another segment")
		}
	})
}

// TestCleanerOpenEnd: Open finds the cleaner stream's last segment at or
// above Options.CleanerDurable's and reports its recovered end; with none
// there, it reports the new foreground segment's start, below every
// cleaner segment to come; and a torn tail past that end is still cut.
func TestCleanerOpenEnd(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, vfs.Default, dir, 1024)
	appendN(t, l, 0, 3)
	var last Pos
	for j := 0; j < 5; j++ {
		p, err := l.AppendCleanerRawBatch([][]byte{Encode(nil, clRec(j))}, nil)
		if err != nil {
			t.Fatal(err)
		}
		last = p[0]
	}
	appendN(t, l, 3, 6)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	end := Pos{Segment: last.Segment, Offset: last.Offset + int64(last.Length)}

	reopen := func(durable Pos) *Log {
		t.Helper()
		l, err := Open(vfs.Default, dir, Options{SegmentSize: 1024, CleanerDurable: durable})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	// The mark at the stream's first segment: its last is found.
	l = reopen(Pos{Segment: 1})
	if got := l.CleanerOpenEnd(); got != end {
		t.Fatalf("CleanerOpenEnd %v, want the cleaner's last segment's end %v", got, end)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// A mark above every cleaner segment: none is searched for below it.
	above := Pos{Segment: end.Segment + 1}
	l = reopen(above)
	got := l.CleanerOpenEnd()
	if got.Offset != 0 || got.Segment != l.Active() || got.Segment <= end.Segment {
		t.Fatalf("CleanerOpenEnd %v with no cleaner segment at or above the mark, want the new foreground segment %d at 0", got, l.Active())
	}
	// New cleaner segments come after it, and a torn tail in one past the
	// mark is cut at the next Open.
	p, err := l.AppendCleanerRawBatch([][]byte{Encode(nil, clRec(5)), Encode(nil, clRec(6))}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Before(p[0]) {
		t.Fatalf("cleaner copy at %v, not after the open end %v", p[0], got)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, segName(p[1].Segment)), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(p[1].Offset + int64(p[1].Length) - 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	l = reopen(got)
	defer l.Close()
	if want := (Pos{Segment: p[1].Segment, Offset: p[1].Offset}); l.CleanerOpenEnd() != want {
		t.Fatalf("after a torn tail: CleanerOpenEnd %v, want %v (the torn record cut)", l.CleanerOpenEnd(), want)
	}
}
