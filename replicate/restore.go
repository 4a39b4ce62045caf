package replicate

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/snapfs/snapfs/replicate/erasure"
	"github.com/snapfs/snapfs/replicate/format"
	"github.com/snapfs/snapfs/replicate/store"
	"github.com/snapfs/snapfs/rowstore"
)

// RestoreStats count what a restore did.
type RestoreStats struct {
	Blocks    int64 `json:"blocks"`     // non-zero blocks written
	PacksRead int   `json:"packs_read"` // packs decoded
	BytesRead int64 `json:"bytes_read"` // shard bytes fetched
	Degraded  int   `json:"degraded"`   // packs that needed parity or skipped a bad shard
	// A lazy restore (restore --lazy, done by the service) reports the
	// blocks local (Blocks) of BlocksTotal, and whether hydration finished.
	BlocksTotal int64 `json:"blocks_total,omitempty"`
	Hydrated    bool  `json:"hydrated,omitempty"`
}

// Restore is RestoreFrom with no host chosen.
func (m *Manager) Restore(ctx context.Context, regionName, snapshot, disk, toDisk string, progress Progress) (RestoreStats, error) {
	return m.RestoreFrom(ctx, regionName, "", snapshot, disk, toDisk, progress)
}

// findSnapshot picks the remote snapshot called name: of host (a host id,
// host name or "unknown") if given; else this host's if it has one; else
// the only one of that name. Several hosts' snapshots of the name and no
// host chosen is an ErrInvalid that lists them.
func (m *Manager) findSnapshot(ctx context.Context, r *region, host, name string) (string, *format.Manifest, error) {
	if host == "" {
		nid := r.snapNID(m.host.ID, name)
		mf, err := r.readManifest(ctx, nid)
		if err == nil && mf.Name == name && mf.Host == m.host.ID {
			return nid, mf, nil
		}
		if err != nil && !errors.Is(err, ErrNotFound) {
			return "", nil, fmt.Errorf("snapshot %q: %w", name, err)
		}
	}
	// A manifest unreadable on every store (a lost snapshot) does not
	// hide the others; it is named when the snapshot is not found.
	unreadable := map[string]error{}
	mfs, markers, _, err := m.scanManifests(ctx, r, false, unreadable)
	if err != nil {
		return "", nil, err
	}
	var nids []string
	for _, nid := range sortedKeysOf(mfs) {
		mf := mfs[nid]
		if mf.Name == name && (host == "" || hostMatch(mf.Host, mf.HostName, host)) {
			nids = append(nids, nid)
		}
	}
	switch len(nids) {
	case 1:
		return nids[0], mfs[nids[0]], nil
	case 0:
		for _, mk := range markers {
			if mk.Name == name && (host == "" || hostMatch(mk.Host, mk.HostName, host)) {
				return "", nil, fmt.Errorf("%w: snapshot %q is still being copied to region %q", ErrNotFound, name, r.cfg.Name)
			}
		}
		if len(unreadable) > 0 {
			return "", nil, fmt.Errorf("%w: snapshot %q in region %q (or it is one of the %d lost snapshot(s) whose manifest is unreadable on every store: %s)", ErrNotFound, name, r.cfg.Name, len(unreadable), strings.Join(sortedKeysOf(unreadable), ", "))
		}
		if host != "" {
			// Of other hosts? Say whose, and how to choose one.
			var others []string
			for _, nid := range sortedKeysOf(mfs) {
				if mf := mfs[nid]; mf.Name == name {
					h := hostName(mf.Host, mf.HostName)
					if !slices.Contains(others, h) {
						others = append(others, h)
					}
				}
			}
			if len(others) > 0 {
				return "", nil, fmt.Errorf("%w: snapshot %q of host %q in region %q; the region holds a snapshot of that name of host %s: choose it with --host %s", ErrNotFound, name, host, r.cfg.Name, strings.Join(others, ", "), others[0])
			}
			return "", nil, fmt.Errorf("%w: snapshot %q of host %q in region %q", ErrNotFound, name, host, r.cfg.Name)
		}
		return "", nil, fmt.Errorf("%w: snapshot %q in region %q", ErrNotFound, name, r.cfg.Name)
	}
	var hosts []string
	for _, nid := range nids {
		hosts = append(hosts, fmt.Sprintf("%s (%s)", hostName(mfs[nid].Host, mfs[nid].HostName), mfs[nid].Host))
	}
	return "", nil, fmt.Errorf("%w: region %q holds snapshot %q of several hosts: %s; choose one with --host", ErrInvalid, r.cfg.Name, name, strings.Join(hosts, ", "))
}

