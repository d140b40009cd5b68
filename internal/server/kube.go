package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"shoal/internal/auth"
	"shoal/internal/autoscale"
	"shoal/internal/backend"
	"shoal/internal/backend/kube"
	"shoal/internal/config"
	"shoal/internal/controller"
	"shoal/internal/leader"
	"shoal/internal/store"
	"shoal/internal/tlsutil"
)

// Names of what shoal keeps in its namespace on the Kubernetes backend; the manifests in
// deploy/kubernetes make the Secret and the Lease, and grant access to them by name.
const (
	kubeStoreName = "shoal"        // ConfigMap shoal, Secret shoal-tokens, ConfigMaps shoal-audit-*
	kubeLeaseName = "shoal-leader" // the Lease of the leader election
	// kubeStartName is the ConfigMap that records which start config was deployed last
	// (the sha256 of its JSON, under kubeStartKey).
	kubeStartName = "shoal-start-config"
	kubeStartKey  = "sha256"
	// kubeProxyService is the Service in front of every shoal replica's proxy
	// (deploy/kubernetes/shoal.yaml): where replicas reach the handle endpoint.
	kubeProxyService = "shoal-proxy"
	// kubeControlService is the Service in front of every shoal replica's control API:
	// the name a follower checks the leader's certificate for when it forwards a write
	// over HTTPS to a pod IP (see forwarder).
	kubeControlService = "shoal-control"
	// kubeFollowPoll is how often a follower asks the API server whether the leader
	// changed the state, and rebuilds its view when it did.
	kubeFollowPoll = time.Second
	// kubeRetry spaces the attempts to build a controller (a read of the state) that
	// failed.
	kubeRetry = 2 * time.Second
)

// BackendOptions choose the backend of Run and configure the Kubernetes one.
type BackendOptions struct {
	// Backend is config.BackendProcess (the default, "") or config.BackendKubernetes.
	Backend string
	// Namespace holds shoal's state and deployments; default the kubeconfig's current
	// namespace, or the pod's own in a cluster.
	Namespace string
	// Kubeconfig is a kubeconfig file; default the in-cluster config in a pod, else
	// $KUBECONFIG or ~/.kube/config (kube.Config).
	Kubeconfig string
	// ProxyURL is where replicas reach shoal's proxy, the base of SHOAL_HANDLE_URL;
	// default http://shoal-proxy.<namespace>.svc:<http_options.port>, the Service of
	// deploy/kubernetes/shoal.yaml.
	ProxyURL string
	// Identity names this replica in the leader election; default leader.Identity()
	// ($POD_NAME, else host and process id).
	Identity string
	// AdvertiseURL is where the other shoal replicas reach this one's control API
	// (deploy/kubernetes: http://$(POD_IP):8265). It is published in the Lease with the
	// identity, and a follower forwards the writes it receives to the leader's. Empty: a
	// follower answers writes 503, and the others answer 503 for this one's lead.
	AdvertiseURL string
	// CACertFile is trusted, besides the system's roots, for the leader's certificate
	// when a follower forwards a write to an https AdvertiseURL (--cacert).
	CACertFile string
	// The leader election's timings; default leader's (15 s, 10 s, 2 s).
	LeaseDuration, LeaseRenewDeadline, LeaseRetryPeriod time.Duration
}

// routeKlog sends klog's output to the first Kubernetes Run's logger. klog is
// process-wide and may be configured only before client-go runs (a later change races
// with its goroutines): the binary calls Run once; a test that starts several shoal
// servers in one process gets the first one's logger for all.
var routeKlog sync.Once

