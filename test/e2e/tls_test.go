package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"shoal/internal/tlsutil"
	"shoal/pkg/client"
)

// launchArgs starts `shoal start` with extra arguments (TLS flags, listener hosts) that
// startOptions cannot express; the rest is as launch does it.
func launchArgs(t *testing.T, stateDir, config string, proxyPort int, extra ...string) *shoal {
	t.Helper()
	if stateDir == "" {
		stateDir = t.TempDir()
	}
	s := &shoal{
		t:           t,
		stateDir:    stateDir,
		controlPort: freePort(t),
		proxyPort:   proxyPort,
		out:         &syncBuffer{},
		exited:      make(chan struct{}),
		pids:        map[int]bool{},
	}
	s.env = append(cleanEnv(), "SHOAL_STATE_DIR="+s.stateDir)
	args := append([]string{"start", "--dashboard-port", strconv.Itoa(s.controlPort), "--log-level", "debug"}, extra...)
	if config != "" {
		args = append(args, config)
	}
	s.cmd = exec.Command(bin.shoal, args...)
	s.cmd.Env = s.env
	s.cmd.Stdout = s.out
	s.cmd.Stderr = s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.exitErr = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(s.cleanup)
	return s
}

// httpsClient trusts only the CA certificates in caFile.
func httpsClient(t *testing.T, caFile string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s holds no certificate", caFile)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Timeout: 10 * time.Second, Transport: tr}
}

// waitHTTPS waits until url answers 200 to a client trusting caFile, which shoal may
// not have written yet.
func (s *shoal) waitHTTPS(url, caFile string) {
	s.t.Helper()
	eventually(s.t, 20*time.Second, url, func() (bool, string) {
		if s.isExited() {
			s.t.Fatalf("shoal exited before it was healthy: %v\n%s", s.exitErr, s.out)
		}
		if _, err := os.Stat(caFile); err != nil {
			return false, err.Error()
		}
		code, _, err := get(httpsClient(s.t, caFile), url)
		if err != nil {
			return false, err.Error()
		}
		return code == http.StatusOK, strconv.Itoa(code)
	})
}

// tlsCheckHandshake dials addr with versions [lo, hi] and a client trusting pool, and
// returns the handshake's error and the version agreed on.
func tlsCheckHandshake(addr string, pool *x509.CertPool, lo, hi uint16) (uint16, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: pool, MinVersion: lo, MaxVersion: hi, ServerName: "127.0.0.1"})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.ConnectionState().Version, nil
}

// plainGet sends a plain-HTTP GET to a port and returns the status and body.
func plainGet(t *testing.T, port int, path string) (int, string) {
	t.Helper()
	code, body, err := get(&http.Client{Timeout: 5 * time.Second}, fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
	if err != nil {
		t.Fatalf("plain GET on port %d: %v", port, err)
	}
	return code, string(body)
}

// pyScale is Ray's predictive_scale request made with requests: verify= names the CA
// file, or "default" for the system's trust store.
const pyScale = `
import sys, requests
url, token, verify, n = sys.argv[1:5]
if verify == "default":
    verify = True
try:
    r = requests.post(url, headers={"Authorization": "Bearer " + token},
                      json={"target_num_replicas": int(n)}, verify=verify, timeout=10)
except requests.exceptions.SSLError as e:
    print("SSLError:", e)
    sys.exit(3)
print(r.status_code, r.text)
`

func python(t *testing.T, script string, args ...string) (string, int) {
	t.Helper()
	py := "/usr/bin/python3"
	_, err := os.Stat(py)
	needTool(t, "Debian's /usr/bin/python3", err == nil)
	if err := exec.Command(py, "-c", "import requests").Run(); err != nil {
		needTool(t, "python3-requests", false)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, append([]string{"-c", script}, args...)...)
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out)), code
}

