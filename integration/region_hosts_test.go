package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snapfs/snapfs/replicate/store/s3test"
)

// TestRegionTwoHostsS3 (issue 14): two hosts, each with its own store and
// daemon, share a 2+1 region on a real S3 server (versitygw on 127.0.0.1)
// and sync and prune into it at the same time, with snapshots of the same
// names, for SNAPFS_REGION_SOAK (default 30s). Then every snapshot either
// host was told was copied (and has not pruned since) restores byte for
// byte on both hosts, and region check --read-data is clean.
func TestRegionTwoHostsS3(t *testing.T) {
	needRoot(t)
	soak := 30 * time.Second
	if v := os.Getenv("SNAPFS_REGION_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("SNAPFS_REGION_SOAK: %v", err)
		}
		soak = d
	}
	endpoint, access, secret := s3test.Start(t)
	t.Setenv("AWS_ACCESS_KEY_ID", access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	tmp := t.TempDir()
	key := filepath.Join(tmp, "region.key")
	if err := os.WriteFile(key, []byte(fmt.Sprintf("%x\n", randBytes(t, 32))), 0o600); err != nil {
		t.Fatal(err)
	}
	add := []string{"region", "add", "fleet", "--data", "2", "--parity", "1", "--key-file", key, "--s3-endpoint", endpoint, "--s3-path-style"}
	for i := range 3 {
		add = append(add, "--store", fmt.Sprintf("s3://snapfs-fleet/r/shard%d", i))
	}
	type hostT struct {
		name, dir, mp string
		sums          map[string]string // snapshot -> sha256 of its disk image
		acked         map[string]bool   // told copied, not pruned since
		ops           map[string]int    // outcome counts
	}
	var hosts []*hostT
	for _, n := range []string{"alpha", "beta"} {
		h := &hostT{name: n, dir: filepath.Join(tmp, n), mp: filepath.Join(tmp, "m-"+n), sums: map[string]string{}, acked: map[string]bool{}, ops: map[string]int{}}
		ok(t, h.dir, "init", "--host-name", n)
		daemon(t, h.dir, h.mp)
		ok(t, h.dir, add...)
		ok(t, h.dir, "disk", "create", "vol", "--size", "16M")
		hosts = append(hosts, h)
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for hi, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := mrand.New(mrand.NewPCG(uint64(hi), uint64(time.Now().UnixNano())))
			for i := 0; time.Since(start) < soak; i++ {
				snap, s, err := soakSnapshot(h.name, h.dir, h.mp, rng, i, 200)
				if err != nil {
					errs <- err
					return
				}
				h.sums[snap] = s
				r := snapfsQuiet(h.dir, "--json", "sync", "--region", "fleet")
				var st struct{ Copied []string }
				lastJSON(r.stdout, "sync", &st)
				for _, c := range st.Copied {
					h.acked[c] = true
				}
				h.ops[fmt.Sprintf("sync exit %d", r.code)]++
				if r.code != 0 && r.code != 14 && r.code != 15 {
					errs <- fmt.Errorf("%s: sync: exit %d: %s", h.name, r.code, r.stderr)
					return
				}
				if i%3 == 2 {
					r := snapfsQuiet(h.dir, "--json", "region", "prune", "fleet", "--keep-last", "2")
					var pr struct{ Deleted []string }
					lastJSON(r.stdout, "prune", &pr)
					for _, d := range pr.Deleted {
						delete(h.acked, d)
					}
					h.ops[fmt.Sprintf("prune exit %d", r.code)]++
					if r.code != 0 && r.code != 14 && r.code != 15 {
						errs <- fmt.Errorf("%s: prune: exit %d: %s", h.name, r.code, r.stderr)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	// Settle: one more sync per host, then verify on both hosts.
	for _, h := range hosts {
		var st struct{ Copied []string }
		jsonLine(t, ok(t, h.dir, "--json", "sync", "--region", "fleet"), "sync", &st)
		for _, c := range st.Copied {
			h.acked[c] = true
		}
	}
	restored := 0
	for _, owner := range hosts {
		for snap := range owner.acked {
			for _, on := range hosts {
				to := fmt.Sprintf("r-%s-%s", owner.name, snap)
				ok(t, on.dir, "restore", "--region", "fleet", "--snapshot", snap, "--host", owner.name, "--disk", "vol", "--to", to)
				if got := fileSum(t, filepath.Join(on.mp, "disks", to)); got != owner.sums[snap] {
					t.Errorf("%s's %s restored on %s differs from the snapshot", owner.name, snap, on.name)
				}
				ok(t, on.dir, "disk", "delete", to)
				restored++
			}
		}
	}
	ok(t, hosts[0].dir, "region", "check", "fleet", "--read-data")
	for _, h := range hosts {
		t.Logf("%s: %d snapshots acknowledged and kept; operations %v", h.name, len(h.acked), h.ops)
	}
	t.Logf("%s of concurrent sync and prune on two hosts; %d restores verified byte for byte; check --read-data clean", soak, restored)
	if restored == 0 {
		t.Fatal("nothing was acknowledged: the test proved nothing")
	}
}

// soakSnapshot is a round of a two-host soak on host name (store dir,
// mount mp): 64 KiB to 512 KiB of random bytes written to disk vol at a
// random 64 KiB offset below blocks*64 KiB, snapshot s<i> made (the same
// names on both hosts) and s<i-4> deleted (the local store kept small; the
// region keeps its own). It returns the snapshot's name and sha256.
func soakSnapshot(name, dir, mp string, rng *mrand.Rand, i, blocks int) (snap, sum string, err error) {
	buf := make([]byte, 64<<10*(1+rng.IntN(8)))
	_, _ = rand.Read(buf)
	if err := pwrite(filepath.Join(mp, "disks", "vol"), int64(rng.IntN(blocks))*64<<10, buf); err != nil {
		return "", "", fmt.Errorf("%s: write: %w", name, err)
	}
	snap = fmt.Sprintf("s%d", i)
	if r := snapfsQuiet(dir, "snapshot", "create", snap, "--disk", "vol"); r.code != 0 {
		return "", "", fmt.Errorf("%s: snapshot create: %s", name, r.stderr)
	}
	if sum, err = sumFile(filepath.Join(mp, "snapshots", snap, "vol")); err != nil {
		return "", "", err
	}
	if i >= 4 {
		_ = snapfsQuiet(dir, "snapshot", "delete", fmt.Sprintf("s%d", i-4))
	}
	return snap, sum, nil
}

func pwrite(path string, off int64, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteAt(data, off); err != nil {
		return err
	}
	return f.Sync()
}

func sumFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// lastJSON decodes the line of type typ of --json output, if any.
func lastJSON(out, typ string, v any) {
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var head struct{ Type string }
		if json.Unmarshal([]byte(line), &head) == nil && head.Type == typ {
			_ = json.Unmarshal([]byte(line), v)
		}
	}
}

// snapfsQuiet runs the binary on store without a *testing.T (for
// goroutines): an exec failure is exit code -1.
func snapfsQuiet(store string, args ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "SNAPFS_STORE="+store)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		r.code, r.stderr = -1, err.Error()
	}
	return r
}
