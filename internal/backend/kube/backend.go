package kube

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"shoal/internal/backend"
)

// DefaultResync is how often every deployment is checked against the API server with
// no event to prompt it.
const DefaultResync = 30 * time.Second

// Options configure a Backend.
type Options struct {
	Client    kubernetes.Interface
	Namespace string
	Logger    *slog.Logger // default slog.Default()
	Resync    time.Duration
	// Follower makes the Backend start as a follower: it observes but writes nothing until
	// SetLeading(true). The default is to lead, for a single shoal without election.
	Follower bool
}

// Backend runs shoal deployments as Kubernetes Deployments in one namespace.
//
// Apply and Remove record the desired state and return; one worker writes it to the API
// server. Every replica count goes through the scale subresource: a new Deployment is
// created with 0 replicas and then scaled, and a count changed by anyone else is put back
// (and reported in the deployment's Status.Message). Observe reads informer caches of
// Deployments, pods and EndpointSlices. Kubernetes does the rest: pods, rolling updates,
// restarts.
type Backend struct {
	client  kubernetes.Interface
	ns      string
	log     *slog.Logger
	changes chan struct{}
	queue   workqueue.TypedRateLimitingInterface[backend.Key]

	deployments cache.SharedIndexInformer
	pods        cache.SharedIndexInformer
	slices      cache.SharedIndexInformer
	synced      []cache.InformerSynced

	cancel context.CancelFunc
	done   chan struct{} // closed when the worker and informers have stopped

	mu      sync.Mutex // guards desired and leading
	desired map[backend.Key]*entry
	leading bool
}

// entry is the desired state of one deployment and what shoal knows of writing it.
type entry struct {
	spec     backend.Spec
	removing bool
	// written is the last replica count this Backend wrote (-1 before the first), so an
	// update event that moves the count elsewhere is known to come from outside.
	written int32
	// outside reports the last outside change of the count; apiErr the last failed write.
	outside string
	apiErr  string
}

var _ backend.Backend = (*Backend)(nil)

const (
	byKey     = "shoal-key"
	byService = "service-name"
)

// New returns a Backend and starts its informers and worker; Shutdown stops them.
// WaitForSync waits until the caches are filled.
func New(opts Options) *Backend {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	resync := opts.Resync
	if resync <= 0 {
		resync = DefaultResync
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Backend{
		client:  opts.Client,
		ns:      opts.Namespace,
		log:     log.With("backend", "kubernetes", "namespace", opts.Namespace),
		changes: make(chan struct{}, 1),
		queue: workqueue.NewTypedRateLimitingQueue(
			workqueue.DefaultTypedControllerRateLimiter[backend.Key]()),
		cancel:  cancel,
		done:    make(chan struct{}),
		desired: map[backend.Key]*entry{},
		leading: !opts.Follower,
	}

	managed := informers.NewSharedInformerFactoryWithOptions(opts.Client, resync,
		informers.WithNamespace(opts.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = labels.Set{LabelManagedBy: ManagedBy}.String()
		}))
	// EndpointSlices are made by the endpoints controller, with labels of its own: they
	// are watched whole and matched to shoal's Services by name.
	all := informers.NewSharedInformerFactoryWithOptions(opts.Client, resync, informers.WithNamespace(opts.Namespace))

	b.deployments = managed.Apps().V1().Deployments().Informer()
	b.pods = managed.Core().V1().Pods().Informer()
	b.slices = all.Discovery().V1().EndpointSlices().Informer()
	must(b.pods.AddIndexers(cache.Indexers{byKey: func(obj any) ([]string, error) {
		p, ok := obj.(*corev1.Pod)
		if !ok {
			return nil, nil
		}
		return []string{p.Labels[LabelKey]}, nil
	}}))
	must(b.slices.AddIndexers(cache.Indexers{byService: func(obj any) ([]string, error) {
		s, ok := obj.(*discoveryv1.EndpointSlice)
		if !ok {
			return nil, nil
		}
		return []string{s.Labels[discoveryv1.LabelServiceName]}, nil
	}}))

	_, err := b.deployments.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { b.onDeployment(nil, obj) },
		UpdateFunc: func(old, obj any) { b.onDeployment(old, obj) },
		DeleteFunc: func(obj any) { b.onDeployment(nil, obj) },
	})
	must(err)
	notify := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { b.notify() },
		UpdateFunc: func(any, any) { b.notify() },
		DeleteFunc: func(any) { b.notify() },
	}
	_, err = b.pods.AddEventHandler(notify)
	must(err)
	_, err = b.slices.AddEventHandler(notify)
	must(err)
	b.synced = []cache.InformerSynced{b.deployments.HasSynced, b.pods.HasSynced, b.slices.HasSynced}

	managed.Start(ctx.Done())
	all.Start(ctx.Done())
	go func() {
		defer close(b.done)
		go func() { <-ctx.Done(); b.queue.ShutDown() }()
		for b.work(ctx) {
		}
		managed.Shutdown()
		all.Shutdown()
	}()
	return b
}

