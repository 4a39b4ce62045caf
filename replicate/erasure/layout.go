package erasure

import "fmt"

// MaxShards is the largest k+m the codec supports.
const MaxShards = 256

// Layout is the offset and padding math of one encoded object: how data of
// DataLen bytes is cut into K data shards of ShardSize bytes, followed by M
// parity shards of the same size. It is the only place that math lives.
type Layout struct {
	K, M    int   // data and parity shards
	DataLen int64 // original data length in bytes
}

// NewLayout checks the parameters and returns their Layout.
func NewLayout(k, m int, dataLen int64) (Layout, error) {
	l := Layout{K: k, M: m, DataLen: dataLen}
	if err := l.validate(); err != nil {
		return Layout{}, err
	}
	return l, nil
}

func (l Layout) validate() error {
	switch {
	case l.K < 1 || l.K > MaxShards-1:
		return fmt.Errorf("%w: k=%d, want 1..%d", ErrInvalidParams, l.K, MaxShards-1)
	case l.M < 1 || l.M > MaxShards-1:
		return fmt.Errorf("%w: m=%d, want 1..%d", ErrInvalidParams, l.M, MaxShards-1)
	case l.K+l.M > MaxShards:
		return fmt.Errorf("%w: k+m=%d, want at most %d", ErrInvalidParams, l.K+l.M, MaxShards)
	case l.DataLen < 0:
		return fmt.Errorf("%w: negative data length %d", ErrInvalidParams, l.DataLen)
	}
	return nil
}

// Shards is the total number of shards, K+M.
func (l Layout) Shards() int { return l.K + l.M }

// ShardSize is the payload size of every shard: ceil(DataLen/K), and at least
// 1 so that empty data still has a codeable shard.
func (l Layout) ShardSize() int64 {
	if l.DataLen == 0 {
		return 1
	}
	return (l.DataLen + int64(l.K) - 1) / int64(l.K)
}

// Padding is the number of zero bytes appended to the data to fill K shards.
func (l Layout) Padding() int64 { return int64(l.K)*l.ShardSize() - l.DataLen }

// DataRange is the range [start, end) of the original data held by shard i.
// It is empty for parity shards and for data shards that hold only padding.
func (l Layout) DataRange(i int) (start, end int64) {
	if i < 0 || i >= l.K {
		return 0, 0
	}
	size := l.ShardSize()
	start = min(int64(i)*size, l.DataLen)
	end = min(start+size, l.DataLen)
	return start, end
}

// Locate maps an offset in the original data to the data shard that holds it
// and the offset inside that shard's payload. off must be in [0, DataLen).
func (l Layout) Locate(off int64) (shard int, shardOff int64) {
	size := l.ShardSize()
	return int(off / size), off % size
}
