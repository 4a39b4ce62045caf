package replicate

import (
	"context"
	"testing"
	"time"

	"github.com/snapfs/snapfs/replicate/format"
)

// A region written before hosts (manifests v2 under HMAC(name)): a host
// whose snapshots are in it as such ships them no more, deltas over them,
// prunes them only with --host unknown (or --all-hosts), and never ships a
// pruned one again.
func TestLegacyManifestsAdopted(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	rs, m, _, _ := newInternalRegion(t, root, Options{PackSize: 1 << 20, HostName: "old"}, 2, 1, 0)
	if _, err := rs.CreateDisk("d", 1<<20, 64<<10); err != nil {
		t.Fatal(err)
	}
	write := func(b byte) {
		h, err := rs.OpenDisk("d")
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		buf := make([]byte, 64<<10)
		for i := range buf {
			buf[i] = b + byte(i)
		}
		if _, err := h.WriteAt(buf, int64(b%8)*int64(len(buf))); err != nil {
			t.Fatal(err)
		}
		if err := h.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	write(1)
	if _, err := rs.CreateSnapshot("a", []string{"d"}, "manual"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Sync(ctx, "r", nil, nil); err != nil {
		t.Fatal(err)
	}
	// Turn a's manifest into one written before hosts existed.
	r, err := m.openRegion(ctx, "r", true)
	if err != nil {
		t.Fatal(err)
	}
	own, legacy := r.snapNID(m.host.ID, "a"), r.keys.NameID("a")
	mf, err := r.readManifest(ctx, own)
	if err != nil {
		t.Fatal(err)
	}
	mf.Host, mf.HostName = format.HostID{}, ""
	pt, _ := mf.Encode()
	sealed, err := r.keys.Seal(format.TypeManifest, legacy, pt)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.putAll(ctx, snapDir+legacy, sealed, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.deleteAll(ctx, snapDir+own); err != nil {
		t.Fatal(err)
	}
	r.close()

	st, err := m.Sync(ctx, "r", nil, nil)
	if err != nil || st.Snapshots != 0 || st.Skipped != 1 {
		t.Fatalf("sync over a legacy copy: %+v %v", st, err)
	}
	write(2)
	if _, err := rs.CreateSnapshot("b", []string{"d"}, "manual"); err != nil {
		t.Fatal(err)
	}
	if st, err = m.Sync(ctx, "r", nil, nil); err != nil || st.Snapshots != 1 {
		t.Fatalf("sync of b: %+v %v", st, err)
	}
	remote, err := m.ListRemote(ctx, "r")
	if err != nil || len(remote) != 2 || remote[0].Host != "unknown" || remote[1].Host != "old" || !remote[1].Disks[0].Delta {
		t.Fatalf("remote: %+v %v", remote, err)
	}
	if ps, err := m.Prune(ctx, "r", PruneOptions{KeepLast: 1}); err != nil || len(ps.Deleted) != 0 {
		t.Fatalf("prune of this host's: %+v %v", ps, err)
	}
	ps, err := m.Prune(ctx, "r", PruneOptions{KeepWithin: time.Nanosecond, Hosts: []string{"unknown"}})
	if err != nil || len(ps.Deleted) != 1 || ps.Deleted[0] != "a" || len(ps.Rewritten) != 1 {
		t.Fatalf("prune --host unknown: %+v %v", ps, err)
	}
	if st, err = m.Sync(ctx, "r", nil, nil); err != nil || st.Snapshots != 0 || st.Pruned != 1 {
		t.Fatalf("sync after the legacy copy was pruned: %+v %v", st, err)
	}
	for _, s := range []string{"b"} {
		if _, err := m.Restore(ctx, "r", s, "d", "x"+s, nil); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := m.Check(ctx, "r", true, nil)
	if err != nil || !rep.OK() {
		t.Fatalf("check: %+v %v", rep, err)
	}
}