// runKube is Run on the Kubernetes backend. Every shoal replica serves the proxy, the
// control API and the dashboard from a controller of its own, built on the state in
// the API server and the Deployments, pods and EndpointSlices it watches. They elect a
// leader with a Lease: the leader's controller writes (state, Deployments, counts);
// a follower's refuses every change with store.ErrNotLeader and is rebuilt whenever
// the leader changes the state. A follower forwards the writes it receives to the
// leader's advertised URL (forwarder); without one, it answers them 503. Replicas are
// Kubernetes's: stopping shoal leaves them running.
func runKube(ctx context.Context, o Options) error {
	log := o.Logger
	// client-go (the leader election, informers) logs through klog.
	routeKlog.Do(func() { klog.SetSlogLogger(log.With("component", "kubernetes")) })

	var cfg *config.Config
	if o.ConfigPath != "" {
		c, warnings, err := config.LoadFor(o.ConfigPath, config.BackendKubernetes)
		if err != nil {
			return err
		}
		for _, w := range warnings {
			log.Warn("config: " + w.String())
		}
		cfg = c
	}

	client, ns, err := kube.NewClient(o.Kubeconfig)
	if err != nil {
		return err
	}
	if o.Namespace != "" {
		ns = o.Namespace
	}
	identity := o.Identity
	if identity == "" {
		identity = leader.Identity()
	}
	log = log.With("namespace", ns, "identity", identity)
	var currentLeader atomic.Pointer[string]

	adminToken, err := auth.AdminToken(o.StateDir)
	if err != nil {
		return fmt.Errorf("admin token: %w", err)
	}
	if o.Getenv("SHOAL_AUTH_TOKEN") == "" {
		log.Warn("the admin token comes from the state directory: several shoal replicas need one SHOAL_AUTH_TOKEN")
	}
	advertise, err := checkAdvertiseURL(o.AdvertiseURL, o.TLSCertFile != "")
	if err != nil {
		return err
	}
	if advertise == "" {
		log.Warn("no --advertise-url (SHOAL_ADVERTISE_URL): while this replica follows, writes sent to it are answered 503, and while it leads, the others cannot forward writes to it; deploy/kubernetes/shoal.yaml sets it from the pod's IP")
	}
	// The holder identity in the Lease carries the URL, so followers learn where the
	// leader is from the election itself.
	holder := leader.Holder(identity, advertise)
	fw := &forwarder{
		self: holder, secret: []byte(adminToken), adminToken: adminToken,
		serverName: kubeControlService + "." + ns + ".svc",
		log:        log.With("component", "forward"),
	}
	if fw.tlsConfig, err = tlsutil.ClientConfig(o.CACertFile); err != nil {
		return fmt.Errorf("--cacert: %w", err)
	}
	// The leader's autoscaler counts the load on every shoal replica's proxy: its own
	// (set once the proxy exists) and the followers' reports (see loadshare.go).
	shared := newSharedLoad(nil, holder, []byte(adminToken), log.With("component", "load"))

	// Every replica starts as a follower; the election makes one the leader.
	st := store.NewKube(client, ns, kubeStoreName)
	st.SetLeading(false)
	defer st.Close()
	initial, err := st.Load()
	if err != nil {
		return fmt.Errorf("read the state from the API server (namespace %s): %w", ns, err)
	}
	httpOpts, err := proxyOptions(cfg, st, log)
	if err != nil {
		return err
	}
	// Read by every replica, so that a bad file stops each one at start, not the one
	// that happens to lead later.
	scalerCfgs, err := loadScalers(cfg, st)
	if err != nil {
		return err
	}
	proxyURL := o.ProxyURL
	if proxyURL == "" {
		scheme := "http"
		if httpOpts.SSLCertfile != "" {
			scheme = "https"
		}
		proxyURL = scheme + "://" + kubeProxyService + "." + ns + ".svc:" + strconv.Itoa(httpOpts.Port)
	}
	proxyURL = strings.TrimSuffix(proxyURL, "/")

	// --self-signed is refused on this backend (see Run), so these are the files given.
	// Replicas reach the proxy through its Service; the scalers inside shoal are the
	// only callers of a plain loopback listener, when the proxy serves TLS.
	lns, err := openListeners(o, httpOpts, !scalerCfgs.empty())
	if err != nil {
		return err
	}
	defer lns.close()

	f, err := newFrontend(frontendOptions{
		AdminToken:    adminToken,
		HTTPOptions:   httpOpts,
		Listeners:     lns,
		ConfigBackend: config.BackendKubernetes,
		Leader: func() string {
			if l := currentLeader.Load(); l != nil {
				return *l
			}
			return ""
		},
		WrapProxy:   handleFromPods,
		WrapAPI:     fw.wrap,
		WrapControl: shared.wrap,
		Logger:      log,
	})
	if err != nil {
		return err
	}
	sw := newSwitch(httpOpts, log.With("component", "controller"))
	if err := f.watch(sw); err != nil {
		return err
	}
	fw.session = f.dash.Session // before anything serves
	shared.local = f.load       // before anything serves
	roles := &kubeRoles{
		client: client, ns: ns, log: log,
		store: st, sw: sw, load: shared,
		controllerOptions: controller.Options{
			Store:     st,
			Logger:    log.With("component", "controller"),
			HandleURL: func(app string) string { return proxyURL + "/-/handle/" + app },
			Now:       time.Now,
		},
		cfg: cfg, cfgPath: o.ConfigPath, initialConfig: initial.Config,
		scalers: newConfigScalers(scalerCfgs, lns.local(), f.reg, log),
	}
	fw.leading = roles.leading.Load
	// Every replica's snapshots show the leader's target changes: only the leader counts
	// them, so that the sum over replicas counts each once.
	f.metrics.SetLeading(roles.leading.Load)

	runCtx, cancelRun := context.WithCancel(context.Background())
	defer cancelRun()
	var workers sync.WaitGroup
	roles.follow(runCtx)
	workers.Go(func() {
		err := leader.Run(runCtx, leader.Options{
			Client: client, Namespace: ns, Name: kubeLeaseName, Identity: holder,
			Logger:        log.With("component", "leader"),
			LeaseDuration: o.LeaseDuration, RenewDeadline: o.LeaseRenewDeadline, RetryPeriod: o.LeaseRetryPeriod,
			OnStart: func(lctx context.Context) { roles.lead(runCtx, lctx) },
			OnNewLeader: func(h string) {
				name, u := leader.ParseHolder(h)
				currentLeader.Store(&name)
				fw.setLeader(h, name, u)
				if h != holder {
					log.Info("following the leader", "leader", name, "url", u)
				}
			},
		})
		if err != nil && !errors.Is(err, context.Canceled) {
			log.Error("leader election stopped", "err", err)
		}
	})
	reporter := &loadReporter{
		self: holder, secret: []byte(adminToken),
		route: fw.route.Load, leading: roles.leading.Load,
		snap: sw.Snapshot, load: f.load, queued: f.proxy.Queued,
		log: log.With("component", "load"),
	}
	workers.Go(func() { reporter.run(runCtx, loadReportPeriod, loadReportWatch) })
	// The leader's autoscaler's live view; a follower shows the snapshot's.
	f.start(runCtx, &workers, roles)
	line := fmt.Sprintf("shoal: kubernetes namespace %s, as %s; replicas reach the proxy at %s", ns, identity, proxyURL)
	if advertise != "" {
		line += "; other shoal replicas reach this one at " + advertise
	}
	f.announce(o, line)

	runErr := f.wait(ctx)

	// 1. Stop accepting and let requests in flight finish.
	f.drain()

	// 2. Give the Lease up (a successor leads at once) and stop watching. The replicas
	// keep running: they are Kubernetes's.
	cancelRun()
	workers.Wait()
	roles.wait()
	if runErr == nil {
		log.Info("stopped")
	}
	return runErr
}