// otherHostsHint: when host was not chosen and the snapshot found (this
// host's) has no disk, the hosts whose snapshot of that name holds it,
// and how to choose one ("" if none, or if a host was chosen). A second
// host restoring a snapshot name its own host also uses was told only
// "has no disk" (trial15).
func (m *Manager) otherHostsHint(ctx context.Context, r *region, host string, mf *format.Manifest, disk string) string {
	if host != "" || mf.Disk(disk) != nil {
		return ""
	}
	mfs, _, _, err := m.scanManifests(ctx, r, false, map[string]error{})
	if err != nil {
		return ""
	}
	var others []string
	for _, nid := range sortedKeysOf(mfs) {
		o := mfs[nid]
		if h := hostName(o.Host, o.HostName); o.Name == mf.Name && o.Host != mf.Host && o.Disk(disk) != nil && !slices.Contains(others, h) {
			others = append(others, h)
		}
	}
	if len(others) == 0 {
		return ""
	}
	return fmt.Sprintf("; snapshot %q of host %s holds it: choose it with --host %s", mf.Name, strings.Join(others, ", "), others[0])
}

// RestoreFrom builds local disk toDisk from disk of the remote snapshot
// (of host, see findSnapshot), reading any k healthy shards of each pack
// and verifying every block against the manifest. The disk is built under
// a temporary name and renamed only when complete and synced; on failure
// it is deleted. It holds a shared lock on the region.
func (m *Manager) RestoreFrom(ctx context.Context, regionName, host, snapshot, disk, toDisk string, progress Progress) (st RestoreStats, err error) {
	return m.RestoreEncrypted(ctx, regionName, host, snapshot, disk, toDisk, nil, progress)
}

