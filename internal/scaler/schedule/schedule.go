package schedule

import (
	"fmt"
	"sort"
	"time"
)

// Wall-clock semantics, decided here because a profile is written in wall-clock time
// and a timezone with daylight saving time has days of 23 and 25 hours:
//
//   - A profile boundary (from, to) on a given date is the instant the wall clock of the
//     timezone shows that time on that date (Resolve).
//   - A wall time that does not exist (skipped when clocks spring forward, e.g. 02:30 on
//     2026-03-29 in Europe/Berlin) is the instant the clock jumps over it: 03:00 CEST.
//     So a profile 02:00–03:00 is empty on that day (both ends are 03:00 CEST) and does
//     not run; one 01:00–02:30 ends at 03:00 CEST, one 02:30–05:00 starts then.
//     This is what a wall clock shows: on that day it never reads 02:00–02:59.
//   - A wall time that exists twice (repeated when clocks fall back, e.g. 02:30 on
//     2026-10-25 in Europe/Berlin, first CEST then CET) is its first occurrence:
//     02:30 CEST. A profile that ends at 02:30 ends then and is not entered again when
//     the clock reads 02:00–02:30 a second time; one that starts at 02:30 starts then
//     and runs through the repeated hour (it lasts an hour longer that day).
//   - Profile days are the days a profile starts on: mon-fri 22:00–02:00 runs Friday
//     night into Saturday, not Saturday night.
//   - One-off windows win over profiles; among windows, and among profiles, a later
//     entry in the list wins over an earlier one where they overlap. Outside all of
//     them the target's default applies.

// Resolve returns the instant at which the wall clock of loc shows the time of day c on
// the given date, by the rules above: the first occurrence of a time that exists twice,
// and for a time that does not exist, the instant the clock skipped it. A c of 24:00 is
// midnight at the end of the date.
func Resolve(year int, month time.Month, day int, c Clock, loc *time.Location) time.Time {
	// The wall time, written as if it were UTC; its minutes may run past the day (24:00).
	w := time.Date(year, month, day, 0, int(c), 0, 0, time.UTC)
	// The UTC offsets in force a day before and a day after: the same one on an ordinary
	// day, the two sides of the change on a transition day.
	_, offBefore := w.Add(-24 * time.Hour).In(loc).Zone()
	_, offAfter := w.Add(24 * time.Hour).In(loc).Zone()
	var best time.Time
	for _, off := range []int{offBefore, offAfter} {
		cand := w.Add(-time.Duration(off) * time.Second)
		if sameWall(cand.In(loc), w) && (best.IsZero() || cand.Before(best)) {
			best = cand
		}
	}
	if !best.IsZero() {
		return best
	}
	// In a gap: read with the offset before the change, the wall time lands after the
	// jump; the zone it lands in starts at the jump.
	start, _ := w.Add(-time.Duration(offBefore) * time.Second).In(loc).ZoneBounds()
	return start
}

func sameWall(local, w time.Time) bool {
	y1, m1, d1 := local.Date()
	y2, m2, d2 := w.Date()
	return y1 == y2 && m1 == m2 && d1 == d2 && local.Hour() == w.Hour() && local.Minute() == w.Minute()
}

// date is a civil date; its arithmetic is done in UTC, where every day has 24 hours.
type date struct{ t time.Time }

func dateOf(t time.Time, loc *time.Location) date {
	y, m, d := t.In(loc).Date()
	return date{time.Date(y, m, d, 0, 0, 0, 0, time.UTC)}
}

func (d date) add(days int) date     { return date{d.t.AddDate(0, 0, days)} }
func (d date) weekday() time.Weekday { return d.t.Weekday() }
func (d date) at(c Clock, loc *time.Location) time.Time {
	return Resolve(d.t.Year(), d.t.Month(), d.t.Day(), c, loc)
}

// interval returns the instants a profile starting on day d runs between: [start, end).
// end <= start means it does not run that day (its wall times were skipped).
func (p *Profile) interval(d date, loc *time.Location) (start, end time.Time) {
	start = d.at(p.From, loc)
	endDay := d
	if p.To <= p.From {
		endDay = d.add(1) // crosses midnight
	}
	return start, endDay.at(p.To, loc)
}

