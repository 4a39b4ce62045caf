package rowstore

func benchLiveBuild(lm *liveMap) *liveBuild {
	return lm.newLiveBuild()
}
