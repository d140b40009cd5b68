// Command shoal serves HTTP applications as sets of replica processes from a Ray Serve
// config. See `shoal --help`.
package main

import (
	"os"

	"shoal/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