// RestoreEncrypted is RestoreFrom into a new encrypted disk whose data key
// key wraps (nil: not encrypted). The region key opens the region, key the
// restored disk: a restore of an encrypted disk needs both.
func (m *Manager) RestoreEncrypted(ctx context.Context, regionName, host, snapshot, disk, toDisk string, key *rowstore.Key, progress Progress) (st RestoreStats, err error) {
	progress = orNoProgress(progress)
	progress.Event(Event{Type: EventStart, Op: "restore", Region: regionName, Snapshot: snapshot, Disk: disk})
	ph := newPhases()
	defer func() { m.log.Debug("restore timings", append([]any{"region", regionName}, ph.d...)...) }()
	defer func() {
		ev := Event{Type: EventDone, Op: "restore", Region: regionName, Snapshot: snapshot, Disk: toDisk, Blocks: st.Blocks, Bytes: st.BytesRead}
		if err != nil {
			ev.Err = err.Error()
		}
		progress.Event(ev)
	}()
	if err := rowstore.ValidateName("disk", toDisk); err != nil {
		return st, err
	}
	if rowstore.IsTempDiskName(toDisk) {
		return st, fmt.Errorf("%w: disk name %q is reserved for temporary disks", ErrInvalid, toDisk)
	}
	m.rs.CleanTempDisks()
	if _, err := m.rs.GetDisk(toDisk); err == nil {
		return st, fmt.Errorf("restore: %w: local disk %q", ErrExists, toDisk)
	} else if !errors.Is(err, rowstore.ErrNotFound) {
		return st, fmt.Errorf("restore: %w", err)
	}
	r, err := m.openRegion(ctx, regionName, false)
	if err != nil {
		return st, err
	}
	defer r.close()
	ctx, unlock, err := m.lock(ctx, r, false, "restore")
	if err != nil {
		return st, err
	}
	defer unlock()
	_, mf, err := m.findSnapshot(ctx, r, host, snapshot)
	if err != nil {
		return st, fmt.Errorf("restore: %w", err)
	}
	bm, md, err := r.resolveDisk(ctx, mf, disk, map[string]*format.Manifest{})
	if err != nil {
		return st, fmt.Errorf("restore: %w%s", err, m.otherHostsHint(ctx, r, host, mf, disk))
	}
	if md.Encrypted && key == nil {
		// An encrypted disk never becomes unencrypted, not even by a
		// round trip through a region.
		return st, fmt.Errorf("%w: disk %q of snapshot %q was encrypted on its host: restore it into an encrypted disk (--encrypt --key-file FILE)", ErrInvalid, disk, snapshot)
	}
	ph.done("manifest")
	cs, err := m.loadChunks(ctx, r, chunksRead)
	if err != nil {
		return st, err
	}
	ph.done("chunks")
	byPack := map[packID][]want{}
	var deltas []want // delta chunks: rebuilt over their bases after the packs (restoreDeltas)
	for b, id := range bm {
		loc, _, err := r.locate(cs, id)
		if err != nil {
			return st, fmt.Errorf("restore: block %d of %q: %w", b, disk, err)
		}
		if loc.entry().IsDelta() {
			deltas = append(deltas, want{b, loc.entry()})
			continue
		}
		byPack[loc.pack()] = append(byPack[loc.pack()], want{b, loc.entry()})
	}
	for _, ws := range byPack {
		slices.SortFunc(ws, func(a, b want) int { return cmp.Compare(a.block, b.block) })
	}
	packs := make([]packID, 0, len(byPack))
	for p := range byPack {
		packs = append(packs, p)
	}
	slices.SortFunc(packs, func(a, b packID) int { return slices.Compare(a[:], b[:]) })

	tmp, release := rowstore.NewTempDiskName() // renamed to toDisk when whole
	defer release()
	create := func() (rowstore.DiskInfo, error) { return m.rs.CreateDisk(tmp, md.Size, md.BlockSize) }
	if key != nil {
		create = func() (rowstore.DiskInfo, error) { return m.rs.CreateEncryptedDisk(tmp, md.Size, md.BlockSize, key) }
	}
	if _, err := create(); err != nil {
		return st, fmt.Errorf("restore: create disk: %w", err)
	}
	h, err := m.rs.OpenDisk(tmp)
	if err != nil {
		_ = m.rs.DeleteDisk(tmp, true)
		return st, fmt.Errorf("restore: %w", err)
	}
	done := false
	defer func() {
		if !done {
			_ = h.Close()
			if derr := m.rs.DeleteDisk(tmp, true); derr != nil {
				m.log.Error("restore: temporary disk left behind", "disk", tmp, "err", derr)
			}
		}
	}()
	total := int64(len(bm))
	// Fetchers fetch and open packs (restoreWorkers at once) while one
	// writer writes the last one opened: a store's latency and the local
	// store's appends overlap. Sealed pack buffers go round (fetchers + 1:
	// one per fetcher, one being written), so memory is bounded and
	// reused.
	fetchers := restoreWorkers(m.opts.Workers)
	work := make(chan packID)
	opened := make(chan openedPack)
	bufs := make(chan []byte, fetchers+1)
	for range fetchers + 1 {
		bufs <- nil // allocated on first use, then reused
	}
	errs := make([]error, fetchers)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for w := range fetchers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				var buf []byte
				select {
				case buf = <-bufs:
				case <-wctx.Done():
					continue // the feeder stops too
				}
				pt, degraded, n, err := m.openPack(wctx, r, p, cs.packs[p].SealedSize, &buf)
				if err != nil {
					bufs <- buf
					errs[w] = fmt.Errorf("restore %q of %q from region %q: %w", disk, snapshot, regionName, err)
					cancel()
					continue
				}
				select {
				case opened <- openedPack{p: p, pt: pt, buf: buf, degraded: degraded, fetched: n}:
				case <-wctx.Done():
					bufs <- buf
				}
			}
		}()
	}
	go func() {
		defer close(work)
		for _, p := range packs {
			select {
			case work <- p:
			case <-wctx.Done():
				return
			}
		}
	}()
	go func() {
		wg.Wait()
		close(opened)
	}()
	var werr error
	run := make([]byte, 0, restoreRun)
	// The disk is synced in the background every restoreSyncEvery bytes
	// (one sync at a time), so the local store's writeback overlaps the
	// fetching instead of all of it waiting for the final sync.
	var unsynced int64
	var syncing chan error
	waitSync := func() error {
		if syncing == nil {
			return nil
		}
		err := <-syncing
		syncing = nil
		return err
	}
	for o := range opened {
		if werr == nil && wctx.Err() == nil {
			if err := m.writeRuns(r, o.p, o.pt, md.BlockSize, md.Size, byPack[o.p], run, h); err != nil {
				werr = fmt.Errorf("restore %q of %q from region %q: %w", disk, snapshot, regionName, err)
				cancel()
			} else {
				unsynced += int64(len(byPack[o.p])) * int64(md.BlockSize)
				if unsynced >= restoreSyncEvery {
					select {
					case err := <-syncing: // the last one is done
						syncing = nil
						if err != nil {
							werr = fmt.Errorf("restore: sync disk: %w", err)
							cancel()
						}
					default:
					}
					if syncing == nil && werr == nil {
						unsynced = 0
						syncing = make(chan error, 1)
						go func(c chan<- error) { c <- h.Sync() }(syncing)
					}
				}
				st.PacksRead++
				st.BytesRead += o.fetched
				st.Blocks += int64(len(byPack[o.p]))
				if o.degraded {
					st.Degraded++
				}
				progress.Event(Event{Type: EventPack, Op: "restore", Region: regionName, Snapshot: snapshot, Disk: disk, Pack: o.p.String(), Blocks: st.Blocks, BlocksTotal: total, Bytes: st.BytesRead})
			}
		}
		bufs <- o.buf
	}
	if err := waitSync(); err != nil && werr == nil {
		werr = fmt.Errorf("restore: sync disk: %w", err)
	}
	if werr == nil && wctx.Err() == nil && len(deltas) > 0 {
		ph.done("packs")
		if err := m.restoreDeltas(wctx, r, cs, md, deltas, h, &st); err != nil {
			werr = fmt.Errorf("restore %q of %q from region %q: %w", disk, snapshot, regionName, err)
		}
	}
	first := werr
	for _, e := range errs {
		if e != nil && (first == nil || errors.Is(first, context.Canceled) && !errors.Is(e, context.Canceled)) {
			first = e
		}
	}
	if first != nil {
		return st, first
	}
	if err := ctx.Err(); err != nil {
		return st, err
	}
	ph.done("write")
	if err := h.Sync(); err != nil {
		return st, fmt.Errorf("restore: sync disk: %w", err)
	}
	ph.done("sync")
	if err := m.verifyRestored(r, tmp, bm); err != nil {
		return st, fmt.Errorf("restore %q of %q from region %q: %w", disk, snapshot, regionName, err)
	}
	ph.done("verify")
	if err := h.Close(); err != nil {
		return st, fmt.Errorf("restore: %w", err)
	}
	if err := m.rs.RenameDisk(tmp, toDisk); err != nil {
		if derr := m.rs.DeleteDisk(tmp, true); derr != nil {
			m.log.Error("restore: temporary disk left behind", "disk", tmp, "err", derr)
		}
		done = true
		return st, fmt.Errorf("restore: %w", err)
	}
	done = true
	m.log.Info("disk restored", "region", regionName, "snapshot", snapshot, "disk", disk, "to", toDisk, "blocks", st.Blocks, "degraded_packs", st.Degraded)
	return st, nil
}