func TestTheWebhookOverHTTPSWithASelfSignedCA(t *testing.T) {
	proxyPort := freePort(t)
	cfg := writeFile(t, t.TempDir(), "serve.yaml", whConfig(proxyPort, whEcho(1, nil)))
	s := launchArgs(t, "", cfg, proxyPort, "--self-signed")
	ca := filepath.Join(s.stateDir, "tls", "ca.crt")
	ctlURL := fmt.Sprintf("https://127.0.0.1:%d", s.controlPort)
	pxURL := fmt.Sprintf("https://127.0.0.1:%d", proxyPort)
	s.waitHTTPS(ctlURL+"/-/healthz", ca)
	hc := httpsClient(t, ca)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	t.Run("start says where the CA is and how to use it", func(t *testing.T) {
		out := s.out.String()
		for _, want := range []string{
			"proxy listening on " + pxURL,
			"control listening on " + ctlURL,
			"self-signed certificate (made) for 127.0.0.1, localhost, ::1 on the proxy and control",
			"curl --cacert " + ca,
			fmt.Sprintf("verify=%q", ca),
			"--cacert " + ca + " status",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("shoal's output does not say %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "clear text") {
			t.Errorf("a loopback shoal warned about clear text:\n%s", out)
		}
	})

	admin := client.New(ctlURL, s.token(), client.WithCACert(ca), client.WithPollInterval(50*time.Millisecond))
	if err := admin.WaitRunning(ctx, "echo", "model", 1, nil); err != nil {
		t.Fatalf("echo/model never ran 1 replica: %v\n%s", err, s.out)
	}
	appToken, err := admin.Token(ctx, "echo")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("pkg/client with the CA scales through the proxy port", func(t *testing.T) {
		res, err := client.New(pxURL, appToken, client.WithCACert(ca)).Scale(ctx, "echo", "model", 2)
		if err != nil {
			t.Fatal(err)
		}
		if res.TargetNumReplicas != 2 || res.PreviousTargetNumReplicas != 1 {
			t.Errorf("scale answer %+v; want 1 → 2", res)
		}
		if err := admin.WaitRunning(ctx, "echo", "model", 2, nil); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("pkg/client without the CA refuses the certificate", func(t *testing.T) {
		_, err := client.New(pxURL, appToken).GetScale(ctx, "echo", "model")
		if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
			t.Errorf("GetScale without the CA: %v; want an unknown authority error", err)
		}
	})

	t.Run("Python requests with verify set to the CA scales on both ports", func(t *testing.T) {
		for _, tc := range []struct {
			base string
			n    int
			prev int
		}{{pxURL, 1, 2}, {ctlURL, 2, 1}} {
			out, code := python(t, pyScale, tc.base+whScalePath("echo", "model"), appToken, ca, itoa(tc.n))
			want := fmt.Sprintf(`"target_num_replicas":%d,"previous_target_num_replicas":%d`, tc.n, tc.prev)
			if code != 0 || !strings.HasPrefix(out, "200 ") || !strings.Contains(strings.ReplaceAll(out, " ", ""), want) {
				t.Errorf("requests.post(%s, verify=ca) to %d: exit %d, %s; want 200 with %s", tc.base, tc.n, code, out, want)
			}
		}
	})

	t.Run("Python requests without the CA gets an SSLError", func(t *testing.T) {
		out, code := python(t, pyScale, pxURL+whScalePath("echo", "model"), appToken, "default", "1")
		if code != 3 || !strings.Contains(out, "CERTIFICATE_VERIFY_FAILED") {
			t.Errorf("requests.post without verify=ca: exit %d, %s; want an SSLError for the certificate", code, out)
		}
	})

	t.Run("plain HTTP to a TLS port gets Go's 400 that names the mistake", func(t *testing.T) {
		for _, port := range []int{proxyPort, s.controlPort} {
			code, body := plainGet(t, port, "/-/healthz")
			if code != http.StatusBadRequest || !strings.Contains(body, "Client sent an HTTP request to an HTTPS server") {
				t.Errorf("plain GET on TLS port %d: %d %q; want 400 saying it is an HTTPS server", port, code, body)
			}
		}
	})

	t.Run("TLS 1.1 is refused and TLS 1.2 accepted", func(t *testing.T) {
		pem, _ := os.ReadFile(ca)
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		for _, port := range []int{proxyPort, s.controlPort} {
			addr := fmt.Sprintf("127.0.0.1:%d", port)
			if v, err := tlsCheckHandshake(addr, pool, tls.VersionTLS10, tls.VersionTLS11); err == nil {
				t.Errorf("port %d accepted TLS version %x", port, v)
			} else if !strings.Contains(err.Error(), "protocol version") {
				t.Errorf("port %d refused TLS 1.1 with %v; want a protocol version alert", port, err)
			}
			if v, err := tlsCheckHandshake(addr, pool, tls.VersionTLS12, tls.VersionTLS12); err != nil || v != tls.VersionTLS12 {
				t.Errorf("port %d with TLS 1.2: version %x, %v; want TLS 1.2", port, v, err)
			}
		}
	})

	t.Run("replicas reach the handle endpoint over plain loopback HTTP", func(t *testing.T) {
		code, body, err := get(hc, pxURL+"/call?deployment=model&path=/through-handle")
		if err != nil || code != http.StatusOK || !strings.Contains(string(body), `"/through-handle"`) {
			t.Fatalf("GET /call through the handle: %d %s %v", code, body, err)
		}
		d, err := admin.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rep := d.Applications["echo"].Deployments["model"].Replicas
		if len(rep) == 0 || rep[0].PID == nil {
			t.Fatalf("no replica with a pid in the status: %+v", rep)
		}
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", *rep[0].PID))
		if err != nil {
			t.Fatal(err)
		}
		var handle string
		for _, kv := range bytes.Split(env, []byte{0}) {
			if v, ok := bytes.CutPrefix(kv, []byte("SHOAL_HANDLE_URL=")); ok {
				handle = string(v)
			}
		}
		u, err := url.Parse(handle)
		if err != nil || u.Scheme != "http" || u.Hostname() != "127.0.0.1" || u.Port() == strconv.Itoa(proxyPort) {
			t.Errorf("SHOAL_HANDLE_URL %q; want plain http on a loopback port of its own", handle)
		}
	})

	t.Run("the dashboard's session cookie is Secure", func(t *testing.T) {
		noRedirect := *hc
		noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, err := noRedirect.PostForm(ctlURL+"/login", url.Values{"token": {s.token()}})
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		cookies := resp.Cookies()
		if len(cookies) == 0 || !cookies[0].Secure || !cookies[0].HttpOnly {
			t.Errorf("login answered %s with cookies %v; want a Secure HttpOnly session cookie", resp.Status, resp.Header["Set-Cookie"])
		}
	})

	t.Run("the CLI works with --cacert and says to pass it without", func(t *testing.T) {
		out, errOut, code := s.cli("--address", ctlURL, "--cacert", ca, "status")
		if code != 0 || !strings.Contains(out, "echo") {
			t.Errorf("shoal --cacert status: exit %d\n%s%s", code, out, errOut)
		}
		out, errOut, code = s.cli("--address", ctlURL, "--cacert", ca, "scale", "echo", "model", "1")
		if code != 0 {
			t.Errorf("shoal --cacert scale: exit %d\n%s%s", code, out, errOut)
		}
		_, errOut, code = s.cli("--address", ctlURL, "status")
		if code != 1 || len(lines(errOut)) != 1 || !strings.Contains(errOut, "--cacert "+ca) {
			t.Errorf("shoal status without --cacert: exit %d, stderr %q; want 1 and one line naming --cacert %s", code, errOut, ca)
		}
		_, errOut, code = s.cli("--address", fmt.Sprintf("http://127.0.0.1:%d", s.controlPort), "status")
		if code != 1 || len(lines(errOut)) != 1 || !strings.Contains(errOut, "serves HTTPS") {
			t.Errorf("shoal status with http:// to the TLS port: exit %d, stderr %q; want one line saying it serves HTTPS", code, errOut)
		}
	})

	t.Run("a restart reuses the CA and the certificate", func(t *testing.T) {
		before, err := os.ReadFile(ca)
		if err != nil {
			t.Fatal(err)
		}
		s.stop()
		again := launchArgs(t, s.stateDir, "", proxyPort, "--self-signed")
		again.waitHTTPS(fmt.Sprintf("https://127.0.0.1:%d/-/healthz", again.controlPort), ca)
		after, _ := os.ReadFile(ca)
		if !bytes.Equal(before, after) {
			t.Error("the CA file changed on restart: clients that trust it would fail")
		}
		if !strings.Contains(again.out.String(), "self-signed certificate (reused)") {
			t.Errorf("the restart does not say it reused the certificate:\n%s", again.out)
		}
		again.stop()
	})
}

func TestAProxyCertificateOfItsOwnIsKeptAndSelfSignedServesTheControlPort(t *testing.T) {
	own, err := tlsutil.EnsureSelfSigned(t.TempDir(), nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	proxyPort := freePort(t)
	cfg := fmt.Sprintf("http_options: {host: 127.0.0.1, port: %d, ssl_certfile: %q, ssl_keyfile: %q}\napplications: []\n",
		proxyPort, own.CertFile, own.KeyFile)
	s := launchArgs(t, "", writeFile(t, t.TempDir(), "serve.yaml", cfg), proxyPort, "--self-signed")
	stateCA := filepath.Join(s.stateDir, "tls", "ca.crt")
	ctlURL := fmt.Sprintf("https://127.0.0.1:%d", s.controlPort)
	pxURL := fmt.Sprintf("https://127.0.0.1:%d", proxyPort)
	s.waitHTTPS(ctlURL+"/-/healthz", stateCA)

	if code, _, err := get(httpsClient(t, own.CAFile), pxURL+"/-/healthz"); err != nil || code != http.StatusOK {
		t.Errorf("the proxy with the config's own CA: %d %v; want 200", code, err)
	}
	if _, _, err := get(httpsClient(t, stateCA), pxURL+"/-/healthz"); err == nil {
		t.Error("the proxy serves the self-signed certificate although the config names its own")
	}
	if out := s.out.String(); !strings.Contains(out, "on the control, valid until") {
		t.Errorf("shoal's output does not say the self-signed certificate is on the control port only:\n%s", out)
	}
	s.stop()
}

func TestANonLoopbackListenerWithoutTLSStartsWithAWarning(t *testing.T) {
	proxyPort := freePort(t)
	cfg := writeFile(t, t.TempDir(), "serve.yaml", fmt.Sprintf("http_options: {host: 0.0.0.0, port: %d}\napplications: []\n", proxyPort))
	s := launchArgs(t, "", cfg, proxyPort, "--dashboard-host", "0.0.0.0")
	s.waitHealthy() // over loopback, which 0.0.0.0 includes
	out := s.out.String()
	for _, want := range []string{
		"the proxy listens on 0.0.0.0 without TLS: tokens would travel in clear text",
		"the control API listens on 0.0.0.0 without TLS: tokens would travel in clear text",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("shoal's output does not warn %q:\n%s", want, out)
		}
	}
	s.stop()
}
