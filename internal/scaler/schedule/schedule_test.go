package schedule

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func berlin(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func utc(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04:05", s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestResolvePicksTheInstantTheWallClockShowsTheTime(t *testing.T) {
	loc := berlin(t)
	cases := []struct {
		name string
		date string
		at   string
		want string // UTC
	}{
		{"a winter time is one hour ahead of UTC", "2026-11-27", "09:00", "2026-11-27 08:00:00"},
		{"a summer time is two hours ahead of UTC", "2026-07-01", "09:00", "2026-07-01 07:00:00"},
		{"24:00 is midnight at the end of the day", "2026-11-27", "24:00", "2026-11-27 23:00:00"},
		{"before the spring gap the day is still in winter time", "2026-03-29", "01:59", "2026-03-29 00:59:00"},
		{"the start of the spring gap is the jump to 03:00 CEST", "2026-03-29", "02:00", "2026-03-29 01:00:00"},
		{"a time inside the spring gap is the jump to 03:00 CEST", "2026-03-29", "02:30", "2026-03-29 01:00:00"},
		{"the end of the spring gap is 03:00 CEST", "2026-03-29", "03:00", "2026-03-29 01:00:00"},
		{"a time that exists twice in autumn is its first occurrence, in summer time", "2026-10-25", "02:30", "2026-10-25 00:30:00"},
		{"the start of the repeated hour is its first occurrence", "2026-10-25", "02:00", "2026-10-25 00:00:00"},
		{"03:00 on the autumn day exists once, in winter time", "2026-10-25", "03:00", "2026-10-25 02:00:00"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, _ := time.Parse("2006-01-02", c.date)
			var h, m int
			fmt.Sscanf(c.at, "%d:%d", &h, &m)
			got := Resolve(d.Year(), d.Month(), d.Day(), Clock(h*60+m), loc)
			if want := utc(c.want); !got.Equal(want) {
				t.Errorf("Resolve(%s %s) = %s (%s), want %s UTC", c.date, c.at, got.UTC(), got.In(loc), want)
			}
		})
	}
}

// seed is the example schedule, plus a night profile that crosses midnight
// and a one-off launch window.
const seed = `
timezone: Europe/Berlin
targets:
  - application: my-app
    deployment: my-deployment
    default: 1
    profiles:
      - {name: business-hours, days: [mon-fri], from: "09:00", to: "18:00", replicas: 4}
      - {name: evening-peak, days: [mon-sun], from: "18:00", to: "22:00", replicas: 8}
      - {name: night-batch, days: [sat], from: "22:00", to: "02:00", replicas: 2}
    windows:
      - {name: launch, from: 2026-12-01T10:00:00+01:00, to: 2026-12-01T14:00:00+01:00, replicas: 20}
`

