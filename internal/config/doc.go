// Package config loads, defaults and validates shoal's Ray Serve-style config files.
package config
