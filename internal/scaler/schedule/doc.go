// Package schedule is the scheduled external scaler: replica counts by time of day and
// weekday in a timezone, plus one-off windows for events, set through shoal's scale
// webhook when they change.
package schedule
