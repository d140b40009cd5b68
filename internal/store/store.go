package store

import (
	"errors"
	"time"
)

// ErrLocked is returned by Open when another shoal holds the state directory.
var ErrLocked = errors.New("state directory is in use by another shoal")

// State is the controller's durable desired state. It is small (configs, targets,
// tokens) and is saved whole, atomically; the audit log is kept apart because it grows.
type State struct {
	// Config is the deployed config as JSON (Ray's schema), nil before the first deploy.
	Config []byte `json:"config,omitempty"`
	// Apps holds per-application state, by name. An application being deleted stays here
	// with Deleting set until its replicas have stopped.
	Apps map[string]*AppState `json:"apps,omitempty"`
	// Tokens holds application tokens, by application name.
	Tokens map[string]*Token `json:"tokens,omitempty"`
}

// AppState is one application's durable state.
type AppState struct {
	LastDeployed time.Time                   `json:"last_deployed"`
	Deleting     bool                        `json:"deleting,omitempty"`
	Deployments  map[string]*DeploymentState `json:"deployments,omitempty"`
}

// DeploymentState is one deployment's durable target.
type DeploymentState struct {
	Target int    `json:"target"`
	Source string `json:"source"` // "config", "webhook", "autoscaler"
	// Version and NumReplicas are what the target was set under: a redeploy that changes
	// either resets the target to num_replicas (Ray's rule).
	Version     string `json:"version"`
	NumReplicas int    `json:"num_replicas"` // 0 when autoscaled
	// UpdatedAt is when the target was last set.
	UpdatedAt time.Time `json:"updated_at"`
}

// Token is an application token.
type Token struct {
	ID      string    `json:"id"`     // e.g. "app:my-app#2"; safe to log
	Secret  string    `json:"secret"` // the bearer value; never logged
	Created time.Time `json:"created"`
}

// AuditEntry is one call of the scale webhook, accepted or refused.
type AuditEntry struct {
	Time       time.Time `json:"time"`
	App        string    `json:"application"`
	Deployment string    `json:"deployment"`
	From       int       `json:"from"`  // target before the call (-1 when unknown)
	To         int       `json:"to"`    // requested target (-1 when the body had none)
	TokenID    string    `json:"token"` // "admin" or an application token id; "" when none
	Client     string    `json:"client"`
	Source     string    `json:"source"` // "webhook", "dashboard", "cli", ...
	Result     string    `json:"result"` // "ok", or the status and reason of a refusal
	Status     int       `json:"status"` // HTTP status answered
}

// Store keeps State and the audit log durable. Every write returns only once it is on
// disk (or, on Kubernetes, accepted by the API server).
type Store interface {
	// Load returns the saved state, or an empty State (non-nil maps) when there is none.
	Load() (*State, error)
	// Save replaces the saved state atomically and durably. An application that was in
	// the saved state and is not in st is fully deleted: its audit log goes with it, as
	// by DropAudit.
	Save(st *State) error
	// AppendAudit adds an entry durably. The log is bounded: the oldest entries of a
	// deployment beyond a per-deployment cap are dropped.
	AppendAudit(e AuditEntry) error
	// Audit returns up to limit newest entries for app (and dep, when not ""), newest first.
	Audit(app, dep string, limit int) ([]AuditEntry, error)
	// DropAudit removes every audit entry of app, of all its deployments. Dropping an
	// application without entries is not an error.
	DropAudit(app string) error
	Close() error
}
