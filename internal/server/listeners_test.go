package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"shoal/internal/config"
	"shoal/internal/proxy"
)

// nonLoopbackAddr returns one of this machine's addresses that is not loopback. It
// skips the test on a machine without one, except under CI=true.
func nonLoopbackAddr(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		// A link-local IPv6 address needs a zone to bind to; any other will do.
		if ok && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() && !n.IP.IsUnspecified() {
			return n.IP.String()
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this machine has no address but loopback, which the test needs (CI=true)")
	}
	t.Skip("this machine has no address but loopback; the test needs one")
	return ""
}

// The handle endpoint answers loopback clients only. A proxy bound to one address that
// is not loopback gets the plain loopback listener too, and SHOAL_HANDLE_URL points at
// it: there a replica's call comes from loopback and is answered.
func TestAProxyBoundToOneOtherAddressGetsALoopbackHandleListener(t *testing.T) {
	host := nonLoopbackAddr(t)
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		name       string
		host       string
		wantHandle bool
	}{
		{"a proxy on loopback needs none", "127.0.0.1", false},
		{"a proxy on every address needs none", "0.0.0.0", false},
		{"a proxy on " + host + " gets one", host, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{DashboardHost: "127.0.0.1", Logger: log}
			lns, err := openListeners(o, config.HTTPOptions{Host: tc.host, Port: 0}, true /* loopback handle */)
			if err != nil {
				t.Fatal(err)
			}
			defer lns.close()
			if got := lns.handle != nil; got != tc.wantHandle {
				t.Fatalf("a loopback handle listener: %v, want %v", got, tc.wantHandle)
			}
			u, err := url.Parse(lns.local())
			if err != nil || u.Scheme != "http" || u.Hostname() != "127.0.0.1" {
				t.Fatalf("the handle URL base is %q, want plain http on 127.0.0.1", lns.local())
			}
			if tc.wantHandle {
				_, proxyPort, _ := net.SplitHostPort(lns.proxy.Addr().String())
				if u.Port() == proxyPort {
					t.Errorf("the handle URL base %q is the proxy's port, which listens on %s only", lns.local(), tc.host)
				}
			}
		})
	}

	t.Run("a replica's call through SHOAL_HANDLE_URL is answered", func(t *testing.T) {
		snap := oneReplicaSnapshot(t)
		lns, err := openListeners(Options{DashboardHost: "127.0.0.1", Logger: log}, config.HTTPOptions{Host: host, Port: 0}, true)
		if err != nil {
			t.Fatal(err)
		}
		defer lns.close()
		if lns.handle == nil {
			t.Fatalf("no loopback handle listener for a proxy on %s", host)
		}
		px := proxy.New(proxy.Options{Logger: log})
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		defer wg.Wait()
		defer cancel()
		wg.Go(func() { _ = px.Run(ctx, staticSnapshots{snap}) })
		srv := handleServer(px, 0, log)
		wg.Go(func() { _ = srv.Serve(lns.handle) })
		defer srv.Close()

		// The URL the controller gives replicas (server.go: handleBase + /-/handle/<app>).
		handleURL := lns.local() + "/-/handle/a"
		hc := &http.Client{Timeout: 5 * time.Second}
		var last string
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			resp, err := hc.Get(handleURL + "/d/y")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && string(body) == "replica saw /y" {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, body)
			if resp.StatusCode == http.StatusForbidden {
				break // refused as not loopback: waiting will not change it
			}
		}
		t.Fatalf("GET %s/d/y answered %s, want 200 from the replica", handleURL, last)
	})
}
