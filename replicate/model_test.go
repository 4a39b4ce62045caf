package replicate_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snapfs/snapfs/replicate"
	"github.com/snapfs/snapfs/replicate/store"
)

// The model of the region protocol (issue 14 deliver 5): three hosts share
// a 2+1 region of file:// stores; every host's stores inject random
// delays, errors and lost acknowledgements. Each step runs 1-3 random
// operations (sync, prune, repair, check, restore) of random hosts at the
// same time; some of them are stopped (a hook in one of their store
// reads moves the shared clock past LockStale and lets the others run, as
// a SIGSTOP, GC pause or suspend would), so the others take their locks
// for stale and break them. After each step a fault-free host restores every snapshot a
// sync reported copied (and no prune named since) byte for byte, and a
// check must agree: nothing lost. Short by default; -model-steps and
// -model-seeds for a long run.
var (
	modelSteps   = flag.Int("model-steps", 0, "steps of TestModelRegionHosts per seed (default 20; 8 under -short)")
	modelVerbose = flag.Bool("model-verbose", false, "log every failed operation of TestModelRegionHosts")
	modelSeeds   = flag.String("model-seeds", "", "comma-separated seeds of TestModelRegionHosts (default 1,2)")
)

type modelSnap struct {
	host string // host name
	hid  string // host id
	name string
	data []byte
}

type modelHost struct {
	*fleetHost
	name string
	next int
}

type modelStats struct {
	ops, okOps, restored, lockedOps, conflicts, lost, paused int
}

func TestModelRegionHosts(t *testing.T) {
	steps := 20
	if testing.Short() {
		steps = 8
	}
	if *modelSteps > 0 {
		steps = *modelSteps
	}
	seeds := []uint64{1, 2}
	if *modelSeeds != "" {
		seeds = nil
		for _, s := range strings.Split(*modelSeeds, ",") {
			var v uint64
			if _, err := fmt.Sscan(s, &v); err != nil {
				t.Fatalf("-model-seeds: %v", err)
			}
			seeds = append(seeds, v)
		}
	}
	var total modelStats
	start := time.Now()
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			st := runModel(t, seed, steps)
			total.ops += st.ops
			total.okOps += st.okOps
			total.restored += st.restored
			total.lockedOps += st.lockedOps
			total.conflicts += st.conflicts
			total.lost += st.lost
			total.paused += st.paused
		})
	}
	t.Logf("model: %d seeds x %d steps in %s: %d operations (%d succeeded, %d met a lock, %d conflicts, %d stopped past LockStale), %d snapshot restores verified byte for byte, %d lost",
		len(seeds), steps, time.Since(start).Round(time.Millisecond), total.ops, total.okOps, total.lockedOps, total.conflicts, total.paused, total.restored, total.lost)
}

