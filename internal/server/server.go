package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"

	"shoal/internal/auth"
	"shoal/internal/autoscale"
	"shoal/internal/backend/process"
	"shoal/internal/config"
	"shoal/internal/controller"
	"shoal/internal/store"
	"shoal/internal/tlsutil"
)

// Options configures Run. StateDir is required; the rest has defaults.
type Options struct {
	// ConfigPath, when set, is loaded before anything starts and deployed once shoal
	// runs. Empty: the config deployed last in StateDir comes back.
	ConfigPath string
	// StateDir holds the store, the admin token and the replica logs.
	StateDir string
	// DashboardHost and DashboardPort are the control API's listener (default
	// 127.0.0.1:8265; port 0 picks a free port).
	DashboardHost string
	DashboardPort int
	// TLSCertFile and TLSKeyFile serve the control API over TLS when both are set.
	TLSCertFile, TLSKeyFile string
	// SelfSigned serves each listener that has no certificate of its own (neither
	// http_options.ssl_* nor TLSCertFile) with a self-signed one for 127.0.0.1,
	// localhost and ::1, from a CA made in <StateDir>/tls and reused while valid.
	SelfSigned bool
	// Logger receives the operational log (default: discarded).
	Logger *slog.Logger
	// Stdout receives the few lines a person (or a test) reads on start: the addresses,
	// the state directory and where the admin token is. Never the token itself.
	Stdout io.Writer
	// Getenv reads the environment (default os.Getenv); only to say where the admin
	// token came from.
	Getenv func(string) string
	// BackendOptions choose where replicas run (kube.go): local processes by default.
	BackendOptions
}

// Bounds of the graceful stop.
const (
	// replicaStopSlack is added to the longest graceful_shutdown_timeout_s: the backend
	// kills a replica when that runs out, so the slack only covers reaping.
	replicaStopSlack = 5 * time.Second
	// logMaxBytes caps each replica's log file.
	logMaxBytes = 10 << 20
)

