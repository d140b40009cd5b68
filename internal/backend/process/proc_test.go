package process

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestReplicaEnv(t *testing.T) {
	base := []string{"HOME=/home/u", "PATH=/usr/bin", "PORT=1"}
	extra := map[string]string{
		"GREETING": "hi ${SHOAL_REPLICA_ID} on ${PORT}",
		"HOME":     "${HOME}/app",
		"PORT":     "ignored: the backend's PORT wins",
		"OTHER":    "${GREETING}", // spec variables do not see each other
	}
	env, argv := replicaEnv(base, extra, []string{"serve", "--port", "${PORT}", "--home=${HOME}", "$1", "$${PORT}"}, 8123, "abcd1234")
	want := []string{
		"GREETING=hi abcd1234 on 8123",
		"HOME=/home/u/app",
		"OTHER=",
		"PATH=/usr/bin",
		"PORT=8123",
		"SHOAL_REPLICA_ID=abcd1234",
	}
	if !slices.Equal(env, want) {
		t.Errorf("env = %q\nwant  %q", env, want)
	}
	if wantArgv := []string{"serve", "--port", "8123", "--home=/home/u/app", "$1", "${PORT}"}; !slices.Equal(argv, wantArgv) {
		t.Errorf("argv = %q, want %q", argv, wantArgv)
	}
}

func TestLookPathUsesTheReplicasPath(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "server")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, cmd, path, want string
		fails                 bool
	}{
		{name: "a bare name is found on the replica's PATH", cmd: "server", path: "/nonexistent:" + dir, want: exe},
		{name: "a name with a slash is used as it is", cmd: "./bin/server", path: "", want: "./bin/server"},
		{name: "a file that is not executable is not a command", cmd: "data", path: dir, fails: true},
		{name: "relative PATH entries are skipped", cmd: "server", path: ".", fails: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := lookPath(tt.cmd, tt.path)
			if tt.fails {
				if err == nil {
					t.Errorf("lookPath = %q, want an error", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("lookPath = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestLogFileRotatesAtLineEndsAndKeepsOneOldFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.log")
	l, err := openLog(path, 20)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"aaaa\nbbbb\n", "cccc\ndddd\n", "eeee\n", "ffff\ngggg\n", strings.Repeat("z", 30)} {
		if _, err := l.Write([]byte(w)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	// "eeee\nffff\ngggg\n" filled the second file; the 30-byte line without a newline
	// starts a third one and, longer than the cap, is split across two.
	if got, want := read(path+".1"), strings.Repeat("z", 20); got != want {
		t.Errorf("old file = %q, want %q", got, want)
	}
	if got, want := read(path), strings.Repeat("z", 10); got != want {
		t.Errorf("current file = %q, want %q", got, want)
	}
	if got, want := l.lastLines(3), []string{"ffff", "gggg", strings.Repeat("z", 30)}; !slices.Equal(got, want) {
		t.Errorf("lastLines = %q, want %q", got, want)
	}
}

func TestLogFileKeepsWholeLinesWhenTheyFit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.log")
	l, err := openLog(path, 12)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Write([]byte("one\ntwo\nthree\nfour\n")); err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if string(old) != "one\ntwo\n" || string(cur) != "three\nfour\n" {
		t.Errorf("files = %q and %q, want whole lines in each", old, cur)
	}
}

func TestLastLinesOfAnEmptyLogIsNothing(t *testing.T) {
	l, err := openLog(filepath.Join(t.TempDir(), "r.log"), 100)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := l.lastLines(10); got != nil {
		t.Errorf("lastLines = %q, want none", got)
	}
}

func TestNewIDIsEightLowercaseAlphanumerics(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := newID()
		if len(id) != 8 || strings.Trim(id, idAlphabet) != "" {
			t.Fatalf("id %q", id)
		}
		seen[id] = true
	}
	if len(seen) < 999 {
		t.Errorf("only %d distinct ids out of 1000", len(seen))
	}
}

func TestFreePortSkipsPortsHandedOut(t *testing.T) {
	used := map[int]bool{}
	for range 50 {
		p, err := freePort(used)
		if err != nil {
			t.Fatal(err)
		}
		if used[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		used[p] = true
	}
}
