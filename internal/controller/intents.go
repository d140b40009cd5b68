package controller

import (
	"context"

	"shoal/internal/config"
	"shoal/internal/store"
)

// Intents is what the outside (API, proxy, dashboard, autoscaler) may ask of the
// controller. Every method that changes something returns only once the change is
// durable in the store. *Controller implements it; tests of the API use a fake.
type Intents interface {
	// Snapshot returns the current snapshot (never nil).
	Snapshot() *Snapshot
	// Wait returns the first snapshot whose Generation is greater than gen, or ctx's error.
	Wait(ctx context.Context, gen uint64) (*Snapshot, error)

	// Deploy makes cfg the deployed config (already parsed and validated). Applications
	// missing from cfg start deleting; they are DELETING in the snapshot published before
	// Deploy returns.
	Deploy(ctx context.Context, cfg *config.Config) error
	// DeleteAll deletes every application.
	DeleteAll(ctx context.Context) error

	// SetTarget sets a deployment's target count from src, durably, and returns the
	// previous target. Errors: ErrNotFound, ErrScalerDisabled (src is the webhook and the
	// application has external_scaler_enabled: false), ErrDeleting, ErrOverLimit,
	// ErrNegative. The same n twice is accepted and changes nothing.
	SetTarget(ctx context.Context, app, dep string, n int, src Source) (prev int, err error)

	// AppToken returns an application's token (made on the first deploy of an
	// application with external_scaler_enabled). ok is false when it has none.
	AppToken(app string) (tok store.Token, ok bool)
	// Tokens returns every application's token, by application name.
	Tokens() map[string]store.Token
	// RotateToken replaces an application's token durably; the old one stops working at once.
	RotateToken(ctx context.Context, app string) (store.Token, error)

	// RecordAudit appends an entry to the audit log durably.
	RecordAudit(e store.AuditEntry) error
	// Audit returns up to limit newest entries of a deployment (all of app's when dep is "").
	Audit(app, dep string, limit int) ([]store.AuditEntry, error)
}
