package cli

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"shoal/internal/auth"
	"shoal/internal/tlsutil"
	"shoal/pkg/client"
)

// userAgent names the CLI's calls, so that shoal counts its scale calls under the
// source "cli" of shoal_scale_requests_total (the API matches the prefix).
const userAgent = client.CLIUserAgentPrefix + "1"

// apiClient is the CLI's view of the control API: pkg/client, with every error turned
// into one line that says what to do next.
type apiClient struct {
	c        *client.Client
	address  string
	tokenErr error  // why there is no admin token, reported if the API asks for one
	stateDir string // to point at a self-signed CA file when the certificate is not trusted
}

func (g *globals) client() (*apiClient, error) {
	addr := strings.TrimRight(g.address, "/")
	if u, err := url.Parse(addr); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usagef("--address %q: want a URL such as %s", g.address, DefaultAddress)
	}
	opts := []client.Option{client.WithTimeout(60 * time.Second), client.WithUserAgent(userAgent)}
	if g.cacert != "" {
		conf, err := tlsutil.ClientConfig(g.cacert)
		if err != nil {
			return nil, fmt.Errorf("--cacert: %w", err)
		}
		opts = append(opts, client.WithTLSConfig(conf))
	}
	tok := strings.TrimSpace(g.env.Getenv("SHOAL_AUTH_TOKEN"))
	var tokenErr error
	if tok == "" {
		// A missing token is reported only if the API needs it: when shoal is not
		// running at all, "cannot reach shoal" is the useful message.
		tok, tokenErr = auth.ReadAdminToken(g.stateDir)
	}
	return &apiClient{
		c:        client.New(addr, tok, opts...),
		address:  addr,
		tokenErr: tokenErr,
		stateDir: g.stateDir,
	}, nil
}

// explain turns an error of pkg/client into the CLI's one-line form.
func (a *apiClient) explain(err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("cannot reach shoal at %s: is it running? start it with 'shoal start CONFIG'", a.address)
	}
	if tlsErr := a.explainTLS(err); tlsErr != nil {
		return tlsErr
	}
	var ae *client.APIError
	if errors.As(err, &ae) {
		switch ae.Status {
		case http.StatusUnauthorized, http.StatusForbidden:
			if a.tokenErr != nil {
				return fmt.Errorf("shoal at %s refused the request (%d %s): %v", a.address, ae.Status, ae.Message, a.tokenErr)
			}
			return fmt.Errorf("shoal at %s refused the admin token (%d %s); pass the --state-dir that shoal runs with, or set SHOAL_AUTH_TOKEN",
				a.address, ae.Status, ae.Message)
		case http.StatusTooManyRequests:
			return fmt.Errorf("shoal at %s refuses this address after too many failed authentications (%s); wait a minute, then check the token",
				a.address, ae.Message)
		}
		if ae.Message == "" {
			return fmt.Errorf("shoal at %s answered %d %s", a.address, ae.Status, http.StatusText(ae.Status))
		}
		return errors.New(ae.Message)
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return fmt.Errorf("cannot reach shoal at %s: %v; check --address or SHOAL_ADDRESS", a.address,
			strings.TrimPrefix(err.Error(), "shoal: "))
	}
	return errors.New(strings.TrimPrefix(err.Error(), "shoal: "))
}

// plainToTLS is what Go's http.Server answers a plain HTTP request on a TLS port.
const plainToTLS = "Client sent an HTTP request to an HTTPS server"

// explainTLS turns the TLS mistakes of a client into what to do about them, or returns
// nil for any other error.
func (a *apiClient) explainTLS(err error) error {
	var (
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
		invalid x509.CertificateInvalidError
		ae      *client.APIError
	)
	switch {
	case errors.As(err, &unknown):
		hint := "pass --cacert FILE (or set SHOAL_CACERT) with the CA certificate that signed it"
		if ca := filepath.Join(a.stateDir, "tls", tlsutil.CAFileName); fileExists(ca) {
			hint = fmt.Sprintf("pass --cacert FILE (or set SHOAL_CACERT) with the CA certificate that signed it; for 'shoal start --self-signed' it is --cacert %s", ca)
		}
		return fmt.Errorf("cannot trust the certificate of shoal at %s (%v); %s", a.address, unknown, hint)
	case errors.As(err, &host):
		return fmt.Errorf("the certificate of shoal at %s is for other names (%v); use an --address with a name it covers", a.address, host)
	case errors.As(err, &invalid):
		return fmt.Errorf("the certificate of shoal at %s is not valid (%v); renew it, or restart shoal with --self-signed to remake the local one", a.address, invalid)
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return fmt.Errorf("%s serves plain HTTP, not HTTPS; use an http:// --address", a.address)
	case errors.As(err, &ae) && ae.Status == http.StatusBadRequest && strings.Contains(ae.Message, plainToTLS):
		return fmt.Errorf("%s serves HTTPS, not plain HTTP; use an https:// --address (with --cacert for a self-signed certificate)", a.address)
	}
	return nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func (a *apiClient) deploy(ctx context.Context, body []byte) error {
	return a.explain(a.c.Deploy(ctx, body))
}

func (a *apiClient) status(ctx context.Context) (*client.ServeDetails, error) {
	d, err := a.c.Status(ctx)
	return d, a.explain(err)
}

func (a *apiClient) getScale(ctx context.Context, app, dep string) (*client.ScaleInfo, error) {
	s, err := a.c.GetScale(ctx, app, dep)
	return s, a.explain(err)
}

func (a *apiClient) scale(ctx context.Context, app, dep string, n int) (prev int, err error) {
	res, err := a.c.Scale(ctx, app, dep, n)
	if err != nil {
		return 0, a.explain(err)
	}
	return res.PreviousTargetNumReplicas, nil
}

func (a *apiClient) token(ctx context.Context, app string, rotate bool) (string, error) {
	var (
		tok string
		err error
	)
	if rotate {
		tok, err = a.c.RotateToken(ctx, app)
	} else {
		tok, err = a.c.Token(ctx, app)
	}
	return tok, a.explain(err)
}

func (a *apiClient) deleteAll(ctx context.Context) error { return a.explain(a.c.DeleteAll(ctx)) }
func (a *apiClient) shutdown(ctx context.Context) error  { return a.explain(a.c.Shutdown(ctx)) }