// restoreDeltas writes the blocks whose chunks are deltas: each is read
// as a lazy read reads it (RemoteDisk.chunkRaw: the delta's record and its
// base's, by ranges, rebuilt and checked against the chunk id), by
// restoreWorkers at once. A delta's base is usually a block of an older
// snapshot that the disk restored no longer holds, so it is fetched
// anyway; reading it by its range costs a record, not a pack, and no
// memory grows with the number of deltas.
func (m *Manager) restoreDeltas(ctx context.Context, r *region, cs *chunkSet, md *format.ManifestDisk, ws []want, h *rowstore.Disk, st *RestoreStats) error {
	d := m.chunkReader(r, cs, md)
	bs := md.BlockSize
	workers := restoreWorkers(m.opts.Workers)
	var mu sync.Mutex
	errs := forEach(workers, func(w int) error {
		buf := make([]byte, bs)
		for i := w; i < len(ws); i += workers {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := d.chunkRaw(ctx, ws[i].e.ID, buf); err != nil {
				return fmt.Errorf("block %d: %w", ws[i].block, err)
			}
			at := int64(ws[i].block) * int64(bs)
			n := min(int64(bs), md.Size-at)
			mu.Lock()
			_, err := h.WriteAt(buf[:n], at)
			mu.Unlock()
			if err != nil {
				return fmt.Errorf("write block %d: %w", ws[i].block, err)
			}
		}
		return nil
	})
	st.Blocks += int64(len(ws))
	st.BytesRead += d.stats.fetched.Load()
	return firstErr(errs)
}

