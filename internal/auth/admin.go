package auth

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

const (
	// EnvAdminToken overrides the admin token file when set and not empty.
	EnvAdminToken = "SHOAL_AUTH_TOKEN"
	// TokenFile is the admin token's file in the state directory.
	TokenFile = "auth_token"
)

var (
	// ErrNoAdminToken is returned by ReadAdminToken when there is neither a token file
	// nor SHOAL_AUTH_TOKEN.
	ErrNoAdminToken = errors.New("no admin token")
	// ErrInsecureTokenFile is returned when the token file is open to group or others.
	ErrInsecureTokenFile = errors.New("admin token file is accessible to group or others")
)

// AdminToken returns the admin token for a shoal running on stateDir: SHOAL_AUTH_TOKEN
// when set, else the one in <stateDir>/auth_token, made there (mode 0600) on first use.
func AdminToken(stateDir string) (string, error) {
	if tok := strings.TrimSpace(os.Getenv(EnvAdminToken)); tok != "" {
		return tok, nil
	}
	path := filepath.Join(stateDir, TokenFile)
	tok, err := readTokenFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return tok, err
	}
	return createTokenFile(stateDir, path)
}

// ReadAdminToken returns the admin token for a client of the shoal on stateDir:
// SHOAL_AUTH_TOKEN when set, else <stateDir>/auth_token. It never makes one.
func ReadAdminToken(stateDir string) (string, error) {
	if tok := strings.TrimSpace(os.Getenv(EnvAdminToken)); tok != "" {
		return tok, nil
	}
	path := filepath.Join(stateDir, TokenFile)
	tok, err := readTokenFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%w: %s does not exist; run `shoal start` first or set %s", ErrNoAdminToken, path, EnvAdminToken)
	}
	return tok, err
}

func readTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	// Stat the open file, not the path, so the mode checked is that of what is read.
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("%w: %s has mode %04o; run: chmod 600 %s", ErrInsecureTokenFile, path, perm, path)
	}
	// A token is 64 characters; anything much bigger is not a token file.
	data, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	tok := strings.TrimSpace(string(data))
	if tok == "" {
		return "", fmt.Errorf("admin token file %s is empty; remove it to have a new token made", path)
	}
	return tok, nil
}

// createTokenFile writes a new token so that the file is never seen half-written and is
// on disk before the token is used: a temporary file (created 0600), fsynced, then linked
// to its name, then the directory fsynced. A link, unlike a rename, fails when the name
// exists, so two processes starting at once both end up with the same token — the
// loser reads the winner's.
func createTokenFile(dir, path string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create state directory: %w", err)
	}
	tok := randomHex(32)
	tmp, err := os.CreateTemp(dir, "."+TokenFile+"-*")
	if err != nil {
		return "", fmt.Errorf("create admin token: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(tok + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("write admin token: %w", err)
	}
	err = os.Link(tmp.Name(), path)
	if errors.Is(err, fs.ErrExist) {
		return readTokenFile(path)
	}
	if err != nil {
		// Some filesystems have no hard links; a rename is atomic too, only not exclusive.
		if err := os.Rename(tmp.Name(), path); err != nil {
			return "", fmt.Errorf("write admin token: %w", err)
		}
	}
	if err := syncDir(dir); err != nil {
		return "", fmt.Errorf("write admin token: %w", err)
	}
	return tok, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// randomHex returns n random bytes, hex encoded. crypto/rand.Read does not fail: when the
// system's source breaks, the program crashes instead of getting a weak token.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
