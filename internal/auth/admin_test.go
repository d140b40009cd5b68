package auth

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

func TestAdminTokenIsMadeOnceAsAPrivateFile(t *testing.T) {
	t.Setenv(EnvAdminToken, "")
	dir := filepath.Join(t.TempDir(), "state")
	tok, err := AdminToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !hex64.MatchString(tok) {
		t.Fatalf("token %q is not 32 bytes of hex", tok)
	}
	path := filepath.Join(dir, TokenFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o600 {
		t.Errorf("token file mode %v, want 0600", fi.Mode())
	}
	if data, _ := os.ReadFile(path); strings.TrimSpace(string(data)) != tok {
		t.Errorf("file holds %q, want the returned token", data)
	}
	again, err := AdminToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	if again != tok {
		t.Errorf("second call returned %q, want the first token %q", again, tok)
	}
	read, err := ReadAdminToken(dir)
	if err != nil || read != tok {
		t.Errorf("ReadAdminToken = %q, %v; want the made token", read, err)
	}
	// No temporary file is left behind.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("state dir holds %d files, want only %s", len(entries), TokenFile)
	}
}

func TestAdminTokensMadeAtOnceAgree(t *testing.T) {
	t.Setenv(EnvAdminToken, "")
	dir := t.TempDir()
	toks := make([]string, 8)
	var wg sync.WaitGroup
	for i := range toks {
		wg.Go(func() {
			tok, err := AdminToken(dir)
			if err != nil {
				t.Error(err)
			}
			toks[i] = tok
		})
	}
	wg.Wait()
	for _, tok := range toks {
		if tok != toks[0] {
			t.Fatalf("concurrent calls returned different tokens: %q", toks)
		}
	}
}

func TestTheEnvironmentOverridesTheTokenFile(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(EnvAdminToken, "  from-env \n")
	for name, f := range map[string]func(string) (string, error){"AdminToken": AdminToken, "ReadAdminToken": ReadAdminToken} {
		tok, err := f(dir)
		if err != nil || tok != "from-env" {
			t.Errorf("%s = %q, %v; want from-env", name, tok, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, TokenFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a token file was made although the environment sets the token: %v", err)
	}
}

func TestTokenFileProblems(t *testing.T) {
	cases := []struct {
		name    string
		content string // "" with mode 0 means no file
		mode    os.FileMode
		read    func(string) (string, error)
		wantIs  error
		wantMsg string
	}{
		{
			name: "a client without a token file is told to start shoal first",
			read: ReadAdminToken, wantIs: ErrNoAdminToken,
			wantMsg: "run `shoal start` first or set SHOAL_AUTH_TOKEN",
		},
		{
			name:    "a token file readable by others is refused with the fix",
			content: "abc\n", mode: 0o644, read: AdminToken, wantIs: ErrInsecureTokenFile,
			wantMsg: "has mode 0644; run: chmod 600",
		},
		{
			name:    "a token file writable by the group is refused for clients too",
			content: "abc\n", mode: 0o620, read: ReadAdminToken, wantIs: ErrInsecureTokenFile,
			wantMsg: "chmod 600",
		},
		{
			name:    "an empty token file is refused rather than replaced",
			content: " \n", mode: 0o600, read: AdminToken,
			wantMsg: "is empty",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvAdminToken, "")
			dir := t.TempDir()
			path := filepath.Join(dir, TokenFile)
			if tc.mode != 0 {
				if err := os.WriteFile(path, []byte(tc.content), tc.mode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, tc.mode); err != nil { // past the umask
					t.Fatal(err)
				}
			}
			tok, err := tc.read(dir)
			if err == nil {
				t.Fatalf("got token %q, want an error", tok)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("error %v is not %v", err, tc.wantIs)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q should name %s and say %q", err, path, tc.wantMsg)
			}
		})
	}
}
