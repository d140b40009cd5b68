// Package e2e runs shoal's real binary with real replica processes: the checks a person
// would make by hand, from `shoal start` to kill -9.
package e2e
