package rowstore

import "github.com/snapfs/snapfs/index"

func benchLiveBuild(*liveMap) *liveBuild {
	return &liveBuild{m: map[vkey]index.Version{}, segLive: map[uint64]int64{}}
}
