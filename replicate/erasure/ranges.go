package erasure

import "fmt"

// ReconstructRange rebuilds one byte range of the payload of data shard
// want from the same range of at least k other shards: parts[i] holds
// shard i's payload bytes in that range (nil: not given), all of one
// length. Reed-Solomon codes each byte position of the payloads on its
// own, so a range decodes without the rest of the shards: reading one
// chunk of a pack with a data shard missing costs k ranges of the
// chunk's size, not k whole shards. Nothing is verified here (there are
// no checksums per range): the caller checks what it rebuilt (a pack's
// chunk records carry their own authentication tag).
func ReconstructRange(k, m int, parts [][]byte, want int) ([]byte, error) {
	if len(parts) != k+m || want < 0 || want >= k {
		return nil, fmt.Errorf("%w: %d parts for k=%d m=%d, shard %d wanted", ErrInvalidParams, len(parts), k, m, want)
	}
	if parts[want] != nil {
		return parts[want], nil
	}
	n, size := 0, -1
	for _, p := range parts {
		if p == nil {
			continue
		}
		if size >= 0 && len(p) != size {
			return nil, fmt.Errorf("%w: parts of %d and %d bytes", ErrInvalidParams, size, len(p))
		}
		size = len(p)
		n++
	}
	if n < k {
		return nil, &TooFewShardsError{Good: n, Need: k}
	}
	enc, err := encoder(k, m)
	if err != nil {
		return nil, err
	}
	shards := make([][]byte, len(parts))
	copy(shards, parts)
	if err := enc.ReconstructData(shards); err != nil {
		return nil, fmt.Errorf("erasure: reconstruct range: %w", err)
	}
	return shards[want], nil
}
