package scaler

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"shoal/internal/tlsutil"
	"shoal/pkg/client"
)

// Webhook is the part of shoal's API a scaler calls: the scale route, with an
// application token (or the admin token).
type Webhook interface {
	// Scale sets a deployment's target replica count.
	Scale(ctx context.Context, app, dep string, n int) error
	// Target returns a deployment's current target replica count.
	Target(ctx context.Context, app, dep string) (int, error)
}

// NewWebhook adapts a pkg/client Client to a Webhook.
func NewWebhook(c *client.Client) Webhook { return clientWebhook{c} }

type clientWebhook struct{ c *client.Client }

func (w clientWebhook) Scale(ctx context.Context, app, dep string, n int) error {
	_, err := w.c.Scale(ctx, app, dep, n)
	return err
}

func (w clientWebhook) Target(ctx context.Context, app, dep string) (int, error) {
	s, err := w.c.GetScale(ctx, app, dep)
	if err != nil {
		return 0, err
	}
	return s.TargetNumReplicas, nil
}

// DefaultAddress is where a scaler finds shoal unless its config says otherwise: the
// proxy port, which answers the scale route too.
const DefaultAddress = "http://127.0.0.1:8000"

// DefaultTokenEnv is the environment variable a scaler reads its token from when its
// config names neither token_file nor token_env.
const DefaultTokenEnv = "SHOAL_TOKEN"

// ErrNoToken is returned by Shoal.Token when no token is configured or found.
var ErrNoToken = errors.New("no token")

// Shoal is the "shoal:" section of a scaler's config: where the webhook is and where
// the token comes from (never the token itself, so the file can be shared).
type Shoal struct {
	// Address of shoal's proxy or control port; default DefaultAddress.
	Address string `yaml:"address"`
	// TokenFile holds the token (an application token, from `shoal token APP`); a
	// relative path is relative to the config file. Surrounding white space is ignored.
	TokenFile string `yaml:"token_file"`
	// TokenEnv names the environment variable holding the token; default
	// DefaultTokenEnv when TokenFile is empty too.
	TokenEnv string `yaml:"token_env"`
	// CACert is a PEM file of the CA that signed shoal's certificate, trusted besides
	// the system's roots for an https:// address (such as the ca.crt of `shoal start
	// --self-signed`); a relative path is relative to the config file. The command line's
	// --cacert wins over it.
	CACert string `yaml:"cacert"`
}

// setDefaults fills the address and makes TokenFile absolute against baseDir.
func (s *Shoal) setDefaults(baseDir string) {
	if s.Address == "" {
		s.Address = DefaultAddress
	}
	if s.TokenFile != "" && !filepath.IsAbs(s.TokenFile) {
		s.TokenFile = filepath.Join(baseDir, s.TokenFile)
	}
	if s.CACert != "" && !filepath.IsAbs(s.CACert) {
		s.CACert = filepath.Join(baseDir, s.CACert)
	}
}

// validate reports the section's errors.
func (s *Shoal) validate(e *Errors, doc *Doc) {
	if s.TokenFile != "" && s.TokenEnv != "" {
		e.Add(doc.Line("shoal", "token_env"), "shoal.token_env", "set token_file or token_env, not both")
	}
	if !strings.Contains(s.Address, "://") {
		return
	}
	if !strings.HasPrefix(s.Address, "http://") && !strings.HasPrefix(s.Address, "https://") {
		e.Add(doc.Line("shoal", "address"), "shoal.address", fmt.Sprintf("must be an http:// or https:// URL, got %q", s.Address))
	}
}

// Token reads the token from the file or the environment variable.
func (s Shoal) Token(getenv func(string) string) (string, error) {
	if s.TokenFile != "" {
		b, err := os.ReadFile(s.TokenFile)
		if err != nil {
			return "", fmt.Errorf("token_file: %w", err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return "", fmt.Errorf("token_file %s: %w: the file is empty", s.TokenFile, ErrNoToken)
		}
		return tok, nil
	}
	name := s.TokenEnv
	if name == "" {
		name = DefaultTokenEnv
	}
	if tok := strings.TrimSpace(getenv(name)); tok != "" {
		return tok, nil
	}
	return "", fmt.Errorf("%w: set %s or shoal.token_file in the config (the token comes from `shoal token APP`)", ErrNoToken, name)
}

// Client returns a Webhook for this section, reading the token and the CA file now,
// so that a scaler with an unreadable one fails at start.
func (s Shoal) Client(getenv func(string) string, timeout time.Duration) (Webhook, error) {
	tok, err := s.Token(getenv)
	if err != nil {
		return nil, err
	}
	opts := []client.Option{client.WithTimeout(timeout)}
	if s.CACert != "" {
		conf, err := tlsutil.ClientConfig(s.CACert)
		if err != nil {
			return nil, fmt.Errorf("cacert: %w", err)
		}
		opts = append(opts, client.WithTLSConfig(conf))
	}
	return NewWebhook(client.New(s.Address, tok, opts...)), nil
}
