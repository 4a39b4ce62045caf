package erasure_test

import (
	"fmt"

	"github.com/snapfs/snapfs/replicate/erasure"
)

func Example() {
	shards, err := erasure.Encode([]byte("a pack file of a region"), 4, 2)
	if err != nil {
		fmt.Println(err)
		return
	}
	// Shard i goes to store i. Two stores are lost, one returns a damaged shard.
	in := erasure.Bytes(shards)
	in[1] = nil
	in[5] = nil
	in[2] = append([]byte(nil), shards[2]...)
	in[2][erasure.HeaderSize] ^= 1 // the codec alone cannot see this; the shard's checksum does

	_, rep, err := erasure.DecodeReport(in)
	fmt.Println(err, rep.Missing, rep.Corrupt[0].Index)

	in[2] = shards[2] // one more good shard: k=4 of 6 again
	data, rep, err := erasure.DecodeReport(in)
	fmt.Printf("%s %v repair required: %v\n", data, err, rep.NeedsRepair())

	repaired, rep, _ := erasure.Repair(in)
	fmt.Println("rebuilt", rep.Bad(), len(repaired))
	// Output:
	// erasure: too few good shards: 3 good of 4 needed (k=4 m=2 good=[0 3 4] missing=[1 5] corrupt[shard 2: erasure: corrupt shard: payload XXH3-128 mismatch (shard 2)]) [1 5] 2
	// a pack file of a region <nil> repair required: true
	// rebuilt [1 5] 6
}