// must panics on an error that only a programming mistake can cause: adding an indexer
// or a handler fails only once the informer has started, and New adds them before.
func must(err error) {
	if err != nil {
		panic(err)
	}
}

// WaitForSync blocks until the informer caches are filled, so Observe reflects the
// cluster.
func (b *Backend) WaitForSync(ctx context.Context) error {
	if !cache.WaitForCacheSync(ctx.Done(), b.synced...) {
		return fmt.Errorf("kubernetes backend: caches not synced: %w", context.Cause(ctx))
	}
	return nil
}

// SetLeading switches writing on or off. A follower observes and records Apply and
// Remove but writes nothing to the API server; on becoming the leader it writes every
// recorded deployment.
func (b *Backend) SetLeading(leading bool) {
	b.mu.Lock()
	b.leading = leading
	keys := slices.Collect(maps.Keys(b.desired))
	b.mu.Unlock()
	if leading {
		for _, k := range keys {
			b.queue.Add(k)
		}
	}
}

func (b *Backend) notify() {
	select {
	case b.changes <- struct{}{}:
	default:
	}
}

// Changes implements backend.Backend.
func (b *Backend) Changes() <-chan struct{} { return b.changes }

// Apply implements backend.Backend. It checks the spec, records it and returns; the
// writes happen in the background and their errors show in Observe.
func (b *Backend) Apply(spec backend.Spec) error {
	if err := validate(spec); err != nil {
		return err
	}
	spec = cloneSpec(spec)
	b.mu.Lock()
	e := b.desired[spec.Key]
	if e != nil && !e.removing && sameSpec(e.spec, spec) {
		b.mu.Unlock()
		return nil
	}
	if e == nil {
		e = &entry{written: -1}
		b.desired[spec.Key] = e
	}
	if e.spec.Replicas != spec.Replicas || e.spec.Version != spec.Version {
		e.outside = "" // a new target: an old report of an outside change is moot
	}
	e.spec, e.removing = spec, false
	b.mu.Unlock()
	b.queue.Add(spec.Key)
	b.notify()
	return nil
}

func cloneSpec(s backend.Spec) backend.Spec {
	s.Command = slices.Clone(s.Command)
	s.Env = maps.Clone(s.Env)
	s.NodeSelector = maps.Clone(s.NodeSelector)
	s.Resources.Requests = maps.Clone(s.Resources.Requests)
	s.Resources.Limits = maps.Clone(s.Resources.Limits)
	return s
}

// sameSpec reports whether applying b after a would write nothing new.
func sameSpec(a, b backend.Spec) bool {
	return a.Replicas == b.Replicas && a.Version == b.Version &&
		specHash(deploymentSpec(a)) == specHash(deploymentSpec(b))
}

// Remove implements backend.Backend: it deletes the Deployment and its Service. A
// deployment that shoal did not apply in this process but that exists in the cluster
// (left from before a restart) can be removed too.
func (b *Backend) Remove(key backend.Key) error {
	b.mu.Lock()
	e := b.desired[key]
	if e == nil {
		if _, found := b.cachedDeployment(key); !found {
			b.mu.Unlock()
			return fmt.Errorf("%w: %s", backend.ErrUnknownDeployment, key)
		}
		e = &entry{spec: backend.Spec{Key: key}, written: -1}
		b.desired[key] = e
	}
	e.removing = true
	b.mu.Unlock()
	b.queue.Add(key)
	b.notify()
	return nil
}

// Shutdown stops the informers and the worker. Replicas are Kubernetes's and keep
// running: a shoal that stops or moves to another node leaves its deployments serving.
func (b *Backend) Shutdown(ctx context.Context) error {
	b.cancel()
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// onDeployment wakes the worker for a Deployment event and reports a replica count that
// changed to neither what shoal wants nor what it wrote last: someone else scaled it.
func (b *Backend) onDeployment(oldObj, obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	d, ok := obj.(*appsv1.Deployment)
	if !ok {
		return
	}
	key, ok := keyOf(d.Labels, d.Annotations)
	if !ok {
		return
	}
	if old, ok := oldObj.(*appsv1.Deployment); ok && replicas(old) != replicas(d) {
		b.mu.Lock()
		e := b.desired[key]
		if e != nil && !e.removing && replicas(d) != int32(e.spec.Replicas) && replicas(d) != e.written {
			e.outside = fmt.Sprintf("replica count changed outside shoal from %d to %d; restoring %d",
				replicas(old), replicas(d), e.spec.Replicas)
			if b.leading {
				b.log.Warn("replica count changed outside shoal; restoring",
					"deployment", key.String(), "from", replicas(old), "to", replicas(d), "target", e.spec.Replicas)
			}
		}
		b.mu.Unlock()
	}
	b.queue.Add(key)
	b.notify()
}

func replicas(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1 // the API's default
	}
	return *d.Spec.Replicas
}

