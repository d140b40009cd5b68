// Package scaler holds what shoal's external scalers share: the scale webhook they
// call, the "shoal:" section of their config, strict YAML decoding with line numbers,
// and their own metrics.
package scaler
