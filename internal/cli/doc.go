// Package cli is shoal's command line: it parses arguments, calls the control API or the
// server, and prints the answers; it holds no logic of its own beyond that.
package cli
