package schedule

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	_ "time/tzdata" // a timezone works on a machine without /usr/share/zoneinfo too

	"go.yaml.in/yaml/v3"

	"shoal/internal/scaler"
)

// Config is the scaler's YAML file.
//
//	shoal: {address: http://127.0.0.1:8000, token_env: SHOAL_TOKEN}
//	timezone: Europe/Berlin
//	interval: 30s
//	targets:
//	  - application: my-app
//	    deployment: my-deployment
//	    default: 1
//	    profiles:
//	      - {name: business-hours, days: [mon-fri], from: "09:00", to: "18:00", replicas: 4}
//	      - {name: evening-peak, days: [mon-sun], from: "18:00", to: "22:00", replicas: 8}
//	    windows:
//	      - {name: launch, from: 2026-12-01T10:00:00+01:00, to: 2026-12-01T14:00:00+01:00, replicas: 20}
type Config struct {
	Shoal scaler.Shoal `yaml:"shoal"`
	// Timezone is an IANA name (Europe/Berlin, UTC); default the machine's local zone.
	Timezone string `yaml:"timezone"`
	// Interval is how often each target is read from shoal and set again if it differs
	// from the schedule, between planned changes; default DefaultInterval.
	Interval scaler.Duration `yaml:"interval"`
	Targets  []Target        `yaml:"targets"`

	// Location is Timezone, loaded by Parse.
	Location *time.Location `yaml:"-"`
}

// DefaultInterval is how often a target changed outside the scaler is looked for:
// KEDA's default pollingInterval.
const DefaultInterval = 30 * time.Second

// Target is one deployment's schedule.
type Target struct {
	Application string `yaml:"application"`
	Deployment  string `yaml:"deployment"`
	// Default is the replica count when no profile or window applies; default 1.
	Default  *int      `yaml:"default"`
	Profiles []Profile `yaml:"profiles"`
	Windows  []Window  `yaml:"windows"`
}

// DefaultReplicas is Default with its default.
func (t *Target) DefaultReplicas() int {
	if t.Default == nil {
		return 1
	}
	return *t.Default
}

// Profile is a recurring replica count: on each of Days, from From to To in the
// config's timezone. To at or before From crosses midnight (22:00–02:00 runs from 22:00
// on a listed day to 02:00 the next). Days are the days a profile starts on.
type Profile struct {
	Name     string `yaml:"name"`
	Days     Days   `yaml:"days"`
	From     Clock  `yaml:"from"`
	To       Clock  `yaml:"to"`
	Replicas int    `yaml:"replicas"`
}

// Window is a one-off replica count from From to To (an event, a launch). A time with
// no UTC offset is read in the config's timezone.
type Window struct {
	Name     string `yaml:"name"`
	From     When   `yaml:"from"`
	To       When   `yaml:"to"`
	Replicas int    `yaml:"replicas"`
}

// Clock is a wall-clock time of day, in minutes after midnight: "09:00" is 540.
// "24:00" (1440) is allowed as a profile's end.
type Clock int

// String is "HH:MM".
func (c Clock) String() string { return fmt.Sprintf("%02d:%02d", int(c)/60, int(c)%60) }

