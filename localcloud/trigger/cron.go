package trigger

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrBadSchedule is wrapped by every error about a timer's cronExpression.
var ErrBadSchedule = errors.New("trigger: bad cronExpression")

// Schedule is a parsed timer cronExpression.
type Schedule interface {
	// Next returns the first firing strictly after t.
	Next(t time.Time) time.Time
}

// ParseSchedule parses FC's two timer forms (TimerTriggerConfig.cronExpression):
//
//   - "@every <duration>", e.g. "@every 5m" or "@every 1h30m": every interval, counted from
//     when the trigger starts. FC's console offers whole minutes; any positive Go duration is
//     accepted here so that tests may use short ones.
//   - six fields "seconds minutes hours day-of-month month day-of-week" in UTC, each "*", "?"
//     (day fields only), a number, a range "a-b", a step "*/n" or "a-b/n", or a comma list of
//     those; months JAN-DEC and days SUN-SAT by name too (0 or 7 is Sunday). When both day
//     fields are restricted a day matches either, as in classic cron.
//
// CRON_TZ= prefixes and the L, W and # forms are refused rather than misread.
func ParseSchedule(expr string) (Schedule, error) {
	expr = strings.TrimSpace(expr)
	if rest, ok := strings.CutPrefix(expr, "@every"); ok {
		d, err := time.ParseDuration(strings.TrimSpace(rest))
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%w: %q: @every needs a positive duration", ErrBadSchedule, expr)
		}
		return every(d), nil
	}
	f := strings.Fields(expr)
	if len(f) != 6 {
		return nil, fmt.Errorf("%w: %q: want @every or six fields (seconds minutes hours day-of-month month day-of-week)", ErrBadSchedule, expr)
	}
	var c cron
	specs := []struct {
		dst      *uint64
		min, max int
		names    []string
		anyOK    bool
	}{
		{&c.sec, 0, 59, nil, false},
		{&c.min, 0, 59, nil, false},
		{&c.hour, 0, 23, nil, false},
		{&c.dom, 1, 31, nil, true},
		{&c.month, 1, 12, []string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}, false},
		{&c.dow, 0, 7, []string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}, true},
	}
	for i, s := range specs {
		bits, star, err := parseField(f[i], s.min, s.max, s.names, s.anyOK)
		if err != nil {
			return nil, fmt.Errorf("%w: %q field %d: %w", ErrBadSchedule, expr, i+1, err)
		}
		*s.dst = bits
		switch i {
		case 3:
			c.domStar = star
		case 5:
			c.dowStar = star
		}
	}
	if c.dow&(1<<7) != 0 { // 7 is Sunday too
		c.dow |= 1
	}
	return c, nil
}

type every time.Duration

// Next of an interval schedule: t plus the interval.
func (e every) Next(t time.Time) time.Time { return t.Add(time.Duration(e)) }

type cron struct {
	sec, min, hour, dom, month, dow uint64
	domStar, dowStar                bool
}

func parseField(s string, lo, hi int, names []string, anyOK bool) (bits uint64, star bool, err error) {
	for part := range strings.SplitSeq(s, ",") {
		step := 1
		rng := part
		if r, st, ok := strings.Cut(part, "/"); ok {
			n, err := strconv.Atoi(st)
			if err != nil || n <= 0 {
				return 0, false, fmt.Errorf("bad step in %q", part)
			}
			rng, step = r, n
		}
		var a, b int
		switch {
		case rng == "*" || (rng == "?" && anyOK):
			a, b = lo, hi
			if step == 1 && part == rng {
				star = true
			}
		case rng == "?":
			return 0, false, fmt.Errorf("? is only allowed in the day fields")
		default:
			x, y, isRange := strings.Cut(rng, "-")
			if a, err = fieldValue(x, lo, hi, names); err != nil {
				return 0, false, err
			}
			b = a
			if isRange {
				if b, err = fieldValue(y, lo, hi, names); err != nil {
					return 0, false, err
				}
			} else if step > 1 {
				b = hi // "a/n": from a to the end, every n
			}
			if b < a {
				return 0, false, fmt.Errorf("range %q runs backwards", rng)
			}
		}
		for v := a; v <= b; v += step {
			bits |= 1 << v
		}
	}
	return bits, star, nil
}

func fieldValue(s string, lo, hi int, names []string) (int, error) {
	for i, n := range names {
		if strings.EqualFold(s, n) {
			return i + lo, nil
		}
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number in %d-%d", s, lo, hi)
	}
	if v < lo || v > hi {
		return 0, fmt.Errorf("%d is outside %d-%d", v, lo, hi)
	}
	return v, nil
}

func has(bits uint64, v int) bool { return bits&(1<<v) != 0 }

func (c cron) dayMatches(t time.Time) bool {
	d, w := has(c.dom, t.Day()), has(c.dow, int(t.Weekday()))
	switch {
	case c.domStar && c.dowStar:
		return true
	case c.domStar:
		return w
	case c.dowStar:
		return d
	}
	return d || w
}

// Next walks forward field by field (month, day, hour, minute, second), skipping whole units
// that cannot match, in UTC. It gives up after five years, which only a schedule that names
// a day no month has (31 FEB) reaches; it then returns the zero time.
func (c cron) Next(t time.Time) time.Time {
	t = t.UTC().Truncate(time.Second).Add(time.Second)
	limit := t.AddDate(5, 0, 0)
	for t.Before(limit) {
		switch {
		case !has(c.month, int(t.Month())):
			t = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, time.UTC)
		case !c.dayMatches(t):
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, time.UTC)
		case !has(c.hour, t.Hour()):
			t = t.Truncate(time.Hour).Add(time.Hour)
		case !has(c.min, t.Minute()):
			t = t.Truncate(time.Minute).Add(time.Minute)
		case !has(c.sec, t.Second()):
			t = t.Add(time.Second)
		default:
			return t
		}
	}
	return time.Time{}
}
