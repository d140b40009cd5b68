// Package server wires shoal's parts together and runs them: it is what `shoal start`
// runs, from opening the state directory to the graceful stop.
package server
