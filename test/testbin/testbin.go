// Package testbin is what the tests that run the real binary share: building shoal
// and the sample replica, and telling whether a process they started is still alive.
// Only tests import it.
package testbin

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// Binaries are the built programs, and the repository they come from.
type Binaries struct {
	Root    string // the repository root
	Shoal   string
	Replica string
}

// Build builds shoal and the sample replica into dir, without -race: the tests
// measure shoal's memory and timing, and the race detector would multiply both (the
// test binaries themselves run with -race under make test).
func Build(dir string) (Binaries, error) {
	root, err := RepoRoot()
	if err != nil {
		return Binaries{}, err
	}
	b := Binaries{Root: root, Shoal: filepath.Join(dir, "shoal"), Replica: filepath.Join(dir, "replica")}
	for out, pkg := range map[string]string{b.Shoal: "./cmd/shoal", b.Replica: "./examples/replica"} {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return Binaries{}, fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	return b, nil
}

// RepoRoot is the nearest folder above the working directory that has a go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Alive reports whether a process exists and is not a zombie (a replica reparented to
// an init that has not reaped it yet is dead for the tests' purposes).
func Alive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	return ProcState(pid) != 'Z'
}

// ProcState is the state letter of /proc/<pid>/stat (R, S, T, Z, ...), 0 when unknown.
func ProcState(pid int) byte {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// "pid (comm) state ..."; comm may hold spaces or parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return 0
	}
	return s[i+2]
}
