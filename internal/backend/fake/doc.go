// Package fake is an in-memory backend.Backend whose replicas a test moves by hand.
package fake