// Run starts shoal and blocks until ctx is cancelled or the control API is asked to shut
// down; then it stops accepting, drains requests in flight, stops every replica
// gracefully, closes the store and returns nil. Errors found before serving (a bad
// config, a locked state directory, a port in use) are returned at once; a config's
// errors come back as config.Errors.
func Run(ctx context.Context, o Options) error {
	o = o.withDefaults()
	if o.Backend != config.BackendKubernetes && os.Getenv("GOMAXPROCS") == "" {
		// The replicas run on this host and share its cores with shoal: shoal takes
		// half of them (one of two), as an nginx in front would take its own workers.
		// Fewer Ps also spare the proxy's loop the runtime's thread hand-offs, which
		// cost it more than the cores add (bench/proxy: ~15% CPU per request on 2
		// cores). GOMAXPROCS set in the environment is kept; a CPU limit (which the
		// default already follows) is not exceeded; a second Run does not halve again.
		runtime.GOMAXPROCS(min(runtime.GOMAXPROCS(0), (runtime.NumCPU()+1)/2))
	}
	if o.Backend == config.BackendKubernetes && o.SelfSigned {
		// Its certificate covers loopback names only, which clients of pods never use.
		return errors.New("--self-signed is for local use and does not apply to --backend kubernetes; give the proxy http_options.ssl_certfile/ssl_keyfile and the control API --tls-cert/--tls-key (e.g. from a cert-manager Secret)")
	}
	if o.Backend == config.BackendKubernetes {
		return runKube(ctx, o)
	}
	log := o.Logger

	// Check the config first: a typo should cost nothing, not even the lock.
	var cfg *config.Config
	if o.ConfigPath != "" {
		c, warnings, err := config.Load(o.ConfigPath)
		if err != nil {
			return err
		}
		for _, w := range warnings {
			log.Warn("config: " + w.String())
		}
		cfg = c
	}

	st, err := store.Open(o.StateDir)
	if err != nil {
		return err
	}
	st.SetLogger(log.With("component", "store"))
	closeStore := true
	defer func() {
		if closeStore {
			st.Close()
		}
	}()

	adminToken, err := auth.AdminToken(o.StateDir)
	if err != nil {
		return fmt.Errorf("admin token: %w", err)
	}

	httpOpts, err := proxyOptions(cfg, st, log)
	if err != nil {
		return err
	}
	scalerCfgs, err := loadScalers(cfg, st)
	if err != nil {
		return err
	}

	// With TLS on the proxy, or the proxy bound to one address that is not loopback,
	// replicas and the scalers inside shoal reach it through a plain loopback listener
	// of its own (see listenHandle), not the proxy's port.
	lns, err := openListeners(o, httpOpts, true /* loopback handle */)
	if err != nil {
		return err
	}
	defer lns.close()

	logDir := filepath.Join(o.StateDir, "logs")
	f, err := newFrontend(frontendOptions{
		AdminToken:  adminToken,
		HTTPOptions: httpOpts,
		Listeners:   lns,
		LogDir:      logDir,
		Logger:      log,
	})
	if err != nil {
		return err
	}
	be := process.New(process.Options{
		LogDir:      logDir,
		LogMaxBytes: logMaxBytes,
		Load:        f.proxy,
		Logger:      log.With("component", "backend"),
	})
	handleBase := lns.local()
	ctrl, err := controller.New(controller.Options{
		Store:     st,
		Backend:   be,
		Logger:    log.With("component", "controller"),
		HandleURL: func(app string) string { return handleBase + "/-/handle/" + app },
		Now:       time.Now,
	})
	if err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	if err := f.watch(ctrl); err != nil {
		return err
	}
	// The built-in autoscaler samples the proxy's load of every autoscaled deployment
	// and sets targets through the controller, like any other intent.
	scaler := autoscale.NewRunner(autoscale.RunnerOptions{
		Load:    f.load,
		Targets: ctrl,
		Logger:  log.With("component", "autoscaler"),
	})

	runCtx, cancelRun := context.WithCancel(context.Background())
	defer cancelRun()
	var workers sync.WaitGroup
	goLogged(&workers, log, "controller", func() error { return ctrl.Run(runCtx) })
	workers.Go(func() { _ = scaler.Run(runCtx) })
	workers.Go(func() { warnOnHTTPOptionsChange(runCtx, ctrl, httpOpts, log) })
	// The autoscaler's live view, fresher than the snapshot's.
	f.start(runCtx, &workers, scaler)
	f.announce(o, "shoal: state dir "+absPath(o.StateDir))

	var runErr error
	if cfg != nil {
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		runErr = ctrl.Deploy(dctx, cfg)
		cancel()
		switch {
		case runErr != nil && ctx.Err() != nil:
			runErr = nil // a signal arrived during the deploy: stop as asked
		case runErr != nil:
			runErr = fmt.Errorf("deploy %s: %w", o.ConfigPath, runErr)
		default:
			log.Info("deployed", "config", o.ConfigPath, "applications", len(cfg.Applications))
		}
	}

	if runErr == nil {
		// After the deploy, so that their first calls find the applications.
		newConfigScalers(scalerCfgs, handleBase, f.reg, log).start(runCtx, &workers, ctrl.AppToken)
		runErr = f.wait(ctx)
	}

	// 1. Stop accepting and let requests in flight finish (replicas still run).
	f.drain()

	// 2. Stop the controller first, so that nothing asks the backend for replicas while
	// it stops them.
	wait := replicaStopBound(ctrl.Snapshot())
	cancelRun()
	workers.Wait()

	// 3. Stop every replica gracefully; the backend kills those that outlast their
	// graceful_shutdown_timeout_s.
	sctx, cancel := context.WithTimeout(context.Background(), wait)
	if err := be.Shutdown(sctx); err != nil {
		log.Warn("stopping replicas", "err", err)
	}
	cancel()

	closeStore = false
	if err := st.Close(); err != nil && runErr == nil {
		runErr = fmt.Errorf("close store: %w", err)
	}
	if runErr == nil {
		log.Info("stopped")
	}
	return runErr
}

