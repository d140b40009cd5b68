package leader_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"shoal/internal/backend/kube/kubetest"
	"shoal/internal/leader"
)

// candidate runs one elector and records what it is told.
type candidate struct {
	id     string
	cancel context.CancelFunc
	done   chan error

	mu      sync.Mutex // guards leading, starts, stops
	leading bool
	starts  int
	stops   int
}

func (c *candidate) isLeading() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leading
}

func (c *candidate) counts() (starts, stops int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.starts, c.stops
}

func campaign(client kubernetes.Interface, ns, id string) *candidate {
	ctx, cancel := context.WithCancel(context.Background())
	c := &candidate{id: id, cancel: cancel, done: make(chan error, 1)}
	go func() {
		c.done <- leader.Run(ctx, leader.Options{
			Client: client, Namespace: ns, Name: "shoal-leader", Identity: id,
			// Short terms keep the takeover test quick; the ratios are client-go's.
			LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 200 * time.Millisecond,
			OnStart: func(ctx context.Context) {
				c.mu.Lock()
				c.leading, c.starts = true, c.starts+1
				c.mu.Unlock()
				<-ctx.Done()
			},
			OnStop: func() {
				c.mu.Lock()
				c.leading, c.stops = false, c.stops+1
				c.mu.Unlock()
			},
		})
	}()
	return c
}

func TestLeaderElection(t *testing.T) {
	env, err := kubetest.Start()
	if err == nil {
		t.Cleanup(func() { _ = env.Stop() })
	}
	env = kubetest.Need(t, env, err)

	t.Run("of two candidates one leads, and the other takes over when it stops", func(t *testing.T) {
		ns := env.Namespace(t)
		a, b := campaign(env.Client, ns, "shoal-a"), campaign(env.Client, ns, "shoal-b")
		defer a.cancel()
		defer b.cancel()

		var first, second *candidate
		kubetest.Eventually(t, 10*time.Second, func() error {
			switch {
			case a.isLeading() && b.isLeading():
				return errors.New("both lead")
			case a.isLeading():
				first, second = a, b
			case b.isLeading():
				first, second = b, a
			default:
				return errors.New("no leader yet")
			}
			return nil
		})
		kubetest.Eventually(t, 5*time.Second, func() error {
			lease, err := env.Client.CoordinationV1().Leases(ns).Get(context.Background(), "shoal-leader", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != first.id {
				return fmt.Errorf("lease held by %v, want %s", lease.Spec.HolderIdentity, first.id)
			}
			return nil
		})
		if second.isLeading() {
			t.Fatal("the second candidate leads too")
		}

		// The leader stops (its process ends): it gives the Lease up and the other leads.
		first.cancel()
		if err := <-first.done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run returned %v, want context.Canceled", err)
		}
		if starts, stops := first.counts(); starts != 1 || stops != 1 {
			t.Fatalf("the first leader saw %d starts and %d stops, want 1 and 1", starts, stops)
		}
		kubetest.Eventually(t, 10*time.Second, func() error {
			if !second.isLeading() {
				return errors.New("the second candidate has not taken over")
			}
			return nil
		})
		if starts, stops := second.counts(); starts != 1 || stops != 0 {
			t.Fatalf("the new leader saw %d starts and %d stops, want 1 and 0", starts, stops)
		}
	})

	t.Run("when the leader dies holding the Lease, the other takes over once it expires", func(t *testing.T) {
		ns := env.Namespace(t)
		// The first candidate's connection can be cut, as a crash or a partition would:
		// it can neither renew nor give the Lease up.
		var dead atomic.Bool
		cfg := rest.CopyConfig(env.Config)
		cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
			return roundTripper(func(r *http.Request) (*http.Response, error) {
				if dead.Load() {
					return nil, errors.New("connection cut by the test")
				}
				return rt.RoundTrip(r)
			})
		})
		mortal, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		a := campaign(mortal, ns, "shoal-a")
		defer a.cancel()
		kubetest.Eventually(t, 10*time.Second, func() error {
			if !a.isLeading() {
				return errors.New("no leader yet")
			}
			return nil
		})
		b := campaign(env.Client, ns, "shoal-b")
		defer b.cancel()

		dead.Store(true)
		kubetest.Eventually(t, 15*time.Second, func() error {
			if !b.isLeading() {
				return errors.New("the survivor has not taken over")
			}
			return nil
		})
		// The cut-off leader has stepped down by itself by then: its renew deadline is
		// shorter than the lease.
		if a.isLeading() {
			t.Fatal("the cut-off leader still thinks it leads")
		}
	})

	t.Run("a leader that cannot renew steps down and campaigns again", func(t *testing.T) {
		ns := env.Namespace(t)
		a := campaign(env.Client, ns, "shoal-a")
		defer a.cancel()
		kubetest.Eventually(t, 10*time.Second, func() error {
			if !a.isLeading() {
				return errors.New("no leader yet")
			}
			return nil
		})
		// Another holder takes the Lease by force, as an operator might.
		lease, err := env.Client.CoordinationV1().Leases(ns).Get(context.Background(), "shoal-leader", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		other := "intruder"
		lease.Spec.HolderIdentity = &other
		farFuture := int32(3600)
		lease.Spec.LeaseDurationSeconds = &farFuture
		if _, err := env.Client.CoordinationV1().Leases(ns).Update(context.Background(), lease, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		kubetest.Eventually(t, 10*time.Second, func() error {
			if _, stops := a.counts(); stops != 1 || a.isLeading() {
				return errors.New("still leading")
			}
			return nil
		})
	})

	t.Run("missing options are an error", func(t *testing.T) {
		if err := leader.Run(context.Background(), leader.Options{Client: env.Client}); err == nil {
			t.Fatal("Run without namespace, name and identity succeeded")
		}
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
