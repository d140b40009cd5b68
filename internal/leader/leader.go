package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Defaults of Options, client-go's usual values: a dead leader is replaced within
// LeaseDuration (plus a RetryPeriod); a leader that cannot renew for RenewDeadline steps
// down before another can take over.
const (
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 2 * time.Second
)

// Options configure Run.
type Options struct {
	Client    kubernetes.Interface
	Namespace string
	Name      string // the Lease's name
	Identity  string // this replica's name, e.g. its pod name; unique among candidates
	Logger    *slog.Logger

	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration

	// OnStart runs, in a goroutine of its own, when this replica becomes the leader; its
	// ctx is cancelled when the leadership is lost (or Run's ctx is done). It should
	// return soon after.
	OnStart func(ctx context.Context)
	// OnStop runs when the leadership is lost or given up, once OnStart's ctx is
	// cancelled (OnStart may still be returning). It runs once per OnStart, and never
	// for a replica that did not lead.
	OnStop func()
	// OnNewLeader, optional, is told the identity of every new leader (this replica's
	// included), e.g. to tell clients where intents go.
	OnNewLeader func(identity string)
}

// Run campaigns for the Lease until ctx is done. A replica that loses the leadership
// campaigns again as a follower. When ctx is done, a leader gives the Lease up at once
// (so a successor need not wait for it to expire) and Run returns ctx's error.
func Run(ctx context.Context, o Options) error {
	if o.Client == nil || o.Namespace == "" || o.Name == "" || o.Identity == "" {
		return errors.New("leader election: client, namespace, name and identity are required")
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("lease", o.Namespace+"/"+o.Name, "identity", o.Identity)
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: o.Namespace, Name: o.Name},
		Client:     o.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: o.Identity},
	}
	for {
		el, err := leaderelection.NewLeaderElector(config(o, lock, log))
		if err != nil {
			return err
		}
		// Run returns when the leadership is lost or ctx is done.
		el.Run(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// term is one campaign: at most one OnStart and, after it, one OnStop.
type term struct {
	mu    sync.Mutex // guards state
	state int        // termIdle, termLeading or termOver
}

const (
	termIdle = iota
	termLeading
	termOver
)

// config makes the elector's configuration for one term. client-go starts the
// OnStartedLeading callback in a goroutine and calls OnStoppedLeading on every return
// of Run, led or not; the term keeps them in order, so OnStop follows an OnStart that
// ran, and an OnStart that would begin after the term ended never runs.
func config(o Options, lock resourcelock.Interface, log *slog.Logger) leaderelection.LeaderElectionConfig {
	t := &term{}
	return leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   orDefault(o.LeaseDuration, DefaultLeaseDuration),
		RenewDeadline:   orDefault(o.RenewDeadline, DefaultRenewDeadline),
		RetryPeriod:     orDefault(o.RetryPeriod, DefaultRetryPeriod),
		ReleaseOnCancel: true,
		Name:            o.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				t.mu.Lock()
				if t.state != termIdle {
					t.mu.Unlock()
					return
				}
				t.state = termLeading
				t.mu.Unlock()
				log.Info("became the leader")
				if o.OnStart != nil {
					o.OnStart(ctx)
				}
			},
			OnStoppedLeading: func() {
				t.mu.Lock()
				led := t.state == termLeading
				t.state = termOver
				t.mu.Unlock()
				if !led {
					return
				}
				log.Info("no longer the leader")
				if o.OnStop != nil {
					o.OnStop()
				}
			},
			OnNewLeader: func(identity string) {
				if o.OnNewLeader != nil {
					o.OnNewLeader(identity)
				}
			},
		},
	}
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Identity names this replica among the candidates: $POD_NAME (set from the downward
// API in deploy/kubernetes/shoal.yaml), else the host name and process id.
func Identity() string {
	if name := os.Getenv("POD_NAME"); name != "" {
		return name
	}
	host, err := os.Hostname()
	if err != nil {
		host = "shoal"
	}
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}

// Holder is what a candidate writes as the Lease's holder identity: its name and, when
// it has one, the URL of its control API that the other replicas reach it at, as
// "name@url". Followers learn the leader's URL from the Lease itself (OnNewLeader), so
// forwarding writes to it takes no other object and no other permission.
func Holder(name, url string) string {
	if url == "" {
		return name
	}
	return name + "@" + url
}

// ParseHolder splits a holder identity made by Holder into the name and the URL ("" for
// a holder without one, such as a shoal that advertises none). Names never hold an "@":
// pod names and host names cannot.
func ParseHolder(holder string) (name, url string) {
	name, url, _ = strings.Cut(holder, "@")
	return name, url
}