// chunkReader is a RemoteDisk that reads chunks of cs by their ranges only
// (chunkRaw), for restore and check: it holds no lock (its caller does)
// and no block map.
func (m *Manager) chunkReader(r *region, cs *chunkSet, md *format.ManifestDisk) *RemoteDisk {
	d := &RemoteDisk{m: m, r: r, md: md, cache: newPackCache(remotePackCache), downUntil: make([]atomic.Int64, r.n())}
	d.csp.Store(cs)
	return d
}

// openedPack is a pack fetched and opened, for the writer.
type openedPack struct {
	p        packID
	pt       []byte // the plaintext (in buf)
	buf      []byte // the sealed pack buffer, back to the fetchers once written
	degraded bool
	fetched  int64
}

// want is a block to restore and where its chunk is in its pack.
type want struct {
	block uint64
	e     format.Entry
}

// restoreRun bounds the bytes of adjacent blocks written with one call
// (the local store appends them as whole blocks, with one index lookup).
const restoreRun = 4 << 20

// restoreSyncEvery is how many bytes a restore writes between background
// syncs of the disk.
const restoreSyncEvery = 64 << 20

// restoreWorkers is how many packs a restore fetches at once: one per CPU
// (at least 2), at most Options.Workers. Each holds a pack's shards while
// it assembles them, and the pack buffers go round fetchers + 1, so this
// bounds restore's memory (about (2 × fetchers + 1) × PackSize at the
// peak).
func restoreWorkers(limit int) int {
	return max(1, min(limit, max(2, runtime.GOMAXPROCS(0))))
}

// writeRuns writes the wanted blocks of a pack plaintext (ws in block
// order), adjacent blocks with one write of up to restoreRun bytes. The
// blocks' digests are checked once all is written (verifyRestored). The
// last block of a disk whose size is not a multiple of its block size is
// stored whole (its tail zeros); only the part inside the disk, size
// bytes, is written (TestRtrial10RestoreUnalignedDisk).
func (m *Manager) writeRuns(r *region, p packID, pt []byte, bs int, size int64, ws []want, run []byte, h *rowstore.Disk) error {
	per := max(1, restoreRun/bs)
	for i := 0; i < len(ws); {
		j := i + 1
		for j < len(ws) && j-i < per && ws[j].block == ws[j-1].block+1 {
			j++
		}
		run = run[:0]
		for _, w := range ws[i:j] {
			off := len(run)
			raw, err := m.chunkData(pt, w.e, run[off:off:off+bs])
			if err != nil {
				return fmt.Errorf("pack %s: %w", p, err)
			}
			if len(raw) != bs {
				return fmt.Errorf("%w: pack %s chunk %v: %d bytes for block size %d", ErrCorrupt, p, w.e.ID, len(raw), bs)
			}
			if &raw[0] == &run[:off+1][off] {
				run = run[:off+bs] // zstd decoded in place
			} else {
				run = append(run, raw...)
			}
		}
		at := int64(ws[i].block) * int64(bs)
		if end := at + int64(len(run)); end > size && at < size {
			run = run[:size-at]
		}
		if _, err := h.WriteAt(run, at); err != nil {
			return fmt.Errorf("write blocks %d-%d: %w", ws[i].block, ws[j-1].block, err)
		}
		i = j
	}
	return nil
}

