//go:build race

package authorization_test

// raceEnabled: the tests run under the race detector.
const raceEnabled = true
