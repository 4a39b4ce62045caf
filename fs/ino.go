package fs

// Inode numbers are derived from the Backend's IDs, so that they are stable
// across lookups, readdirs and remounts, and never shared by two live objects:
//
//	bits 63..56  kind tag (0 only for the four fixed directories)
//	bits 55..0   the object's ID; for files inside a snapshot directory,
//	             snapshot ID << 16 | member number (0 = snapshot.json,
//	             1+i = the i-th disk of the snapshot in name order)
//
// IDs that do not fit their field are folded (xor of the high bits into the
// low ones). That can only collide for stores with more than 2^56 disks or
// 2^40 snapshots, which the engine does not hand out.
const (
	kindShift = 56
	idMask    = 1<<kindShift - 1

	kindDisk     = 1
	kindSnapDir  = 2
	kindSnapFile = 3
	kindImage    = 4

	inoRoot      = 1 // go-fuse's FUSE_ROOT_ID
	inoDisks     = 2
	inoSnapshots = 3
	inoImages    = 4

	memberBits = 16
	snapIDBits = kindShift - memberBits
)

func fold(id uint64, bits uint) uint64 {
	mask := uint64(1)<<bits - 1
	for id > mask {
		id = (id & mask) ^ (id >> bits)
	}
	return id
}

func diskIno(id uint64) uint64    { return kindDisk<<kindShift | fold(id, kindShift) }
func snapDirIno(id uint64) uint64 { return kindSnapDir<<kindShift | fold(id, kindShift) }
func imageIno(id uint64) uint64   { return kindImage<<kindShift | fold(id, kindShift) }

// snapFileIno numbers member m of snapshot id (0 = snapshot.json).
func snapFileIno(id uint64, member int) uint64 {
	return kindSnapFile<<kindShift | fold(id, snapIDBits)<<memberBits | fold(uint64(member), memberBits)
}
