//go:build race

package cluster_test

// raceEnabled: the processes under test are built with the race detector
// too, so that `go test -race` checks the cluster code they run.
const raceEnabled = true
