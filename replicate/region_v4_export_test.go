package replicate

// IndexHomes names the stores that hold pack's index (index version 4) in
// a region of k+m stores (for tests).
func IndexHomes(k, m int, pack string) []int {
	return (&region{k: k, m: m}).indexHomes(pack)
}