func runModel(t *testing.T, seed uint64, steps int) modelStats {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 77))
	dirs, urls := storeDirs(t, 3)
	_ = dirs
	key := keyFile(t, 3)
	clk := &fakeClock{}
	opts := replicate.Options{LockStale: 3 * time.Second, LockRefresh: 300 * time.Millisecond, LockWait: 4 * time.Second, PackSize: 256 << 10, Now: clk.now}
	var hosts []*modelHost
	for i, name := range []string{"h0", "h1", "h2"} {
		o := opts
		o.LockWait = []time.Duration{0, 300 * time.Millisecond, 4 * time.Second}[i] // h0 meets locks, h2 waits them out
		h := newClockedFleetHost(t, name, 3, o, clk)
		if _, err := h.mgr.AddRegion(ctx, replicate.RegionConfig{Name: "r1", K: 2, M: 1, Stores: urls, KeyFile: key}); err != nil {
			t.Fatal(err)
		}
		mkDisk(t, h.host, "d", 16)
		h.eachFault(func(f *store.Faults) {
			f.SetRandom(seed*131+uint64(i)*7+uint64(len(hosts)), store.RandomFaults{MaxDelay: 2 * time.Millisecond, ErrRate: 0.004, LostAckRate: 0.004})
		})
		hosts = append(hosts, &modelHost{fleetHost: h, name: name})
	}
	vopts := opts
	vopts.HostName = "verifier"
	vopts.OpenStore = clockedOpen(func() time.Duration { return time.Duration(clk.off.Load()) }, nil)
	v := newHost(t, vopts)
	if _, err := v.mgr.AddRegion(ctx, replicate.RegionConfig{Name: "r1", K: 2, M: 1, Stores: urls, KeyFile: key}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	snaps := map[string]*modelSnap{} // host/name -> local snapshot content
	acked := map[string]bool{}       // host/name reported copied, not pruned since
	var st modelStats
	record := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		st.ops++
		switch {
		case err == nil:
			st.okOps++
		case errors.Is(err, replicate.ErrLocked):
			st.lockedOps++
		case errors.Is(err, replicate.ErrConflict):
			st.conflicts++
		}
		if err != nil && *modelVerbose {
			t.Logf("op failed: %v", err)
		}
	}
	for step := range steps {
		// Local work first: new snapshots, sometimes a local delete.
		for _, h := range hosts {
			if rng.IntN(2) == 0 {
				continue
			}
			first := uint64(rng.IntN(12))
			writeBlocks(t, h.host, "d", rng.Uint64(), span(first, first+uint64(1+rng.IntN(4))))
			name := fmt.Sprintf("s%d", h.next)
			h.next++
			snapshot(t, h.host, name, "d")
			snaps[h.name+"/"+name] = &modelSnap{host: h.name, hid: h.mgr.Host().ID.String(), name: name, data: readSnapshot(t, h.host, name, "d")}
			if h.next > 4 && rng.IntN(3) == 0 {
				old := fmt.Sprintf("s%d", h.next-5)
				if _, err := h.rs.GetSnapshot(old); err == nil {
					if err := h.rs.DeleteSnapshot(old); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		n := 1 + rng.IntN(3)
		var wg sync.WaitGroup
		var desc []string
		for range n {
			h := hosts[rng.IntN(len(hosts))]
			op := rng.IntN(10)
			keep := 1 + rng.IntN(3)
			all := rng.IntN(4) == 0
			var pick *modelSnap
			mu.Lock()
			for k := range acked {
				if rng.IntN(len(acked)) == 0 || pick == nil {
					pick = snaps[k]
				}
			}
			mu.Unlock()
			if rng.IntN(6) == 0 {
				// This operation is stopped in one of its reads for longer
				// than LockStale; the others run meanwhile.
				prefix := []string{"snapshots/", "index/", "locks/", "packs/"}[rng.IntN(4)]
				nap := time.Duration(20+rng.IntN(300)) * time.Millisecond
				var once sync.Once
				h.faults[rng.IntN(len(h.faults))].FailMatching(func(m store.Method, name string) error {
					if (m == store.MethodGet || m == store.MethodList) && strings.HasPrefix(name, prefix) {
						once.Do(func() {
							clk.advance(opts.LockStale + time.Second)
							mu.Lock()
							st.paused++
							mu.Unlock()
							time.Sleep(nap)
						})
					}
					return nil
				})
				desc = append(desc, fmt.Sprintf("(next stopped at %s%s)", prefix, h.name))
			}
			wg.Add(1)
			switch {
			case op < 4:
				desc = append(desc, "sync@"+h.name)
				go func() {
					defer wg.Done()
					s, err := h.mgr.Sync(ctx, "r1", nil, nil)
					record(err)
					mu.Lock()
					for _, c := range s.Copied {
						acked[h.name+"/"+c] = true
					}
					mu.Unlock()
				}()
			case op < 6:
				desc = append(desc, fmt.Sprintf("prune@%s(keep %d, all %v)", h.name, keep, all))
				go func() {
					defer wg.Done()
					s, err := h.mgr.Prune(ctx, "r1", replicate.PruneOptions{KeepLast: keep, AllHosts: all})
					record(err)
					mu.Lock()
					for _, d := range s.Deleted {
						name, owner, ok := strings.Cut(d, "@")
						if !ok {
							owner = h.name
						}
						delete(acked, owner+"/"+name)
					}
					mu.Unlock()
				}()
			case op < 7:
				desc = append(desc, "repair@"+h.name)
				go func() {
					defer wg.Done()
					_, err := h.mgr.Repair(ctx, "r1", nil)
					record(err)
				}()
			case op < 8:
				desc = append(desc, "check@"+h.name)
				readData := rng.IntN(2) == 0
				go func() {
					defer wg.Done()
					_, err := h.mgr.Check(ctx, "r1", readData, nil)
					record(err)
				}()
			default:
				if pick == nil {
					wg.Done()
					continue
				}
				desc = append(desc, fmt.Sprintf("restore@%s(%s/%s)", h.name, pick.host, pick.name))
				go func() {
					defer wg.Done()
					to := fmt.Sprintf("m%d", rand.Uint64())
					_, err := h.mgr.RestoreFrom(ctx, "r1", pick.hid, pick.name, "d", to, nil)
					record(err)
					if err == nil {
						got := readDisk(t, h.host, to)
						if !bytes.Equal(got, pick.data) {
							t.Errorf("step %d: %s restored %s/%s with other data", step, h.name, pick.host, pick.name)
						}
						_ = h.rs.DeleteDisk(to, true)
					}
				}()
			}
		}
		wg.Wait()
		for _, h := range hosts {
			h.eachFault(func(f *store.Faults) { f.FailMatching(nil) })
		}
		// Verify with a host whose stores do not fail.
		mu.Lock()
		keys := sortedKeysStr(acked)
		mu.Unlock()
		for _, k := range keys {
			s := snaps[k]
			to := fmt.Sprintf("v%d", rand.Uint64())
			if _, err := v.mgr.RestoreFrom(ctx, "r1", s.hid, s.name, "d", to, nil); err != nil {
				st.lost++
				t.Errorf("step %d (%s): snapshot %s reported copied does not restore: %v", step, strings.Join(desc, " "), k, err)
				continue
			}
			if got := readDisk(t, v, to); !bytes.Equal(got, s.data) {
				st.lost++
				t.Errorf("step %d (%s): snapshot %s restores other data", step, strings.Join(desc, " "), k)
			}
			st.restored++
			if err := v.rs.DeleteDisk(to, true); err != nil {
				t.Fatal(err)
			}
		}
		rep, err := v.mgr.Check(ctx, "r1", false, nil)
		if err != nil {
			t.Fatalf("step %d: check: %v", step, err)
		}
		if len(rep.Lost) > 0 || len(rep.LostPacks) > 0 || len(rep.Unavailable) > 0 {
			t.Errorf("step %d (%s): check disagrees: lost %v, lost packs %v, unavailable %v", step, strings.Join(desc, " "), rep.Lost, rep.LostPacks, rep.Unavailable)
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	// At the end, with the faults off, repair makes the region clean.
	for _, h := range hosts {
		h.eachFault(func(f *store.Faults) { f.SetRandom(0, store.RandomFaults{}) })
	}
	if _, err := hosts[0].mgr.Repair(ctx, "r1", nil); err != nil {
		t.Fatal(err)
	}
	mustClean(t, v)
	return st
}

func sortedKeysStr(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
