package trigger

import (
	"errors"
	"fmt"
	"time"

	"github.com/enipool/enipool/localcloud/ess"
	"github.com/enipool/enipool/localcloud/world"
)

// InstanceSource lists the world's instances: a *world.Store.
type InstanceSource interface {
	Instances(filters ...func(*world.Instance) bool) []world.Instance
}

// LifecycleSource lists Auto Scaling's lifecycle actions: an *ess.Service.
type LifecycleSource interface {
	LifecycleActions() []ess.LifecycleAction
}

// WatchOptions configure Watch.
type WatchOptions struct {
	// Instances, when set, makes every instance state change an ecs:Instance:StateChange
	// event: a new instance's state, each later change of its status, and Deleted when it is
	// released or gone.
	Instances InstanceSource
	// Lifecycle and World, when set, make every new lifecycle action an
	// ess:LifecycleHook:ScaleOut or ScaleIn event (World names the action's hook).
	Lifecycle LifecycleSource
	World     *world.World
	// Region is stamped on the events.
	Region string
	// Interval is how often the world is looked at, on the Clock; default 50 ms. A state an
	// instance holds for less than that may be missed, as a change between two looks.
	Interval time.Duration
}

// Watch makes the world's changes events on the default bus, as ECS and Auto Scaling put
// them there: it looks at the world every Interval and publishes what changed since the last
// look. What exists when Watch is called is the baseline and is not published. It returns
// once the baseline is taken; the watching stops with Close.
//
// Looking, rather than a callback from the world, keeps the emulators unaware of EventBridge;
// its cost is that states shorter than Interval can be missed (EventBridge does not promise
// to deliver every intermediate state either, but this is an assumption).
func (t *Triggers) Watch(o WatchOptions) error {
	if o.Instances == nil && o.Lifecycle == nil {
		return errors.New("trigger: Watch needs Instances or Lifecycle")
	}
	if o.Lifecycle != nil && o.World == nil {
		return errors.New("trigger: Watch needs World to name lifecycle hooks")
	}
	if o.Interval <= 0 {
		o.Interval = 50 * time.Millisecond
	}
	w := &watcher{t: t, o: o, states: map[string]string{}, actions: map[string]bool{}}
	w.look(false)
	if !t.spawn(func() {
		for t.clock.Sleep(t.ctx, o.Interval) == nil {
			w.look(true)
		}
	}) {
		return errors.New("trigger: Watch after Close")
	}
	return nil
}

type watcher struct {
	t       *Triggers
	o       WatchOptions
	states  map[string]string // instance id: last state seen
	actions map[string]bool   // lifecycle tokens seen
}

// look compares the world with the last look and publishes the differences when publish.
func (w *watcher) look(publish bool) {
	t, o := w.t, w.o
	now := t.clock.Now()
	emit := func(ev CloudEvent) {
		if !publish {
			return
		}
		if _, err := t.Publish(ev); err != nil {
			t.fail(fmt.Errorf("trigger: watch: %w", err))
		}
	}
	if o.Instances != nil {
		present := map[string]bool{}
		for _, in := range o.Instances.Instances() {
			present[in.ID] = true
			state := in.Status
			if in.Released {
				state = "Deleted"
			}
			if w.states[in.ID] != state {
				w.states[in.ID] = state
				emit(ECSStateChange(o.Region, t.o.AccountID, in.ID, state, now))
			}
		}
		for id, state := range w.states {
			if !present[id] && state != "Deleted" {
				w.states[id] = "Deleted"
				emit(ECSStateChange(o.Region, t.o.AccountID, id, "Deleted", now))
			}
		}
	}
	if o.Lifecycle != nil {
		for _, a := range o.Lifecycle.LifecycleActions() {
			if w.actions[a.Token] {
				continue
			}
			w.actions[a.Token] = true
			h, ok := o.World.LifecycleHook(a.HookID)
			if !ok {
				t.fail(fmt.Errorf("trigger: watch: lifecycle action %s names unknown hook %s", a.Token, a.HookID))
				continue
			}
			emit(ESSLifecycle(o.Region, t.o.AccountID, Lifecycle{
				LifecycleHookID: h.ID, LifecycleActionToken: a.Token, LifecycleHookName: h.Name,
				ScalingGroupID: a.ScalingGroupID, LifecycleTransition: h.Transition, DefaultResult: h.DefaultResult,
				RequestID: newUUID(), ScalingActivityID: a.ScalingActivityID, InstanceIDs: a.InstanceIDs,
			}, now))
		}
	}
}
