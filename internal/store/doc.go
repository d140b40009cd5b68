// Package store keeps shoal's desired state — deployed config, targets, tokens and the
// audit log — durable in an embedded bbolt database in the state directory.
package store