// work handles one key from the queue; false once the queue is shut down.
func (b *Backend) work(ctx context.Context) bool {
	key, shutdown := b.queue.Get()
	if shutdown {
		return false
	}
	defer b.queue.Done(key)
	err := b.reconcile(ctx, key)
	// A conflict only means the object changed since it was read: the retry reads it
	// again. It is neither logged nor shown.
	conflict := apierrors.IsConflict(err)
	b.mu.Lock()
	if e := b.desired[key]; e != nil && !conflict {
		e.apiErr = ""
		if err != nil {
			e.apiErr = err.Error()
		}
	}
	b.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil && !conflict {
			b.log.Warn("kubernetes write failed; retrying", "deployment", key.String(), "err", err)
		}
		b.queue.AddRateLimited(key)
	} else {
		b.queue.Forget(key)
	}
	b.notify()
	return true
}

// reconcile writes one deployment's desired state: create or update the Deployment and
// its Service, then the count through the scale subresource; or delete both.
func (b *Backend) reconcile(ctx context.Context, key backend.Key) error {
	b.mu.Lock()
	e := b.desired[key]
	leading := b.leading
	var spec backend.Spec
	var removing bool
	if e != nil {
		spec, removing = e.spec, e.removing
	}
	b.mu.Unlock()
	if e == nil || !leading {
		return nil
	}
	name := ObjectName(key)
	deps := b.client.AppsV1().Deployments(b.ns)

	if removing {
		// Background propagation: the ReplicaSets and pods go with the Deployment.
		policy := metav1.DeletePropagationBackground
		opts := metav1.DeleteOptions{PropagationPolicy: &policy}
		if err := deps.Delete(ctx, name, opts); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete deployment %s: %w", name, err)
		}
		if err := b.client.CoreV1().Services(b.ns).Delete(ctx, name, opts); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete service %s: %w", name, err)
		}
		return nil
	}

	d, err := deps.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		d, err = deps.Create(ctx, newDeployment(b.ns, spec), metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("create deployment %s: %w", name, err)
		}
		b.log.Info("created deployment", "deployment", key.String(), "name", name, "version", spec.Version)
	case err != nil:
		return fmt.Errorf("get deployment %s: %w", name, err)
	default:
		if k, ok := keyOf(d.Labels, d.Annotations); !ok || k != key {
			return fmt.Errorf("deployment %s exists and is not shoal's deployment %s", name, key)
		}
		ds := deploymentSpec(spec)
		if h := specHash(ds); d.Annotations[AnnotSpecHash] != h || versionOf(d.Annotations) != spec.Version {
			// Everything but the count: the scale subresource alone writes that.
			ds.Replicas = d.Spec.Replicas
			d.Spec = ds
			if d.Labels == nil {
				d.Labels = map[string]string{}
			}
			maps.Copy(d.Labels, objectLabels(key))
			d.Annotations[AnnotVersion] = spec.Version
			d.Annotations[AnnotSpecHash] = h
			if d, err = deps.Update(ctx, d, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("update deployment %s: %w", name, err)
			}
			b.log.Info("updated deployment", "deployment", key.String(), "version", spec.Version)
		}
	}

	svcs := b.client.CoreV1().Services(b.ns)
	if _, err := svcs.Get(ctx, name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		if _, err := svcs.Create(ctx, newService(b.ns, key, d), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create service %s: %w", name, err)
		}
	} else if err != nil {
		return fmt.Errorf("get service %s: %w", name, err)
	}

	return b.scale(ctx, key, name, int32(spec.Replicas))
}

// scale writes the count through the scale subresource, with the resourceVersion it
// read: a concurrent change fails the write, and the retry reads again.
func (b *Backend) scale(ctx context.Context, key backend.Key, name string, want int32) error {
	deps := b.client.AppsV1().Deployments(b.ns)
	sc, err := deps.GetScale(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get scale of %s: %w", name, err)
	}
	if sc.Spec.Replicas != want {
		// Recorded before the write, so the update event it causes is known as ours.
		b.setWritten(key, want)
		sc.Spec.Replicas = want
		if _, err := deps.UpdateScale(ctx, name, sc, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("scale %s to %d: %w", name, want, err)
		}
		b.log.Info("scaled deployment", "deployment", key.String(), "replicas", want)
	} else {
		b.setWritten(key, want)
	}
	return nil
}

func (b *Backend) setWritten(key backend.Key, n int32) {
	b.mu.Lock()
	if e := b.desired[key]; e != nil {
		e.written = n
	}
	b.mu.Unlock()
}

// cachedDeployment finds a key's Deployment in the informer cache. Callers may hold mu.
func (b *Backend) cachedDeployment(key backend.Key) (*appsv1.Deployment, bool) {
	obj, found, err := b.deployments.GetStore().GetByKey(b.ns + "/" + ObjectName(key))
	if err != nil || !found {
		return nil, false
	}
	d, ok := obj.(*appsv1.Deployment)
	if !ok {
		return nil, false
	}
	if k, ok := keyOf(d.Labels, d.Annotations); !ok || k != key {
		return nil, false
	}
	return d, true
}
