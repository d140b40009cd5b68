package schedule

import (
	"errors"
	"testing"
	"time"

	"shoal/internal/scaler"
)

func TestDaysReadRangesAndWrapPastSunday(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"[mon-fri]", "mon-fri"},
		{"[sat, sun]", "sat-sun"},
		{"[fri-mon]", "mon,fri-sun"},
		{"[mon-sun]", "mon-sun"},
		{"[Monday, wed]", "mon,wed"},
		{"tue", "tue"},
	}
	for _, c := range cases {
		cfg, err := Parse([]byte("targets: [{application: a, deployment: d, profiles: [{days: "+c.yaml+`, from: "01:00", to: "02:00", replicas: 1}]}]`+"\n"), "s.yaml", "/")
		if err != nil {
			t.Errorf("%s: %v", c.yaml, err)
			continue
		}
		if got := cfg.Targets[0].Profiles[0].Days.String(); got != c.want {
			t.Errorf("days %s read as %s, want %s", c.yaml, got, c.want)
		}
	}
}

func TestAWindowWithoutAnOffsetIsReadInTheTimezone(t *testing.T) {
	c := mustParse(t, `
timezone: Europe/Berlin
targets: [{application: a, deployment: d, windows: [{from: "2026-12-01T10:00", to: "2026-12-01 14:00", replicas: 3}]}]
`)
	w := c.Targets[0].Windows[0]
	if !w.From.Time.Equal(utc("2026-12-01 09:00:00")) || !w.To.Time.Equal(utc("2026-12-01 13:00:00")) {
		t.Errorf("window %s – %s, want 09:00–13:00 UTC", w.From.Time.UTC(), w.To.Time.UTC())
	}
	if w.Name != "windows[0]" {
		t.Errorf("unnamed window is called %q", w.Name)
	}
}

func TestTheTimezoneDefaultsToTheMachines(t *testing.T) {
	c := mustParse(t, "targets: [{application: a, deployment: d}]\n")
	if c.Location != time.Local || c.Targets[0].DefaultReplicas() != 1 || c.Interval.D() != 30*time.Second {
		t.Errorf("location %v, default %d, interval %s; want local, 1, 30s", c.Location, c.Targets[0].DefaultReplicas(), c.Interval.D())
	}
}

func TestConfigErrorsNameTheFileLineAndPath(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"a negative interval is refused",
			"interval: -5s\ntargets: [{application: a, deployment: d}]\n",
			`s.yaml:1: interval: must be > 0`},
		{"an unknown timezone is refused",
			"timezone: Mars/Olympus\ntargets: [{application: a, deployment: d}]\n",
			`s.yaml:1: timezone: unknown timezone "Mars/Olympus" (want an IANA name like Europe/Berlin or UTC)`},
		{"a time of day that does not parse names its line",
			"targets:\n  - application: a\n    deployment: d\n    profiles:\n      - {from: \"9am\", to: \"18:00\", replicas: 2}\n",
			`s.yaml:5: want a time of day like "09:00" (00:00 to 24:00), got "9am"`},
		{"an unknown day names its line",
			"targets:\n  - application: a\n    deployment: d\n    profiles:\n      - days: [mon-fry]\n        from: \"09:00\"\n",
			`s.yaml:5: want days like mon, sat-sun or mon-fri, got "mon-fry"`},
		{"an unknown field is refused",
			"targets:\n  - application: a\n    deployment: d\n    profile: []\n",
			"s.yaml:4: field profile not found in type schedule.Target"},
		{"every problem of a target is reported",
			"targets:\n" +
				"  - application: a\n" +
				"    deployment: d\n" +
				"    default: -1\n" +
				"    profiles:\n" +
				"      - {name: p, from: \"10:00\", to: \"10:00\", replicas: 1}\n" +
				"      - {name: q, from: \"24:00\", to: \"10:00\", replicas: -2}\n" +
				"      - {name: r, to: \"10:00\", replicas: 1}\n" +
				"    windows:\n" +
				"      - {name: w, from: 2026-12-01T10:00:00Z, to: 2026-12-01T09:00:00Z, replicas: 1}\n" +
				"      - {name: v, from: tomorrow, replicas: 1}\n",
			"s.yaml:4: targets[0].default: must be >= 0, got -1\n" +
				`s.yaml:6: targets[0].profiles[0].to: equals from (10:00); for a whole day write from: "00:00", to: "24:00"` + "\n" +
				"s.yaml:7: targets[0].profiles[1].from: 24:00 is only allowed as an end (to)\n" +
				"s.yaml:7: targets[0].profiles[1].replicas: must be >= 0, got -2\n" +
				"s.yaml:8: targets[0].profiles[2].from: must be set\n" +
				"s.yaml:10: targets[0].windows[0].to: must be after from (2026-12-01T10:00:00Z), got 2026-12-01T09:00:00Z\n" +
				`s.yaml:11: targets[0].windows[1].from: want a date and time like 2026-12-01T10:00:00+01:00, got "tomorrow"` + "\n" +
				"s.yaml:11: targets[0].windows[1].to: must be set"},
		{"a deployment scheduled twice is refused",
			"targets:\n  - {application: a, deployment: d}\n  - {application: a, deployment: d}\n",
			"s.yaml:3: targets[1]: a/d is scheduled by targets[0] already"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml), "s.yaml", "/")
			var errs *scaler.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error %v (%T), want *scaler.Errors", err, err)
			}
			if err.Error() != c.want {
				t.Errorf("got\n%s\nwant\n%s", err, c.want)
			}
		})
	}
}
