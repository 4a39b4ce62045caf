package rowstore

import "sync"

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, MaxBlockSize+segment_HeaderSlack); return &b }}

const segment_HeaderSlack = 64

func getBuf(n int) []byte {
	bp := bufPool.Get().(*[]byte)
	if cap(*bp) < n {
		b := make([]byte, n)
		return b
	}
	return (*bp)[:n]
}

func putBuf(b []byte) {
	if cap(b) >= MaxBlockSize+segment_HeaderSlack {
		b = b[:0]
		bufPool.Put(&b)
	}
}