func mustParse(t *testing.T, y string) *Config {
	t.Helper()
	c, err := Parse([]byte(y), "s.yaml", "/")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// local reads "2006-01-02 15:04" in loc (never an ambiguous or skipped time here).
func local(loc *time.Location, s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
	if err != nil {
		panic(err)
	}
	return t
}

func TestDesiredAcrossADayBoundaryAndAWeekend(t *testing.T) {
	c := mustParse(t, seed)
	loc := c.Location
	tg := &c.Targets[0]
	// 2026-11-27 is a Friday.
	cases := []struct {
		at   string
		want int
		why  string
	}{
		{"2026-11-27 08:59", 1, "default"},
		{"2026-11-27 09:00", 4, `profile "business-hours" (mon-fri 09:00–18:00)`},
		{"2026-11-27 17:59", 4, "business-hours"},
		{"2026-11-27 18:00", 8, `profile "evening-peak" (mon-sun 18:00–22:00)`},
		{"2026-11-27 22:00", 1, "default"},
		{"2026-11-27 23:30", 1, "default"}, // night-batch is Saturday's, not Friday's
		{"2026-11-28 10:00", 1, "default"}, // Saturday: no business hours
		{"2026-11-28 18:00", 8, "evening-peak"},
		{"2026-11-28 22:00", 2, `profile "night-batch" (sat 22:00–02:00)`},
		{"2026-11-28 23:59", 2, "night-batch"},
		{"2026-11-29 00:00", 2, "night-batch"}, // crossed midnight into Sunday
		{"2026-11-29 01:59", 2, "night-batch"},
		{"2026-11-29 02:00", 1, "default"},
		{"2026-11-29 09:30", 1, "default"}, // Sunday
		{"2026-11-30 09:00", 4, "business-hours"},
		{"2026-12-01 09:59", 4, "business-hours"},
		{"2026-12-01 10:00", 20, `window "launch"`},
		{"2026-12-01 13:59", 20, "launch"},
		{"2026-12-01 14:00", 4, "business-hours"},
	}
	for _, c := range cases {
		got, why := Desired(tg, loc, local(loc, c.at))
		if got != c.want || !strings.Contains(why, c.why) {
			t.Errorf("%s: %d (%s), want %d (%s)", c.at, got, why, c.want, c.why)
		}
	}
}

func TestALaterProfileWinsOverAnEarlierOneAndAWindowOverBoth(t *testing.T) {
	c := mustParse(t, `
timezone: UTC
targets:
  - application: a
    deployment: d
    profiles:
      - {name: wide, from: "08:00", to: "20:00", replicas: 3}
      - {name: narrow, from: "12:00", to: "13:00", replicas: 6}
    windows:
      - {name: first, from: "2026-11-27T12:30", to: "2026-11-27T15:00", replicas: 10}
      - {name: second, from: "2026-11-27T14:00", to: "2026-11-27T16:00", replicas: 12}
`)
	tg := &c.Targets[0]
	for _, tc := range []struct {
		at   string
		want int
	}{{"2026-11-26 12:15", 6}, {"2026-11-26 13:00", 3}, {"2026-11-27 12:15", 6}, {"2026-11-27 12:30", 10},
		{"2026-11-27 14:00", 12}, {"2026-11-27 15:30", 12}, {"2026-11-27 16:00", 3}, {"2026-11-27 20:00", 1}} {
		if got, why := Desired(tg, time.UTC, local(time.UTC, tc.at)); got != tc.want {
			t.Errorf("%s: %d (%s), want %d", tc.at, got, why, tc.want)
		}
	}
}

func TestDesiredAcrossDaylightSavingChanges(t *testing.T) {
	c := mustParse(t, `
timezone: Europe/Berlin
targets:
  - application: a
    deployment: spring
    profiles:
      - {name: skipped-hour, days: [mon-sun], from: "02:00", to: "03:00", replicas: 5}
  - application: a
    deployment: autumn
    profiles:
      - {name: until-half-past-two, days: [sun], from: "00:00", to: "02:30", replicas: 5}
      - {name: from-half-past-two, days: [sun], from: "02:30", to: "04:00", replicas: 7}
`)
	loc := c.Location
	spring, autumn := &c.Targets[0], &c.Targets[1]
	cases := []struct {
		name string
		tg   *Target
		utc  string
		want int
	}{
		{"the day before spring-forward the 02:00–03:00 profile runs", spring, "2026-03-28 01:30:00", 5},
		{"on spring-forward day the clock reads 01:59 CET: not yet", spring, "2026-03-29 00:59:59", 1},
		{"on spring-forward day the clock jumps to 03:00 CEST: the profile never ran", spring, "2026-03-29 01:00:00", 1},
		{"the day after spring-forward it runs again at 02:00 CEST", spring, "2026-03-30 00:00:00", 5},
		{"before the autumn change, 02:29 CEST is inside the first profile", autumn, "2026-10-25 00:29:00", 5},
		{"at the first 02:30 (CEST) the second profile takes over", autumn, "2026-10-25 00:30:00", 7},
		{"the repeated 02:15 (CET) does not go back to the first profile", autumn, "2026-10-25 01:15:00", 7},
		{"03:59 CET is still inside the second profile, which lasts an hour longer", autumn, "2026-10-25 02:59:00", 7},
		{"04:00 CET ends it", autumn, "2026-10-25 03:00:00", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			at := utc(c.utc)
			if got, why := Desired(c.tg, loc, at); got != c.want {
				t.Errorf("at %s (%s): %d (%s), want %d", at, at.In(loc).Format(timeFormat), got, why, c.want)
			}
		})
	}
}

