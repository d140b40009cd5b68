package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"shoal/internal/tlsutil"
)

// UserAgent is the User-Agent a Client sends unless WithUserAgent sets another.
const UserAgent = "shoal-client/1"

// CLIUserAgentPrefix starts the User-Agent of shoal's own CLI ("shoal-cli/1"). shoal
// counts the scale calls whose User-Agent starts with it under the source "cli" of
// shoal_scale_requests_total, and every other one under "webhook": a metric label,
// which grants nothing.
const CLIUserAgentPrefix = "shoal-cli/"

// Client calls one shoal's control API with one bearer token.
type Client struct {
	base  string
	token string
	ua    string
	hc    *http.Client
	poll  time.Duration
	// err is a problem of an option (an unreadable CA file), returned by every call.
	err error
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the client send its requests through hc.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithTimeout bounds every request, body included.
func WithTimeout(d time.Duration) Option {
	return func(c *Client) {
		hc := *c.hc
		hc.Timeout = d
		c.hc = &hc
	}
}

// WithTLSConfig makes the client use conf for https:// addresses (a copy of it, over a
// copy of the current transport, so other clients are not affected).
func WithTLSConfig(conf *tls.Config) Option {
	return func(c *Client) {
		var t *http.Transport
		if cur, ok := c.hc.Transport.(*http.Transport); ok {
			t = cur.Clone()
		} else {
			t = http.DefaultTransport.(*http.Transport).Clone()
		}
		t.TLSClientConfig = conf.Clone()
		hc := *c.hc
		hc.Transport = t
		c.hc = &hc
	}
}

// WithCACert makes the client trust, besides the system's roots, the CA certificates
// in the PEM file at path (such as the ca.crt of `shoal start --self-signed`), and use
// TLS 1.2 at least. An unreadable file, or one without a certificate, is returned by
// every call of the client.
func WithCACert(path string) Option {
	return func(c *Client) {
		conf, err := tlsutil.ClientConfig(path)
		if err != nil {
			c.err = fmt.Errorf("shoal: %w", err)
			return
		}
		WithTLSConfig(conf)(c)
	}
}

// WithUserAgent makes the client send ua as its User-Agent. shoal uses it only to label
// its metrics (the CLI's scale calls are counted as source "cli"); it grants nothing.
func WithUserAgent(ua string) Option { return func(c *Client) { c.ua = ua } }

// WithPollInterval sets how often WaitRunning polls; default 250 ms.
func WithPollInterval(d time.Duration) Option { return func(c *Client) { c.poll = d } }

// New returns a client of the API at address (e.g. "http://127.0.0.1:8265"; a bare
// host:port means http). token is the admin token or an application token.
func New(address, token string, opts ...Option) *Client {
	if !strings.Contains(address, "://") {
		address = "http://" + address
	}
	c := &Client{
		base:  strings.TrimRight(address, "/"),
		token: token,
		ua:    UserAgent,
		hc:    &http.Client{},
		poll:  250 * time.Millisecond,
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// APIError is an answer of the API with an error status.
type APIError struct {
	Status  int
	Message string
}

// Error is one line: the status and the API's message, its lines joined by "; ".
func (e *APIError) Error() string {
	var parts []string
	for _, l := range strings.Split(e.Message, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	msg := strings.Join(parts, "; ")
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("shoal: %d %s: %s", e.Status, http.StatusText(e.Status), msg)
}

// do sends a request and decodes a 2xx JSON answer into out (when non-nil). Any other
// status becomes an *APIError.
func (c *Client) do(ctx context.Context, method, path string, body []byte, ctype string, out any) error {
	raw, err := c.send(ctx, method, path, body, ctype)
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("shoal: decoding the answer of %s %s: %w", method, path, err)
	}
	return nil
}

func (c *Client) send(ctx context.Context, method, path string, body []byte, ctype string) ([]byte, error) {
	if c.err != nil {
		return nil, c.err
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("shoal: %w", err)
	}
	req.Header.Set("User-Agent", c.ua)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("shoal: %s %s: %w", method, c.base+path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("shoal: reading the answer of %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, &APIError{Status: resp.StatusCode, Message: errorMessage(raw)}
	}
	return raw, nil
}

// errorMessage takes "error" from a JSON error body, else the body as text.
func errorMessage(raw []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(raw, &e) == nil && e.Error != "" {
		return e.Error
	}
	return strings.TrimSpace(string(raw))
}

// Deploy sends a config: a []byte or json.RawMessage of JSON (or YAML), or any value
// that marshals to Ray's schema (such as a config.Config).
func (c *Client) Deploy(ctx context.Context, cfg any) error {
	var body []byte
	switch v := cfg.(type) {
	case []byte:
		body = v
	case json.RawMessage:
		body = v
	case string:
		body = []byte(v)
	default:
		b, err := json.Marshal(cfg)
		if err != nil {
			return fmt.Errorf("shoal: encoding the config: %w", err)
		}
		body = b
	}
	return c.do(ctx, http.MethodPut, "/api/serve/applications/", body, "application/json", nil)
}

// Status returns every application, its deployments and replicas.
func (c *Client) Status(ctx context.Context) (*ServeDetails, error) {
	var d ServeDetails
	if err := c.do(ctx, http.MethodGet, "/api/serve/applications/", nil, "", &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// DeleteAll deletes every application.
func (c *Client) DeleteAll(ctx context.Context) error {
	return c.do(ctx, http.MethodDelete, "/api/serve/applications/", nil, "", nil)
}

func scalePath(app, dep string) string {
	return "/api/v1/applications/" + url.PathEscape(app) + "/deployments/" + url.PathEscape(dep) + "/scale"
}

// Scale sets a deployment's target replica count through the scale webhook.
func (c *Client) Scale(ctx context.Context, app, dep string, n int) (*ScaleResult, error) {
	body, _ := json.Marshal(map[string]int{"target_num_replicas": n})
	var r ScaleResult
	if err := c.do(ctx, http.MethodPost, scalePath(app, dep), body, "application/json", &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// GetScale returns a deployment's target, running count, mode and recent audit entries.
func (c *Client) GetScale(ctx context.Context, app, dep string) (*ScaleInfo, error) {
	var s ScaleInfo
	if err := c.do(ctx, http.MethodGet, scalePath(app, dep), nil, "", &s); err != nil {
		return nil, err
	}
	return &s, nil
}

type tokenAnswer struct {
	Token string `json:"token"`
	ID    string `json:"id"`
}

// Token returns an application's token (admin only).
func (c *Client) Token(ctx context.Context, app string) (string, error) {
	var t tokenAnswer
	if err := c.do(ctx, http.MethodGet, "/api/v1/applications/"+url.PathEscape(app)+"/token", nil, "", &t); err != nil {
		return "", err
	}
	return t.Token, nil
}

// RotateToken replaces an application's token and returns the new one (admin only).
func (c *Client) RotateToken(ctx context.Context, app string) (string, error) {
	var t tokenAnswer
	if err := c.do(ctx, http.MethodPost, "/api/v1/applications/"+url.PathEscape(app)+"/token/rotate", nil, "", &t); err != nil {
		return "", err
	}
	return t.Token, nil
}

// Shutdown asks shoal to stop gracefully, keeping its state.
func (c *Client) Shutdown(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/api/v1/shutdown", nil, "", nil)
}

// Logs returns the last lines of a replica's log; lines <= 0 means the server's default.
func (c *Client) Logs(ctx context.Context, app, dep, replica string, lines int) (string, error) {
	p := "/api/v1/applications/" + url.PathEscape(app) + "/deployments/" + url.PathEscape(dep) +
		"/replicas/" + url.PathEscape(replica) + "/logs"
	if lines > 0 {
		p += "?lines=" + strconv.Itoa(lines)
	}
	raw, err := c.send(ctx, http.MethodGet, p, nil, "")
	return string(raw), err
}

// WaitRunning polls GetScale until the deployment's target is n, exactly n replicas
// are RUNNING and it is HEALTHY, calling progress (when non-nil) with the running count
// and the target after every poll. It works with an application token too. It returns
// ctx's error, wrapped with the last state seen, when ctx ends first.
func (c *Client) WaitRunning(ctx context.Context, app, dep string, n int, progress func(running, target int)) error {
	t := time.NewTicker(c.poll)
	defer t.Stop()
	for {
		s, err := c.GetScale(ctx, app, dep)
		if err != nil {
			return err
		}
		if progress != nil {
			progress(s.RunningReplicas, s.TargetNumReplicas)
		}
		if s.TargetNumReplicas == n && s.RunningReplicas == n && s.Status == "HEALTHY" {
			return nil
		}
		select {
		case <-ctx.Done():
			msg := ""
			if s.Message != "" {
				msg = ": " + s.Message
			}
			return fmt.Errorf("shoal: waiting for %s/%s to run %d replicas (running %d of target %d, %s%s): %w",
				app, dep, n, s.RunningReplicas, s.TargetNumReplicas, s.Status, msg, ctx.Err())
		case <-t.C:
		}
	}
}