func (p *Profile) describe() string {
	return fmt.Sprintf("profile %q (%s %s–%s)", p.Name, p.Days, p.From, p.To)
}

// Desired returns the replica count tg's schedule sets at instant t in loc, and why:
// the window, profile or default that applies.
func Desired(tg *Target, loc *time.Location, t time.Time) (replicas int, reason string) {
	for j := len(tg.Windows) - 1; j >= 0; j-- {
		w := &tg.Windows[j]
		if !t.Before(w.From.Time) && t.Before(w.To.Time) {
			return w.Replicas, fmt.Sprintf("window %q (%s – %s)", w.Name,
				w.From.Time.In(loc).Format(timeFormat), w.To.Time.In(loc).Format(timeFormat))
		}
	}
	today := dateOf(t, loc)
	for j := len(tg.Profiles) - 1; j >= 0; j-- {
		p := &tg.Profiles[j]
		// A profile covering t started today or, crossing midnight, yesterday.
		for _, d := range []date{today, today.add(-1)} {
			if !p.Days[d.weekday()] {
				continue
			}
			if start, end := p.interval(d, loc); !t.Before(start) && t.Before(end) {
				return p.Replicas, p.describe()
			}
		}
	}
	return tg.DefaultReplicas(), "default (no profile or window applies)"
}

const timeFormat = "Mon 2006-01-02 15:04 MST"

// Change is a planned change of a deployment's target.
type Change struct {
	At          time.Time
	Application string
	Deployment  string
	Previous    int
	Replicas    int
	Reason      string
}

// maxHorizon bounds how far NextChanges looks ahead for a schedule that stops changing.
const maxHorizon = 800 * 24 * time.Hour

// NextChanges returns the next n changes of every target's replica count after from
// (strictly), in time order; targets changing at the same instant are in config order.
// It looks at most about two years ahead (further for a later window), so a schedule
// that never changes gives fewer than n.
func NextChanges(cfg *Config, from time.Time, n int) []Change {
	if n <= 0 {
		return nil
	}
	var all []Change
	for i := range cfg.Targets {
		all = append(all, targetChanges(&cfg.Targets[i], cfg.Location, from, n)...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].At.Before(all[j].At) })
	if len(all) > n {
		all = all[:n]
	}
	return all
}

// targetChanges returns up to n changes of one target after from. It looks a week
// ahead first and doubles the horizon until it has n or reaches the limit.
func targetChanges(tg *Target, loc *time.Location, from time.Time, n int) []Change {
	limit := from.Add(maxHorizon)
	for _, w := range tg.Windows {
		if w.To.Time.After(limit) {
			limit = w.To.Time.Add(time.Second)
		}
	}
	for days := 8; ; days *= 2 {
		first := dateOf(from, loc)
		// Boundaries are complete before the midnight that ends the horizon: every profile
		// starting up to then has been listed, and later starts come after it.
		cutoff := first.add(days+1).at(0, loc)
		var bounds []time.Time
		add := func(b time.Time) {
			if b.After(from) && b.Before(cutoff) {
				bounds = append(bounds, b)
			}
		}
		for k := -1; k <= days; k++ {
			d := first.add(k)
			for j := range tg.Profiles {
				p := &tg.Profiles[j]
				if p.Days[d.weekday()] {
					start, end := p.interval(d, loc)
					add(start)
					add(end)
				}
			}
		}
		for _, w := range tg.Windows {
			add(w.From.Time)
			add(w.To.Time)
		}
		sort.Slice(bounds, func(i, j int) bool { return bounds[i].Before(bounds[j]) })

		var out []Change
		prev, _ := Desired(tg, loc, from)
		for i, b := range bounds {
			if i > 0 && b.Equal(bounds[i-1]) {
				continue
			}
			r, why := Desired(tg, loc, b)
			if r == prev {
				continue
			}
			out = append(out, Change{At: b, Application: tg.Application, Deployment: tg.Deployment, Previous: prev, Replicas: r, Reason: why})
			prev = r
			if len(out) == n {
				return out
			}
		}
		if !cutoff.Before(limit) {
			return out
		}
	}
}
