package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"shoal/internal/config"
	"shoal/internal/controller"
	"shoal/internal/store"
)

// switchable is the controller.Intents that the API, the proxy, the dashboard and the
// metrics hold on the Kubernetes backend, in front of a controller that changes: a
// follower's is rebuilt whenever the state changes, and a new leader builds its own.
//
// Each controller numbers its snapshots from 0, so the switch republishes them under a
// generation of its own that only grows: a reader's Wait never goes back in time.
type switchable struct {
	log *slog.Logger

	// calls is held (read) by every call to ctrl and (write) by detach, so detach
	// returns only once no call is left on the controller it removed.
	calls sync.RWMutex

	mu   sync.Mutex // guards ctrl and gen, and orders publishes
	ctrl *controller.Controller
	gen  uint64

	snap atomic.Pointer[controller.Snapshot]

	notifyMu sync.Mutex // guards notify
	// notify is closed and replaced on every publish, waking every Wait at once.
	notify chan struct{}
}

var _ controller.Intents = (*switchable)(nil)

// errNoController is returned for a change asked before this replica has read the
// state once: like a follower, it cannot make it.
var errNoController = fmt.Errorf("shoal is starting: %w", store.ErrNotLeader)

func newSwitch(h config.HTTPOptions, log *slog.Logger) *switchable {
	s := &switchable{log: log, notify: make(chan struct{})}
	s.snap.Store(&controller.Snapshot{HTTPOptions: h})
	return s
}

// set makes c the controller behind the switch and publishes its snapshot.
func (s *switchable) set(c *controller.Controller) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ctrl = c
	s.publishLocked(c.Snapshot())
}

// pump republishes c's snapshots while c is the current controller, until ctx is done.
func (s *switchable) pump(ctx context.Context, c *controller.Controller) {
	var gen uint64
	for {
		snap, err := c.Wait(ctx, gen)
		if err != nil {
			return
		}
		gen = snap.Generation
		s.mu.Lock()
		if s.ctrl == c {
			s.publishLocked(snap)
		}
		s.mu.Unlock()
	}
}

func (s *switchable) publishLocked(snap *controller.Snapshot) {
	s.gen++
	cp := *snap // snapshots are immutable: a shallow copy shares their contents safely
	cp.Generation = s.gen
	s.snap.Store(&cp)
	s.notifyMu.Lock()
	close(s.notify)
	s.notify = make(chan struct{})
	s.notifyMu.Unlock()
}

// detach removes the controller, once no call is left on it; intents fail with
// store.ErrNotLeader until set.
func (s *switchable) detach() {
	s.calls.Lock()
	defer s.calls.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ctrl = nil
}

// current returns the controller and a release to call when done with it.
func (s *switchable) current() (*controller.Controller, func()) {
	s.calls.RLock()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ctrl, s.calls.RUnlock
}

// Snapshot implements controller.Intents.
func (s *switchable) Snapshot() *controller.Snapshot { return s.snap.Load() }

// Wait implements controller.Intents.
func (s *switchable) Wait(ctx context.Context, gen uint64) (*controller.Snapshot, error) {
	for {
		// Take the channel before reading the snapshot: a publish in between closes it.
		s.notifyMu.Lock()
		ch := s.notify
		s.notifyMu.Unlock()
		if snap := s.snap.Load(); snap.Generation > gen {
			return snap, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Deploy implements controller.Intents.
func (s *switchable) Deploy(ctx context.Context, cfg *config.Config) error {
	c, release := s.current()
	defer release()
	if c == nil {
		return errNoController
	}
	return c.Deploy(ctx, cfg)
}

// DeleteAll implements controller.Intents.
func (s *switchable) DeleteAll(ctx context.Context) error {
	c, release := s.current()
	defer release()
	if c == nil {
		return errNoController
	}
	return c.DeleteAll(ctx)
}

// SetTarget implements controller.Intents.
func (s *switchable) SetTarget(ctx context.Context, app, dep string, n int, src controller.Source) (int, error) {
	c, release := s.current()
	defer release()
	if c == nil {
		return 0, errNoController
	}
	return c.SetTarget(ctx, app, dep, n, src)
}

// AppToken implements controller.Intents.
func (s *switchable) AppToken(app string) (store.Token, bool) {
	c, release := s.current()
	defer release()
	if c == nil {
		return store.Token{}, false
	}
	return c.AppToken(app)
}

// Tokens implements controller.Intents.
func (s *switchable) Tokens() map[string]store.Token {
	c, release := s.current()
	defer release()
	if c == nil {
		return map[string]store.Token{}
	}
	return c.Tokens()
}

// RotateToken implements controller.Intents.
func (s *switchable) RotateToken(ctx context.Context, app string) (store.Token, error) {
	c, release := s.current()
	defer release()
	if c == nil {
		return store.Token{}, errNoController
	}
	return c.RotateToken(ctx, app)
}

// RecordAudit implements controller.Intents. Only the leader writes the audit log; a
// call refused by a follower (not the leader, or a bad token) is written to this
// replica's log instead, and the client's retry is audited by the leader.
func (s *switchable) RecordAudit(e store.AuditEntry) error {
	c, release := s.current()
	defer release()
	var err error
	if c == nil {
		err = errNoController
	} else {
		err = c.RecordAudit(e)
	}
	if errors.Is(err, store.ErrNotLeader) {
		s.log.Info("scale call not audited: this replica does not lead", "app", e.App, "deployment", e.Deployment,
			"from", e.From, "to", e.To, "token", e.TokenID, "client", e.Client, "status", e.Status, "result", e.Result)
		return nil
	}
	return err
}

// Audit implements controller.Intents.
func (s *switchable) Audit(app, dep string, limit int) ([]store.AuditEntry, error) {
	c, release := s.current()
	defer release()
	if c == nil {
		return nil, nil
	}
	return c.Audit(app, dep, limit)
}