// checkAdvertiseURL checks the URL this replica advertises to the others and returns it
// without a trailing slash; controlTLS says whether the control API serves TLS.
func checkAdvertiseURL(raw string, controlTLS bool) (string, error) {
	if raw == "" {
		return "", nil
	}
	bad := func(why string) error {
		return fmt.Errorf("--advertise-url %q: %s; give the URL the other shoal replicas reach this one's control API at, such as http://$(POD_IP):8265 (deploy/kubernetes/shoal.yaml)", raw, why)
	}
	u, err := url.Parse(bracketIPv6(raw))
	switch {
	case err != nil && strings.Count(raw, ":") > 2:
		return "", bad("an IPv6 address needs a port, or brackets and a port, such as http://[fd00::1]:8265")
	case err != nil:
		return "", bad("not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return "", bad("want http:// or https://")
	case u.Hostname() == "":
		return "", bad("no host")
	case u.User != nil || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "":
		return "", bad("want a scheme, a host and a port alone")
	case controlTLS && u.Scheme != "https":
		return "", bad("the control API serves TLS (--tls-cert): use https://")
	case !controlTLS && u.Scheme != "http":
		return "", bad("the control API serves plain HTTP (no --tls-cert): use http://")
	}
	return u.Scheme + "://" + u.Host, nil
}

// bracketIPv6 puts the brackets a URL needs around a bare IPv6 address followed by a
// port: on an IPv6 cluster the downward API's $(POD_IP) makes http://$(POD_IP):8265
// into http://fd00::1:8265, which is no URL. The port is what follows the last colon.
// Anything else is returned as it is.
func bracketIPv6(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw
	}
	hostPort, tail := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		hostPort, tail = rest[:i], rest[i:]
	}
	i := strings.LastIndexByte(hostPort, ':')
	if i < 0 {
		return raw
	}
	host, port := hostPort[:i], hostPort[i+1:]
	if !strings.Contains(host, ":") || net.ParseIP(host) == nil {
		return raw // a DNS name, an IPv4 address, or brackets already
	}
	return scheme + "://" + net.JoinHostPort(host, port) + tail
}

