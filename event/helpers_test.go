package event_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/enipool/enipool/event"
)

// want is the expected decoding of one Request. A zero Raw means the whole
// input, "*" any Raw; Err is the sentinel the Request's error must wrap, ErrText a
// substring of its message.
type want struct {
	Kind       event.Kind
	InstanceID string
	State      string
	Region     string
	ENIID      string
	Source     string
	EventID    string
	Lifecycle  *event.Lifecycle
	Action     *event.Action
	Redrive    *event.Redrive
	Raw        string
	Err        error
	ErrText    string
}

// checkInvariants asserts what Decode promises for every input: at least one
// Request, each with Raw, and either an Err wrapping a sentinel or a known
// Kind whose ids are valid.
func checkInvariants(t testing.TB, in []byte, reqs []event.Request) {
	t.Helper()
	if len(reqs) == 0 {
		t.Fatalf("Decode(%.80q) returned no Request", in)
	}
	for i, r := range reqs {
		if len(in) > 0 && len(r.Raw) == 0 {
			t.Fatalf("request %d: empty Raw for input %.80q", i, in)
		}
		if r.InstanceID != "" && !event.ValidInstanceID(r.InstanceID) {
			t.Fatalf("request %d: invalid InstanceID %q set", i, r.InstanceID)
		}
		if r.ENIID != "" && !event.ValidENIID(r.ENIID) {
			t.Fatalf("request %d: invalid ENIID %q set", i, r.ENIID)
		}
		if r.Region != "" && !event.ValidRegion(r.Region) {
			t.Fatalf("request %d: invalid Region %q set", i, r.Region)
		}
		if r.Err != nil {
			if !errors.Is(r.Err, event.ErrMalformed) && !errors.Is(r.Err, event.ErrUnsupported) &&
				!errors.Is(r.Err, event.ErrTooLarge) && !errors.Is(r.Err, event.ErrTooDeep) && !errors.Is(r.Err, event.ErrInvalidID) {
				t.Fatalf("request %d: error %v wraps no sentinel", i, r.Err)
			}
			continue
		}
		switch r.Kind {
		case event.KindECSStateChange, event.KindECSNotification:
			if r.InstanceID == "" || r.State == "" {
				t.Fatalf("request %d: %s without instance or state: %+v", i, r.Kind, r)
			}
		case event.KindDirect:
			if r.InstanceID == "" {
				t.Fatalf("request %d: direct without instance", i)
			}
		case event.KindLifecycle:
			lc := r.Lifecycle
			if r.InstanceID == "" || lc == nil || lc.HookID == "" || lc.Token == "" ||
				(lc.Transition != event.TransitionScaleOut && lc.Transition != event.TransitionScaleIn) {
				t.Fatalf("request %d: incomplete lifecycle request %+v (%+v)", i, r, lc)
			}
			for _, id := range lc.InstanceIDs {
				if !event.ValidInstanceID(id) {
					t.Fatalf("request %d: invalid id %q in Lifecycle.InstanceIDs", i, id)
				}
			}
		case event.KindLifecycleTest:
		case event.KindAction:
			if r.Action == nil || r.Action.InstanceID != r.InstanceID {
				t.Fatalf("request %d: action request without consistent Action: %+v", i, r)
			}
		default:
			t.Fatalf("request %d: unknown kind %q without error", i, r.Kind)
		}
	}
}

// check compares Decode's result with the wanted Requests.
func check(t *testing.T, in []byte, got []event.Request, wants []want) {
	t.Helper()
	checkInvariants(t, in, got)
	if len(got) != len(wants) {
		for i, r := range got {
			t.Logf("got[%d] = %s", i, describe(r))
		}
		t.Fatalf("got %d requests, want %d", len(got), len(wants))
	}
	for i, w := range wants {
		r := got[i]
		if w.Err != nil {
			if !errors.Is(r.Err, w.Err) {
				t.Errorf("request %d: error %v, want %v", i, r.Err, w.Err)
			} else if w.ErrText != "" && !strings.Contains(r.Err.Error(), w.ErrText) {
				t.Errorf("request %d: error %q does not mention %q", i, r.Err, w.ErrText)
			}
		} else if r.Err != nil {
			t.Errorf("request %d: unexpected error %v", i, r.Err)
		}
		raw := w.Raw
		if raw == "" {
			raw = string(in)
		}
		if raw != "*" && string(r.Raw) != raw {
			t.Errorf("request %d: Raw\n got %.300q\nwant %.300q", i, r.Raw, raw)
		}
		gotFields := want{Kind: r.Kind, InstanceID: r.InstanceID, State: r.State, Region: r.Region, ENIID: r.ENIID,
			Source: r.Source, EventID: r.EventID, Lifecycle: r.Lifecycle, Action: r.Action, Redrive: r.Redrive}
		w.Raw, w.Err, w.ErrText = "", nil, ""
		if w.Kind == "" && w.Source == "" && r.Err != nil {
			// Only the error and Raw were specified.
			continue
		}
		if !reflect.DeepEqual(gotFields, w) {
			t.Errorf("request %d:\n got %s\nwant %s", i, describeWant(gotFields), describeWant(w))
		}
	}
}

func describe(r event.Request) string {
	return fmt.Sprintf("%s inst=%s state=%s region=%s eni=%s src=%s id=%s lc=%+v action=%+v redrive=%+v err=%v raw=%.60q",
		r.Kind, r.InstanceID, r.State, r.Region, r.ENIID, r.Source, r.EventID, r.Lifecycle, r.Action, r.Redrive, r.Err, r.Raw)
}

func describeWant(w want) string {
	return fmt.Sprintf("%s inst=%s state=%s region=%s eni=%s src=%s id=%s lc=%+v action=%+v redrive=%+v",
		w.Kind, w.InstanceID, w.State, w.Region, w.ENIID, w.Source, w.EventID, w.Lifecycle, w.Action, w.Redrive)
}
