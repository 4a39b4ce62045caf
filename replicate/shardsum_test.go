package replicate_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/replicate/erasure"
)

// downgradeShard rewrites a shard file in place as an older build wrote
// it: format version 1 with a SHA-256 payload checksum (the payload is
// the same in both versions).
func downgradeShard(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := erasure.DecodeShard(b); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b[4], b[5] = 1, erasure.ChecksumSHA256
	sum := sha256.Sum256(b[erasure.HeaderSize:])
	copy(b[28:60], sum[:])
	binary.BigEndian.PutUint32(b[60:64], crc32.Checksum(b[:60], crc32.MakeTable(crc32.Castagnoli)))
	if h, _, err := erasure.DecodeShard(b); err != nil || h.Version != 1 {
		t.Fatalf("downgraded %s: %+v %v", path, h, err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func shardHeader(t *testing.T, path string) erasure.Header {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h, _, err := erasure.DecodeShard(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return h
}

// TestOldAndNewShardChecksums: a region whose shards were written with
// SHA-256 (format version 1, older builds) stays readable by check
// --read-data, restore and remote disk reads; a later sync adds XXH3-128
// shards to it; a corrupt old shard is found and repair rewrites it as a
// new-format shard, next to the old ones of the same pack.
func TestOldAndNewShardChecksums(t *testing.T) {
	ctx := context.Background()
	a := sourceHost(t)
	dirs, urls := storeDirs(t, testK+testM)
	addRegion(t, a, urls, keyFile(t, 11))
	for _, snap := range []string{"s1", "s2"} {
		if _, err := a.mgr.CopySnapshot(ctx, "r1", snap, nil); err != nil {
			t.Fatal(err)
		}
	}
	oldPacks, _ := filepath.Glob(filepath.Join(dirs[0], "packs", "*"))
	if len(oldPacks) == 0 {
		t.Fatal("no packs")
	}
	for _, d := range dirs {
		ps, _ := filepath.Glob(filepath.Join(d, "packs", "*"))
		for _, p := range ps {
			downgradeShard(t, p)
		}
	}
	// A sync now adds s3's packs in the new format.
	if _, err := a.mgr.Sync(ctx, "r1", nil, nil); err != nil {
		t.Fatal(err)
	}
	newer := 0
	ps, _ := filepath.Glob(filepath.Join(dirs[0], "packs", "*"))
	for _, p := range ps {
		if h := shardHeader(t, p); h.Version == erasure.Version && h.Checksum == erasure.ChecksumXXH3 {
			newer++
		}
	}
	if newer == 0 || newer != len(ps)-len(oldPacks) {
		t.Fatalf("%d new-format packs of %d, %d old", newer, len(ps), len(oldPacks))
	}
	for _, readData := range []bool{false, true} {
		if rep, err := a.mgr.Check(ctx, "r1", readData, nil); err != nil || !rep.OK() {
			t.Fatalf("check (read data %v) of a mixed region: %+v %v", readData, rep, err)
		}
	}

	// Corrupt an old data shard (store 1) and an old parity shard (store 5).
	victim := filepath.Base(oldPacks[0])
	for _, s := range []int{1, 5} {
		p := filepath.Join(dirs[s], "packs", victim)
		b, _ := os.ReadFile(p)
		b[erasure.HeaderSize+len(b[erasure.HeaderSize:])/2] ^= 0x10
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := a.mgr.Check(ctx, "r1", true, nil)
	if err != nil || len(rep.Problems) != 2 {
		t.Fatalf("check finds the corrupt old shards: %+v %v", rep, err)
	}
	for _, p := range rep.Problems {
		if p.Kind != replicate.ProblemCorrupt {
			t.Fatalf("problem %+v", p)
		}
	}
	// Degraded, the old pack still restores and reads remotely.
	for _, snap := range []string{"s1", "s3"} {
		if _, err := a.mgr.Restore(ctx, "r1", snap, "vol1", "degraded-"+snap, nil); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(readDisk(t, a, "degraded-"+snap), readSnapshot(t, a, snap, "vol1")) {
			t.Fatalf("restore of %s from a degraded mixed region differs", snap)
		}
	}
	rd, err := a.mgr.OpenRemoteDisk(ctx, "r1", "s1", "vol1")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(io.NewSectionReader(rd, 0, rd.Size()))
	rd.Close()
	if err != nil || !bytes.Equal(got, readSnapshot(t, a, "s1", "vol1")) {
		t.Fatalf("remote read of s1: %v", err)
	}

	fix, err := a.mgr.Repair(ctx, "r1", nil)
	if err != nil || len(fix.Repaired) != 2 || len(fix.Failed) != 0 {
		t.Fatalf("repair: %+v %v", fix, err)
	}
	// The rebuilt shards are new-format; the pack's good shards stay old.
	for s := range dirs {
		h := shardHeader(t, filepath.Join(dirs[s], "packs", victim))
		want := 1
		if s == 1 || s == 5 {
			want = erasure.Version
		}
		if h.Version != want {
			t.Fatalf("store %d: shard version %d, want %d", s, h.Version, want)
		}
	}
	if rep, err := a.mgr.Check(ctx, "r1", true, nil); err != nil || !rep.OK() {
		t.Fatalf("check after repair: %+v %v", rep, err)
	}
	for _, snap := range []string{"s1", "s2", "s3"} {
		if _, err := a.mgr.Restore(ctx, "r1", snap, "vol1", "fixed-"+snap, nil); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(readDisk(t, a, "fixed-"+snap), readSnapshot(t, a, snap, "vol1")) {
			t.Fatalf("restore of %s after repair differs", snap)
		}
	}
}