// handleFromPods lets replicas call the proxy's handle endpoint (/-/handle/, Ray's
// DeploymentHandle) from their pods. The proxy answers it to loopback clients only,
// which on one machine are the replicas; in a cluster they come from pod addresses,
// which are private. A request to it from a private address is passed on as if from
// loopback; from a public address it meets the proxy's own refusal. It wraps the net/http
// side of the proxy's listener, which serves every path under /-/ (see proxyServer).
func handleFromPods(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/-/handle/") {
			if host, port, err := net.SplitHostPort(r.RemoteAddr); err == nil {
				if ip := net.ParseIP(host); ip != nil && (ip.IsPrivate() || ip.IsLinkLocalUnicast()) {
					r2 := *r
					r2.RemoteAddr = net.JoinHostPort("127.0.0.1", port)
					if r.Header.Get("X-Forwarded-For") == "" {
						r2.Header = r.Header.Clone()
						r2.Header.Set("X-Forwarded-For", host)
					}
					r = &r2
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// kubeRoles runs this replica's controller in its current role: a follower's, rebuilt
// as the state changes, or the leader's. Both run on a backend of their own: a
// follower's backend records specs it never writes, and a leader starting from it would
// write stale ones (a deployment deleted since, say); a new leader starts clean from the
// state in the API server.
type kubeRoles struct {
	client            kubernetes.Interface
	ns                string
	log               *slog.Logger
	store             *store.Kube
	sw                *switchable
	load              autoscale.Load
	controllerOptions controller.Options // without Backend

	// The config given to `shoal start`, and the config saved in the API server when
	// this process started: the first time this process leads, it deploys cfg when it
	// is new (see deployStartConfigLocked).
	cfg           *config.Config
	cfgPath       string
	initialConfig []byte
	// scalers are the config's scalers, which run while this replica leads: only the
	// leader's controller accepts their calls.
	scalers *configScalers

	mu        sync.Mutex // serialises role changes; guards following, deployed, closed
	following *kubeTerm  // the follower term running, or nil
	deployed  bool       // the start config was deployed (or skipped) once
	// closed is set by wait: no term starts after it (the election may call lead just
	// after it returned).
	closed bool
	terms  sync.WaitGroup // lead calls and follower terms; Add only under mu, while !closed

	scaler atomic.Pointer[autoscale.Runner] // the leader's autoscaler, nil on a follower
	// leading is set while this replica's store writes: the forwarder serves writes
	// here then, even before the election reports this replica as the new leader.
	leading atomic.Bool
}

// kubeTerm is one follower term: the loop that runs its backend and rebuilds its
// controller.
type kubeTerm struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// Detail implements api.Options.Autoscaling with the leader's autoscaler; a follower
// has none and the snapshot's view is shown.
func (r *kubeRoles) Detail(key backend.Key) *controller.AutoscalingDetail {
	if s := r.scaler.Load(); s != nil {
		return s.Detail(key)
	}
	return nil
}

// follow starts a follower term, until ctx is done or lead stops it.
func (r *kubeRoles) follow(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.followLocked(ctx)
}

func (r *kubeRoles) followLocked(ctx context.Context) {
	if r.following != nil || r.closed || ctx.Err() != nil {
		return
	}
	fctx, cancel := context.WithCancel(ctx)
	t := &kubeTerm{cancel: cancel, done: make(chan struct{})}
	r.following = t
	r.terms.Add(1)
	go func() {
		defer r.terms.Done()
		defer close(t.done)
		r.runFollower(fctx)
	}()
}

// runFollower observes through a backend that writes nothing, and rebuilds the
// controller whenever the saved state changes (its resourceVersion), so the snapshot,
// the tokens and the targets this replica serves follow the leader's within a poll.
func (r *kubeRoles) runFollower(ctx context.Context) {
	b := kube.New(kube.Options{Client: r.client, Namespace: r.ns, Logger: r.log.With("component", "backend"), Follower: true})
	defer shutdownBackend(b, r.log)
	if err := b.WaitForSync(ctx); err != nil {
		return
	}
	var (
		rev     string
		built   bool
		stopCur = func() {}
	)
	defer func() { stopCur() }()
	tick := time.NewTicker(kubeFollowPoll)
	defer tick.Stop()
	for {
		// The revision is read before the state: a change in between makes the next
		// poll rebuild again, never miss one.
		next, err := r.store.Revision()
		switch {
		case err != nil:
			r.log.Warn("reading the state's revision failed", "err", err)
		case !built || next != rev:
			opts := r.controllerOptions
			opts.Backend = b
			c, err := controller.New(opts)
			if err != nil {
				r.log.Warn("reading the state failed; following it again soon", "err", err)
				break
			}
			stopCur()
			stopCur = r.runController(ctx, c)
			rev, built = next, true
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// runController makes c the controller this replica serves from and runs its loop
// until the returned stop is called (or ctx is done).
func (r *kubeRoles) runController(ctx context.Context, c *controller.Controller) (stop func()) {
	cctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	r.sw.set(c)
	wg.Go(func() { _ = c.Run(cctx) })
	wg.Go(func() { r.sw.pump(cctx, c) })
	return func() { cancel(); wg.Wait() }
}

// lead runs while this replica leads (lctx); runCtx is the whole run's. It stops the
// follower term, builds the leader's backend and controller on the state in the API
// server, deploys the start config the first time, and runs the autoscaler and the
// config's scalers. When the leadership ends it stops writing at once, stops them, and
// follows again.
func (r *kubeRoles) lead(runCtx, lctx context.Context) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.terms.Add(1)
	defer r.terms.Done()
	if t := r.following; t != nil {
		t.cancel()
		<-t.done
		r.following = nil
	}
	// No intent may reach the follower's controller once the store writes: its view of
	// the state may be older than the one the leader's controller loads below.
	r.sw.detach()
	r.store.SetLeading(true)
	r.leading.Store(true)
	b := kube.New(kube.Options{Client: r.client, Namespace: r.ns, Logger: r.log.With("component", "backend")})
	var c *controller.Controller
	err := b.WaitForSync(lctx)
	for err == nil {
		opts := r.controllerOptions
		opts.Backend = b
		if c, err = controller.New(opts); err == nil {
			break
		}
		r.log.Warn("reading the state failed; trying again", "err", err)
		select {
		case <-lctx.Done():
			err = lctx.Err()
		case <-time.After(kubeRetry):
			err = nil
		}
	}
	var stop func()
	var scaling sync.WaitGroup
	if c != nil {
		stop = r.runController(lctx, c)
		scaler := autoscale.NewRunner(autoscale.RunnerOptions{Load: r.load, Targets: c, Logger: r.log.With("component", "autoscaler")})
		r.scaler.Store(scaler)
		scaling.Go(func() { _ = scaler.Run(lctx) })
		r.deployStartConfigLocked(lctx, c)
		// After the deploy, so that their first calls find the applications; with the
		// tokens of this controller, which the webhook checks them against.
		r.scalers.start(lctx, &scaling, c.AppToken)
		r.log.Info("leading: this replica writes the state and the Deployments")
	}
	r.mu.Unlock()

	<-lctx.Done()

	r.mu.Lock()
	defer r.mu.Unlock()
	// Stop writing before anything else: a successor may be leading already.
	b.SetLeading(false)
	r.store.SetLeading(false)
	r.leading.Store(false)
	r.scaler.Store(nil)
	scaling.Wait()
	if stop != nil {
		stop()
	}
	shutdownBackend(b, r.log)
	r.followLocked(runCtx)
}

// deployStartConfigLocked deploys the config given to `shoal start`, the first time
// this process leads, when it is new: unlike the last start config any shoal replica
// deployed (recorded in the ConfigMap kubeStartName), and the saved config unchanged
// since this process started. So a rollout with an edited file deploys it once; a
// replica that leads later with the same file leaves a config deployed through the API
// alone; and a replica older than the last deploy (one with the previous file, during
// a rollout) does not undo it.
func (r *kubeRoles) deployStartConfigLocked(ctx context.Context, c *controller.Controller) {
	if r.cfg == nil || r.deployed {
		return
	}
	hash, err := configHash(r.cfg)
	if err != nil {
		r.log.Error("encoding the start config failed", "err", err)
		r.deployed = true
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	last, err := readStartHash(cctx, r.client, r.ns)
	if err != nil {
		r.log.Error("reading which start config was deployed last failed; not deploying "+r.cfgPath, "err", err)
		return // tried again at the next term
	}
	now, err := r.store.Load()
	if err != nil {
		r.log.Error("reading the state before deploying the start config failed", "err", err)
		return
	}
	r.deployed = true
	switch {
	case last == hash:
		r.log.Info("the start config was deployed already: not deploying it again", "config", r.cfgPath)
		return
	case !bytes.Equal(now.Config, r.initialConfig):
		r.log.Info("a config was deployed since this replica started: not deploying its start config", "config", r.cfgPath)
		return
	}
	if err := c.Deploy(cctx, r.cfg); err != nil {
		r.log.Error("deploying the start config failed", "config", r.cfgPath, "err", err)
		r.deployed = false
		return
	}
	if err := writeStartHash(cctx, r.client, r.ns, hash); err != nil {
		r.log.Warn("recording the start config failed: the next leader may deploy it again", "err", err)
	}
	r.log.Info("deployed", "config", r.cfgPath, "applications", len(r.cfg.Applications))
}

// configHash identifies a config by its content: its JSON (maps in key order).
func configHash(cfg *config.Config) (string, error) {
	data, err := json.Marshal(cfg)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

// readStartHash returns the hash of the last start config deployed, "" when none was.
func readStartHash(ctx context.Context, c kubernetes.Interface, ns string) (string, error) {
	cm, err := c.CoreV1().ConfigMaps(ns).Get(ctx, kubeStartName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return cm.Data[kubeStartKey], nil
}

func writeStartHash(ctx context.Context, c kubernetes.Interface, ns, hash string) error {
	cms := c.CoreV1().ConfigMaps(ns)
	cm, err := cms.Get(ctx, kubeStartName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = cms.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: kubeStartName, Namespace: ns,
				Labels: map[string]string{"app.kubernetes.io/managed-by": "shoal"}},
			Data: map[string]string{kubeStartKey: hash},
		}, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[kubeStartKey] = hash
	_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
	return err
}

// wait returns once every term has ended; call it once the run's ctx is done.
func (r *kubeRoles) wait() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.terms.Wait()
}

func shutdownBackend(b *kube.Backend, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		log.Warn("stopping the kubernetes watches", "err", err)
	}
}
