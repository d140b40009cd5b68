// Package client is the Go client of shoal's control REST API.
package client
