package rowstore

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestKillRebuild: after each SIGKILL round of TestKill (a child process
// killed mid-workload, reopened, checked, GC run, written again), the
// index rebuilt from the log alone must show the same disks, snapshots and
// images with the same bytes as the recovered index.
func TestKillRebuild(t *testing.T) {
	rounds := 6
	if testing.Short() || raceEnabled {
		rounds = 3
	}
	if *flagKillRounds > 0 {
		rounds = *flagKillRounds
	}
	seed := *flagKillSeed
	if seed == 0 {
		seed = time.Now().UnixNano() % 1_000_000_000
	}
	t.Logf("TestKillRebuild: %d rounds from seed %d", rounds, seed)
	var st killStats
	for r := 0; r < rounds; r++ {
		sd := seed + int64(r)
		ok := t.Run(fmt.Sprint(sd), func(t *testing.T) {
			killRound(t, sd, &st)
			if t.Failed() {
				return
			}
			// killRound's store is the first t.TempDir of this test.
			dir := filepath.Join(filepath.Dir(t.TempDir()), "001", "store")
			if _, err := os.Stat(filepath.Join(dir, "superblock")); err != nil {
				t.Fatalf("cannot find the round's store: %v", err)
			}
			opts := testOptions()
			s, err := Open(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			want := catalogAndData(t, s)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := Rebuild(dir, opts); err != nil {
				t.Fatalf("rebuild: %v", err)
			}
			s, err = Open(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if got := catalogAndData(t, s); got != want {
				t.Fatalf("seed %d: after rebuild:\n%s\nwant (recovered index):\n%s", sd, got, want)
			}
		})
		if !ok {
			break
		}
	}
	t.Logf("TestKillRebuild: %d rounds, %d operations acknowledged, %d kills mid-operation", st.rounds, st.acked, st.midOp)
}