func fmtChanges(cs []Change, loc *time.Location) string {
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "%s %s %d→%d\n", c.At.In(loc).Format("Mon 01-02 15:04 MST"), c.Deployment, c.Previous, c.Replicas)
	}
	return b.String()
}

func TestNextChangesListsTheComingWeekInOrder(t *testing.T) {
	c := mustParse(t, seed)
	got := fmtChanges(NextChanges(c, local(c.Location, "2026-11-27 17:00"), 14), c.Location)
	want := `Fri 11-27 18:00 CET my-deployment 4→8
Fri 11-27 22:00 CET my-deployment 8→1
Sat 11-28 18:00 CET my-deployment 1→8
Sat 11-28 22:00 CET my-deployment 8→2
Sun 11-29 02:00 CET my-deployment 2→1
Sun 11-29 18:00 CET my-deployment 1→8
Sun 11-29 22:00 CET my-deployment 8→1
Mon 11-30 09:00 CET my-deployment 1→4
Mon 11-30 18:00 CET my-deployment 4→8
Mon 11-30 22:00 CET my-deployment 8→1
Tue 12-01 09:00 CET my-deployment 1→4
Tue 12-01 10:00 CET my-deployment 4→20
Tue 12-01 14:00 CET my-deployment 20→4
Tue 12-01 18:00 CET my-deployment 4→8
`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestNextChangesSkipTheProfileOfASkippedHour(t *testing.T) {
	c := mustParse(t, `
timezone: Europe/Berlin
targets:
  - {application: a, deployment: d, profiles: [{name: p, from: "02:00", to: "03:00", replicas: 5}]}
`)
	got := fmtChanges(NextChanges(c, local(c.Location, "2026-03-28 12:00"), 4), c.Location)
	want := `Mon 03-30 02:00 CEST d 1→5
Mon 03-30 03:00 CEST d 5→1
Tue 03-31 02:00 CEST d 1→5
Tue 03-31 03:00 CEST d 5→1
`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestNextChangesMergesTargetsAndStopsWhenNothingChanges(t *testing.T) {
	c := mustParse(t, `
timezone: UTC
targets:
  - {application: a, deployment: x, profiles: [{from: "10:00", to: "11:00", replicas: 2}]}
  - {application: a, deployment: y, profiles: [{from: "10:00", to: "12:00", replicas: 3}]}
  - {application: a, deployment: z, default: 4}
`)
	got := fmtChanges(NextChanges(c, local(time.UTC, "2026-11-27 09:00"), 4), time.UTC)
	want := `Fri 11-27 10:00 UTC x 1→2
Fri 11-27 10:00 UTC y 1→3
Fri 11-27 11:00 UTC x 2→1
Fri 11-27 12:00 UTC y 3→1
`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	only := mustParse(t, "timezone: UTC\ntargets: [{application: a, deployment: z, default: 4}]\n")
	if cs := NextChanges(only, time.Now(), 3); len(cs) != 0 {
		t.Errorf("a schedule without profiles changes: %v", cs)
	}
}

func TestAWindowFarAheadIsFound(t *testing.T) {
	c := mustParse(t, `
timezone: UTC
targets:
  - {application: a, deployment: d, windows: [{name: w, from: "2029-06-01T00:00:00Z", to: "2029-06-02T00:00:00Z", replicas: 9}]}
`)
	cs := NextChanges(c, utc("2026-11-27 00:00:00"), 2)
	if len(cs) != 2 || !cs[0].At.Equal(utc("2029-06-01 00:00:00")) || cs[0].Replicas != 9 || cs[1].Replicas != 1 {
		t.Errorf("changes %+v, want the window's start and end", cs)
	}
}

func TestTheExampleConfigLoads(t *testing.T) {
	c, err := Load(filepath.Join("..", "..", "..", "examples", "scalers", "schedule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Location.String() != "Europe/Berlin" || len(c.Targets[0].Profiles) != 3 || len(c.Targets[0].Windows) != 1 {
		t.Errorf("example decoded wrong: %+v", c)
	}
}