// verifyRestored checks every block of the restored disk against the
// manifest: the SHA-256 the local store computed of each block it stored
// (as it does for every write) must give the block's chunk id, and the
// disk must hold exactly the manifest's blocks. So every block's digest
// is verified, against what was really stored, without hashing the data
// a second time.
func (m *Manager) verifyRestored(r *region, tmp string, bm blockMap) error {
	seen := 0
	_, err := m.rs.Diff(nil, rowstore.Point{Disk: tmp}, func(c rowstore.Change) error {
		id, ok := bm[c.Block]
		if !ok {
			return fmt.Errorf("%w: block %d was restored but the manifest has no data for it", ErrCorrupt, c.Block)
		}
		if r.keys.ChunkID(c.Digest) != id {
			return fmt.Errorf("%w: block %d does not match its digest (chunk %v)", ErrCorrupt, c.Block, id)
		}
		seen++
		return nil
	})
	if err != nil {
		return err
	}
	if seen != len(bm) {
		return fmt.Errorf("%w: %d of %d blocks restored (a chunk of zeros?)", ErrCorrupt, seen, len(bm))
	}
	return nil
}

// openPack fetches a pack and returns its plaintext. The fast path reads
// the k data shards, checks their headers and decrypts their payloads in
// place: the GCM tag authenticates the whole pack, so the shards' SHA-256
// need not be computed too. If a data shard is missing, its header is bad
// or the tag fails, fetchPack reads and verifies every shard it needs
// (parity included) and finds the bad ones.
func (m *Manager) openPack(ctx context.Context, r *region, p packID, sealedSize uint64, buf *[]byte) (pt []byte, degraded bool, fetched int64, err error) {
	sealed, n, ferr := m.fetchData(ctx, r, p, sealedSize, *buf)
	*buf = sealed
	fetched = n
	if ferr == nil {
		if pt, ferr = format.OpenPack(r.keys, p.String(), sealed); ferr == nil {
			return pt, false, fetched, nil
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, false, fetched, err
	}
	m.log.Debug("pack read through the verified path", "region", r.cfg.Name, "pack", p.String(), "why", ferr)
	sealed, degraded, n, err = m.fetchPack(ctx, r, p, sealedSize)
	fetched += n
	if err != nil {
		return nil, degraded, fetched, err
	}
	if pt, err = format.OpenPack(r.keys, p.String(), sealed); err != nil {
		return nil, degraded, fetched, fmt.Errorf("pack %s: %w", p, err)
	}
	return pt, degraded, fetched, nil
}

// fetchData reads the k data shards of a pack, checks their headers
// against the pack and assembles the sealed pack from their payloads, in
// buf if it is large enough: each shard's data range is read straight to
// its place in the pack (store.ReadInto; no buffer per shard).
func (m *Manager) fetchData(ctx context.Context, r *region, p packID, sealedSize uint64, buf []byte) ([]byte, int64, error) {
	l, err := erasure.NewLayout(r.k, r.m, int64(sealedSize))
	if err != nil {
		return buf, 0, err
	}
	if uint64(cap(buf)) < sealedSize {
		buf = make([]byte, sealedSize)
	}
	sealed := buf[:sealedSize]
	var fetched atomic.Int64
	errs := forEach(r.k, func(i int) error {
		if r.shardIsDown(i) {
			return fmt.Errorf("store %d: %w", i, errShardDown)
		}
		start, end := l.DataRange(i)
		var hb [erasure.HeaderSize]byte
		size, err := m.readShard(ctx, r, i, p, sealedSize, hb[:], sealed[start:end])
		if err != nil {
			return err
		}
		fetched.Add(erasure.HeaderSize + end - start)
		h, err := erasure.ParseHeader(hb[:])
		if err == nil && (h.Index != i || h.DataLen != int64(sealedSize) || h.K != r.k || h.M != r.m || size != erasure.HeaderSize+h.PayloadLen) {
			err = fmt.Errorf("%w: shard header %+v does not fit pack %s at store %d", erasure.ErrCorruptShard, h.Layout(), p, i)
		}
		return err
	})
	return sealed, fetched.Load(), firstErr(errs)
}

// restoreShardTimeout bounds one whole-shard read of a pack (eager
// restore, and RemoteDisk's whole-pack path), plus a second per MiB of the
// shard (a slow link at 1 MiB/s still gets its shard): the stores' clients
// have no deadline of their own, and a store that accepts a request and
// never answers must cost one bounded wait, after which the pack is
// decoded from other shards and the store is passed over for
// shardDownFor (while k others are usable), as RemoteDisk's range reads
// do.
var restoreShardTimeout = 30 * time.Second

const shardDownFor = 30 * time.Second

// shardDown: store location -> unix ns until which whole-shard reads pass
// the store over (it did not answer one in time).
var shardDown sync.Map

// errShardDown: a store passed over (it did not answer a shard read in time).
var errShardDown = errors.New("store passed over: it did not answer a recent shard read in time")

func shardTimeout(sealedSize uint64, k int) time.Duration {
	per := int64(sealedSize)/int64(max(k, 1)) + erasure.HeaderSize
	return restoreShardTimeout + time.Duration(per>>20)*time.Second
}

// getShard reads shard i of pack p whole, within shardTimeout; a store
// that did not answer in time is passed over for a while (shardIsDown).
func (m *Manager) getShard(ctx context.Context, r *region, i int, p packID, sealedSize uint64) ([]byte, error) {
	var b []byte
	err := m.shardRead(ctx, r, i, p, sealedSize, func(ctx context.Context) error {
		var err error
		b, err = r.stores[i].Get(ctx, packDir+p.String(), 0, -1)
		return err
	})
	return b, err
}

// readShard reads the header of shard i of pack p into hdr and its
// payload's first len(data) bytes into data, within shardTimeout (as
// getShard), and returns the shard's size.
func (m *Manager) readShard(ctx context.Context, r *region, i int, p packID, sealedSize uint64, hdr, data []byte) (int64, error) {
	var size int64
	err := m.shardRead(ctx, r, i, p, sealedSize, func(ctx context.Context) error {
		var err error
		size, err = store.ReadInto(ctx, r.stores[i], packDir+p.String(), 0, hdr, data)
		return err
	})
	return size, err
}

// shardRead runs read, a read of shard i of pack p from store i, within
// shardTimeout: a store that did not answer in time is passed over for a
// while (shardIsDown), one that answered is no longer.
func (m *Manager) shardRead(ctx context.Context, r *region, i int, p packID, sealedSize uint64, read func(context.Context) error) error {
	if r.bad[i] != nil {
		return r.bad[i]
	}
	d := shardTimeout(sealedSize, r.k)
	sctx, cancel := context.WithTimeout(ctx, d)
	err := read(sctx)
	timedOut := err != nil && ctx.Err() == nil && sctx.Err() != nil
	cancel()
	if timedOut {
		shardDown.Store(r.stores[i].Location(), time.Now().Add(shardDownFor).UnixNano())
		m.log.Warn("store did not answer a shard read in time; passed over for a while", "region", r.cfg.Name, "store", i, "pack", p.String(), "timeout", d)
		return fmt.Errorf("store %d (%s): no answer in %v: %w", i, r.stores[i].Location(), d, err)
	}
	if err == nil {
		shardDown.Delete(r.stores[i].Location())
	}
	return err
}

// shardIsDown reports whether store i is passed over for whole-shard reads:
// it is unusable, or it did not answer one in time lately.
func (r *region) shardIsDown(i int) bool {
	if r.bad[i] != nil {
		return true
	}
	v, ok := shardDown.Load(r.stores[i].Location())
	return ok && time.Now().UnixNano() < v.(int64)
}

// chunkData returns a chunk's raw bytes from a pack plaintext.
func (m *Manager) chunkData(pt []byte, e format.Entry, buf []byte) ([]byte, error) {
	stored, err := format.Chunk(pt, e)
	if err != nil {
		return nil, err
	}
	switch e.Comp {
	case format.CompNone:
		return stored, nil
	case format.CompZstd:
		raw, err := m.dec.DecodeAll(stored, buf[:0])
		if err != nil {
			return nil, fmt.Errorf("%w: chunk %v: zstd: %w", ErrCorrupt, e.ID, err)
		}
		return raw, nil
	}
	return nil, fmt.Errorf("%w: chunk %v: compression %d", ErrCorrupt, e.ID, e.Comp)
}

// fetchPack reads shards of a pack, the data shards first and more only
// when some are missing or bad, and decodes the sealed pack. It returns
// the bytes fetched.
func (m *Manager) fetchPack(ctx context.Context, r *region, p packID, sealedSize uint64) (data []byte, degraded bool, fetched int64, err error) {
	data, degraded, fetched, _, err = m.fetchPackShards(ctx, r, p, sealedSize)
	return data, degraded, fetched, err
}

// fetchPackShards is fetchPack, also returning why each store's shard
// was not used (fails[i]; nil: used, or not asked). sealedSize 0: not
// known (packTable, whose index is lost): a shard's data length is then
// not checked against it (the shards must still agree: erasure).
func (m *Manager) fetchPackShards(ctx context.Context, r *region, p packID, sealedSize uint64) (data []byte, degraded bool, fetched int64, fails []error, err error) {
	shards := make([][]byte, r.n())
	fails = make([]error, r.n())
	var mu sync.Mutex
	fetch := func(idx []int) {
		forEach(len(idx), func(j int) error {
			i := idx[j]
			b, err := m.getShard(ctx, r, i, p, sealedSize)
			if err != nil {
				fails[i] = err
				return nil
			}
			mu.Lock()
			fetched += int64(len(b))
			mu.Unlock()
			h, _, err := erasure.DecodeShard(b)
			if err == nil && (h.Index != i || (sealedSize > 0 && h.DataLen != int64(sealedSize)) || h.K != r.k || h.M != r.m) {
				err = fmt.Errorf("%w: shard header %+v does not fit pack %s at store %d", erasure.ErrCorruptShard, h.Layout(), p, i)
			}
			if err != nil {
				fails[i] = err
				m.log.Warn("bad shard", "region", r.cfg.Name, "pack", p.String(), "store", i, "err", err)
				return nil
			}
			shards[i] = b
			return nil
		})
	}
	// The first k shards that are not passed over (data shards first),
	// then the others if some of those failed.
	var first, rest []int
	for i := range r.n() {
		if len(first) < r.k && !r.shardIsDown(i) {
			first = append(first, i)
		} else {
			rest = append(rest, i)
		}
	}
	fetch(first)
	good := 0
	for _, s := range shards {
		if s != nil {
			good++
		}
	}
	if good < r.k {
		fetch(rest)
	}
	if err := ctx.Err(); err != nil {
		return nil, false, fetched, fails, err
	}
	data, _, err = erasure.DecodeReport(shards)
	if err != nil {
		var why []error
		for i, f := range fails {
			if f != nil {
				if errors.Is(f, store.ErrNotFound) {
					f = errors.New("missing")
				}
				why = append(why, fmt.Errorf("store %d: %w", i, f))
			}
		}
		if errors.Is(err, erasure.ErrTooFewShards) {
			good := 0
			for _, s := range shards {
				if s != nil {
					good++
				}
			}
			return nil, false, fetched, fails, fmt.Errorf("%w: pack %s: %d usable shards of %d needed (%v): %w", ErrTooFewShards, p, good, r.k, joinErrs(why...), err)
		}
		return nil, false, fetched, fails, fmt.Errorf("pack %s: %w", p, err)
	}
	// Degraded: a shard failed, or parity stood in for a data shard passed over.
	degraded = slices.ContainsFunc(fails, func(e error) bool { return e != nil }) ||
		slices.ContainsFunc(shards[r.k:], func(b []byte) bool { return b != nil })
	return data, degraded, fetched, fails, nil
}