// UnmarshalYAML reads "HH:MM".
func (c *Clock) UnmarshalYAML(n *yaml.Node) error {
	h, m, ok := strings.Cut(n.Value, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if n.Kind != yaml.ScalarNode || !ok || len(m) != 2 || err1 != nil || err2 != nil ||
		hh < 0 || mm < 0 || mm > 59 || hh > 24 || (hh == 24 && mm != 0) {
		return fmt.Errorf("line %d: want a time of day like \"09:00\" (00:00 to 24:00), got %q", n.Line, n.Value)
	}
	*c = Clock(hh*60 + mm)
	return nil
}

// Days is a set of weekdays, indexed by time.Weekday.
type Days [7]bool

var dayNames = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

func parseDay(s string) (time.Weekday, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	for i, n := range dayNames {
		if s == n || (len(s) > 3 && strings.HasPrefix(time.Weekday(i).String(), strings.ToUpper(s[:1])+s[1:])) {
			return time.Weekday(i), true
		}
	}
	return 0, false
}

// UnmarshalYAML reads a list of days and ranges: [mon-fri], [sat, sun], [fri-mon]
// (a range may wrap past Sunday).
func (d *Days) UnmarshalYAML(n *yaml.Node) error {
	items := []*yaml.Node{n}
	if n.Kind == yaml.SequenceNode {
		items = n.Content
	}
	var out Days
	for _, it := range items {
		lo, hi, isRange := strings.Cut(it.Value, "-")
		a, ok1 := parseDay(lo)
		b, ok2 := a, true
		if isRange {
			b, ok2 = parseDay(hi)
		}
		if it.Kind != yaml.ScalarNode || !ok1 || !ok2 {
			return fmt.Errorf("line %d: want days like mon, sat-sun or mon-fri, got %q", it.Line, it.Value)
		}
		for w := a; ; w = (w + 1) % 7 {
			out[w] = true
			if w == b {
				break
			}
		}
	}
	*d = out
	return nil
}

// Any reports whether a day is set.
func (d Days) Any() bool { return d != Days{} }

// String lists the days, as ranges where they run on: "mon-fri", "mon-sun", "sat".
func (d Days) String() string {
	if d == (Days{true, true, true, true, true, true, true}) {
		return "mon-sun"
	}
	var parts []string
	// Walk from Monday so that mon-fri reads as people write it.
	order := []int{1, 2, 3, 4, 5, 6, 0}
	for i := 0; i < 7; {
		if !d[order[i]] {
			i++
			continue
		}
		j := i
		for j+1 < 7 && d[order[j+1]] {
			j++
		}
		if j == i {
			parts = append(parts, dayNames[order[i]])
		} else {
			parts = append(parts, dayNames[order[i]]+"-"+dayNames[order[j]])
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

// When is a point in time written in RFC 3339, with or without a UTC offset
// ("2026-12-01T10:00:00+01:00", "2026-12-01T10:00", "2026-12-01 10:00"). One without an
// offset is resolved in the config's timezone by Parse.
type When struct {
	Time time.Time
	raw  string
	line int
}

// UnmarshalYAML keeps the text; Parse resolves it once the timezone is known.
func (w *When) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a date and time like 2026-12-01T10:00:00+01:00", n.Line)
	}
	w.raw, w.line = n.Value, n.Line
	return nil
}

// wallFormats are the layouts of a time without an offset.
var wallFormats = []string{"2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02 15:04"}

func (w *When) resolve(loc *time.Location) error {
	if t, err := time.Parse(time.RFC3339, w.raw); err == nil {
		w.Time = t
		return nil
	}
	for _, f := range wallFormats {
		if t, err := time.Parse(f, w.raw); err == nil {
			w.Time = Resolve(t.Year(), t.Month(), t.Day(), Clock(t.Hour()*60+t.Minute()), loc).Add(time.Duration(t.Second()) * time.Second)
			return nil
		}
	}
	return fmt.Errorf("want a date and time like 2026-12-01T10:00:00+01:00, got %q", w.raw)
}

// Load reads and validates a config file.
func Load(path string) (*Config, error) {
	data, dir, err := scaler.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data, path, dir)
}

// Parse decodes a config strictly, fills defaults, loads the timezone and validates
// everything. Errors come as a *scaler.Errors listing every problem with its line.
func Parse(data []byte, name, baseDir string) (*Config, error) {
	var c Config
	doc, err := scaler.Decode(data, name, &c)
	if err != nil {
		return nil, err
	}
	errs := &scaler.Errors{File: name}
	scaler.DefaultsAndShoal(&c.Shoal, baseDir, errs, doc)
	c.Location = time.Local
	if c.Timezone != "" {
		loc, err := time.LoadLocation(c.Timezone)
		if err != nil {
			errs.Add(doc.Line("timezone"), "timezone", fmt.Sprintf("unknown timezone %q (want an IANA name like Europe/Berlin or UTC)", c.Timezone))
		} else {
			c.Location = loc
		}
	}
	if c.Interval == 0 {
		c.Interval = scaler.Duration(DefaultInterval)
	}
	if c.Interval < 0 {
		errs.Add(doc.Line("interval"), "interval", "must be > 0")
	}
	if len(c.Targets) == 0 {
		errs.Add(doc.Line("targets"), "targets", "at least one target is needed")
	}
	seen := map[string]int{}
	for i := range c.Targets {
		validateTarget(&c, i, doc, errs, seen)
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return &c, nil
}

func validateTarget(c *Config, i int, doc *scaler.Doc, errs *scaler.Errors, seen map[string]int) {
	t := &c.Targets[i]
	add := func(line int, path, msg string) { errs.Add(line, fmt.Sprintf("targets[%d]%s", i, path), msg) }
	if t.Application == "" {
		add(doc.Line("targets", i, "application"), ".application", "must not be empty")
	}
	if t.Deployment == "" {
		add(doc.Line("targets", i, "deployment"), ".deployment", "must not be empty")
	}
	key := t.Application + "/" + t.Deployment
	if prev, dup := seen[key]; dup && t.Application != "" && t.Deployment != "" {
		add(doc.Line("targets", i), "", fmt.Sprintf("%s is scheduled by targets[%d] already", key, prev))
	} else {
		seen[key] = i
	}
	if t.DefaultReplicas() < 0 {
		add(doc.Line("targets", i, "default"), ".default", fmt.Sprintf("must be >= 0, got %d", t.DefaultReplicas()))
	}
	for j := range t.Profiles {
		p := &t.Profiles[j]
		at := func(f string) int {
			if f == "" {
				return doc.Line("targets", i, "profiles", j)
			}
			return doc.Line("targets", i, "profiles", j, f)
		}
		path := fmt.Sprintf(".profiles[%d]", j)
		if p.Name == "" {
			p.Name = fmt.Sprintf("profiles[%d]", j)
		}
		if !p.Days.Any() {
			// Omitted days mean every day.
			p.Days = Days{true, true, true, true, true, true, true}
		}
		switch {
		case !doc.Has("targets", i, "profiles", j, "from"):
			add(at(""), path+".from", "must be set")
		case !doc.Has("targets", i, "profiles", j, "to"):
			add(at(""), path+".to", "must be set")
		case p.From == 1440:
			add(at("from"), path+".from", "24:00 is only allowed as an end (to)")
		case p.From == p.To:
			add(at("to"), path+".to", fmt.Sprintf("equals from (%s); for a whole day write from: \"00:00\", to: \"24:00\"", p.From))
		}
		if p.Replicas < 0 {
			add(at("replicas"), path+".replicas", fmt.Sprintf("must be >= 0, got %d", p.Replicas))
		}
	}
	for j := range t.Windows {
		w := &t.Windows[j]
		at := func(f string) int { return doc.Line("targets", i, "windows", j, f) }
		path := fmt.Sprintf(".windows[%d]", j)
		if w.Name == "" {
			w.Name = fmt.Sprintf("windows[%d]", j)
		}
		okFrom, okTo := true, true
		if w.From.raw == "" {
			add(at("from"), path+".from", "must be set")
			okFrom = false
		} else if err := w.From.resolve(c.Location); err != nil {
			add(at("from"), path+".from", err.Error())
			okFrom = false
		}
		if w.To.raw == "" {
			add(at("to"), path+".to", "must be set")
			okTo = false
		} else if err := w.To.resolve(c.Location); err != nil {
			add(at("to"), path+".to", err.Error())
			okTo = false
		}
		if okFrom && okTo && !w.To.Time.After(w.From.Time) {
			add(at("to"), path+".to", fmt.Sprintf("must be after from (%s), got %s", w.From.raw, w.To.raw))
		}
		if w.Replicas < 0 {
			add(at("replicas"), path+".replicas", fmt.Sprintf("must be >= 0, got %d", w.Replicas))
		}
	}
}
