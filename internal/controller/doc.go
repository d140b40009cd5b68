// Package controller owns shoal's desired state: it turns intents (configs, targets,
// deletions) into durable state and backend specs, and publishes immutable snapshots.
package controller
