package fs

import gofs "github.com/hanwen/go-fuse/v2/fs"

// The go-fuse interfaces each node and file type implements: FUSE coverage at
// a glance. A directory type embeds changeGuard for every change operation.

// rootNode: M/
var (
	_ = (gofs.InodeEmbedder)((*rootNode)(nil))
	_ = (gofs.NodeOnAdder)((*rootNode)(nil))
	_ = (gofs.NodeGetattrer)((*rootNode)(nil))
	_ = (gofs.NodeLookuper)((*rootNode)(nil))
	_ = (gofs.NodeReaddirer)((*rootNode)(nil))
	_ = (gofs.NodeStatfser)((*rootNode)(nil))
)

// Every directory: rootNode, disksDir, snapshotsDir, snapshotDir, imagesDir.
var (
	_ = dirChecks((*rootNode)(nil))
	_ = dirChecks((*disksDir)(nil))
	_ = dirChecks((*snapshotsDir)(nil))
	_ = dirChecks((*snapshotDir)(nil))
	_ = dirChecks((*imagesDir)(nil))
)

// dirNode is what every directory implements.
type dirNode interface {
	gofs.InodeEmbedder
	gofs.NodeGetattrer
	gofs.NodeLookuper
	gofs.NodeReaddirer
	gofs.NodeAccesser
	gofs.NodeSetattrer
	gofs.NodeMkdirer
	gofs.NodeMknoder
	gofs.NodeLinker
	gofs.NodeSymlinker
	gofs.NodeCreater
	gofs.NodeUnlinker
	gofs.NodeRmdirer
	gofs.NodeRenamer
}

func dirChecks(d dirNode) bool { return true }

// diskNode: M/disks/<disk>; diskFile: its open handle.
var (
	_ = (gofs.InodeEmbedder)((*diskNode)(nil))
	_ = (gofs.NodeGetattrer)((*diskNode)(nil))
	_ = (gofs.NodeSetattrer)((*diskNode)(nil))
	_ = (gofs.NodeOpener)((*diskNode)(nil))
	_ = (gofs.NodeAllocater)((*diskNode)(nil))

	_ = (gofs.FileReader)((*diskFile)(nil))
	_ = (gofs.FileWriter)((*diskFile)(nil))
	_ = (gofs.FileFsyncer)((*diskFile)(nil))
	_ = (gofs.FileFlusher)((*diskFile)(nil))
	_ = (gofs.FileReleaser)((*diskFile)(nil))
)

// imageNode: M/snapshots/<snap>/<disk> and M/images/<image>; imageFile: its handle.
var (
	_ = (gofs.InodeEmbedder)((*imageNode)(nil))
	_ = (gofs.NodeGetattrer)((*imageNode)(nil))
	_ = (gofs.NodeSetattrer)((*imageNode)(nil))
	_ = (gofs.NodeAccesser)((*imageNode)(nil))
	_ = (gofs.NodeOpener)((*imageNode)(nil))
	_ = (gofs.NodeAllocater)((*imageNode)(nil))

	_ = (gofs.FileReader)((*imageFile)(nil))
	_ = (gofs.FileWriter)((*imageFile)(nil))
	_ = (gofs.FileReleaser)((*imageFile)(nil))
)

// jsonNode: M/snapshots/<snap>/snapshot.json; bytesFile: its handle.
var (
	_ = (gofs.InodeEmbedder)((*jsonNode)(nil))
	_ = (gofs.NodeGetattrer)((*jsonNode)(nil))
	_ = (gofs.NodeSetattrer)((*jsonNode)(nil))
	_ = (gofs.NodeAccesser)((*jsonNode)(nil))
	_ = (gofs.NodeOpener)((*jsonNode)(nil))
	_ = (gofs.NodeAllocater)((*jsonNode)(nil))

	_ = (gofs.FileReader)((*bytesFile)(nil))
	_ = (gofs.FileWriter)((*bytesFile)(nil))
)

// .files (node_files.go): filesTop (<d>.files of a whole-disk filesystem,
// <d>.files/pN), partsDir (<d>.files of a partitioned disk), filesNode
// (everything inside), filesFile (an open file inside).
var (
	_ = dirChecks((*filesTop)(nil))
	_ = dirChecks((*partsDir)(nil))
	_ = dirChecks((*filesNode)(nil))
	_ = (gofs.NodeStatfser)((*filesTop)(nil))
	_ = (gofs.NodeStatfser)((*filesNode)(nil))
	_ = (gofs.NodeReadlinker)((*filesNode)(nil))
	_ = (gofs.NodeGetxattrer)((*filesNode)(nil))
	_ = (gofs.NodeListxattrer)((*filesNode)(nil))
	_ = (gofs.NodeOpener)((*filesNode)(nil))
	_ = (gofs.NodeAllocater)((*filesNode)(nil))

	_ = (gofs.FileReader)((*filesFile)(nil))
	_ = (gofs.FileWriter)((*filesFile)(nil))
	_ = (gofs.FileLseeker)((*filesFile)(nil))
	_ = (gofs.FileReleaser)((*filesFile)(nil))
)

// Every node outside .files answers statfs with the store's filesystem
// (mountState.statfs): go-fuse leaves a node without Statfs all zeros.
var (
	_ = (gofs.NodeStatfser)((*disksDir)(nil))
	_ = (gofs.NodeStatfser)((*snapshotsDir)(nil))
	_ = (gofs.NodeStatfser)((*snapshotDir)(nil))
	_ = (gofs.NodeStatfser)((*imagesDir)(nil))
	_ = (gofs.NodeStatfser)((*diskNode)(nil))
	_ = (gofs.NodeStatfser)((*imageNode)(nil))
	_ = (gofs.NodeStatfser)((*jsonNode)(nil))
	_ = (gofs.NodeStatfser)((*regionsTop)(nil))
	_ = (gofs.NodeStatfser)((*regionDir)(nil))
	_ = (gofs.NodeStatfser)((*remoteSnapDir)(nil))
)