func (o Options) withDefaults() Options {
	if o.DashboardHost == "" {
		o.DashboardHost = "127.0.0.1"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Stdout == nil {
		o.Stdout = io.Discard
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	return o
}

// proxyOptions picks the proxy's listener settings: from the config given on the
// command line, else from the config deployed last, else the defaults. They are read
// once: a later deploy that changes them takes effect at the next start.
func proxyOptions(cfg *config.Config, st store.Store, log *slog.Logger) (config.HTTPOptions, error) {
	if cfg != nil {
		return cfg.HTTPOptions, nil
	}
	state, err := st.Load()
	if err != nil {
		return config.HTTPOptions{}, fmt.Errorf("load state: %w", err)
	}
	if len(state.Config) > 0 {
		saved, _, err := config.Parse(state.Config, "stored config", "")
		if err == nil {
			return saved.HTTPOptions, nil
		}
		log.Warn("the stored config does not parse; the proxy uses the default http_options", "err", err)
	}
	return config.DefaultHTTPOptions(), nil
}

// listen binds a listener, with TLS when both files are given, and returns it with the
// URL it serves on.
func listen(what, host string, port int, certFile, keyFile, hint string) (net.Listener, string, error) {
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	var tlsConf *tls.Config
	if certFile != "" || keyFile != "" {
		c, err := tlsutil.LoadServerConfig(certFile, keyFile)
		if err != nil {
			return nil, "", fmt.Errorf("%s TLS certificate: %w", what, err)
		}
		tlsConf = c
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("%s cannot listen on %s: %w; stop what uses it, or %s", what, addr, err, hint)
	}
	scheme := "http"
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
		scheme = "https"
	}
	return ln, scheme + "://" + ln.Addr().String(), nil
}

// handleURLBase is where replicas reach the proxy's handle endpoint: loopback, unless
// the proxy is bound to one specific other address.
func handleURLBase(addr net.Addr, tls bool) string {
	host, port, _ := net.SplitHostPort(addr.String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() || ip.IsLoopback() {
		host = "127.0.0.1"
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// replicaStopBound is how long the graceful stop waits for replicas: the longest
// graceful_shutdown_timeout_s of any deployment, plus slack for reaping.
func replicaStopBound(snap *controller.Snapshot) time.Duration {
	longest := 20 * time.Second // the default graceful_shutdown_timeout_s
	if snap != nil {
		longest = 0
		for _, app := range snap.Applications {
			for _, d := range app.Deployments {
				longest = max(longest, config.Seconds(d.Config.GracefulShutdownTimeoutS))
			}
		}
	}
	return longest + replicaStopSlack
}

// warnOnHTTPOptionsChange logs once per change when a deploy changes the proxy's
// listener settings, which take effect only at the next start.
func warnOnHTTPOptionsChange(ctx context.Context, ctrl *controller.Controller, bound config.HTTPOptions, log *slog.Logger) {
	var gen uint64
	warned := bound
	for {
		snap, err := ctrl.Wait(ctx, gen)
		if err != nil {
			return
		}
		gen = snap.Generation
		if snap.Config == nil {
			continue
		}
		h := snap.HTTPOptions
		if listenerOf(h) != listenerOf(bound) && listenerOf(h) != listenerOf(warned) {
			log.Warn("http_options changed: the proxy keeps its listener until shoal restarts",
				"listening", net.JoinHostPort(bound.Host, strconv.Itoa(bound.Port)),
				"configured", net.JoinHostPort(h.Host, strconv.Itoa(h.Port)))
			warned = h
		}
	}
}

type listener struct {
	host      string
	port      int
	cert, key string
}

func listenerOf(h config.HTTPOptions) listener {
	return listener{h.Host, h.Port, h.SSLCertfile, h.SSLKeyfile}
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// goLogged runs f on workers and logs its error, unless it is ctx's cancellation: the
// long-running parts (controller, proxy, metrics, dashboard history) return only when
// shoal stops.
func goLogged(workers *sync.WaitGroup, log *slog.Logger, what string, f func() error) {
	workers.Go(func() {
		if err := f(); err != nil && !errors.Is(err, context.Canceled) {
			log.Error(what+" stopped", "err", err)
		}
	})
}
