// Package chaos runs a real shoal with real replicas under continuous load while a
// seeded driver injects faults, and checks after every step that nothing promised is lost.
package chaos
