//go:build race

package healthcheck

// raceEnabled: the race detector drops sync.Pool entries at random, so
// allocation counts do not hold under it.
const raceEnabled = true
