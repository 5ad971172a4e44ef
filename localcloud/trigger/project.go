package trigger

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// ErrInvalidProject is wrapped by every error about an s.yaml the package cannot run.
var ErrInvalidProject = errors.New("trigger: invalid project")

// Trigger types of fc3 (triggerType) that this package delivers.
const (
	TypeTimer       = "timer"
	TypeEventBridge = "eventbridge"
)

// RenderOptions supply what rendering s.yaml reads from outside the file.
type RenderOptions struct {
	// Getenv answers ${env('NAME')}; nil means no variable is set, so every default applies
	// (what a deploy from a clean shell renders).
	Getenv func(name string) (string, bool)
	// AccountID answers ${config('AccountID')}.
	AccountID string
}

// Project is a rendered s.yaml: one FunctionSpec per fc3 resource.
type Project struct {
	Functions []FunctionSpec
}

// Function returns the function named name.
func (p *Project) Function(name string) (FunctionSpec, bool) {
	i := slices.IndexFunc(p.Functions, func(f FunctionSpec) bool { return f.Name == name })
	if i < 0 {
		return FunctionSpec{}, false
	}
	return p.Functions[i], true
}

// FunctionSpec is what the local cloud needs of an fc3 resource's props. Each field holds the
// fc3 key its JSON tag names.
type FunctionSpec struct {
	Resource string `json:"-"`
	Name     string `json:"functionName"`
	Region   string `json:"region"`
	Runtime  string `json:"runtime"`
	Handler  string `json:"handler"`
	// TimeoutSeconds and MemorySize are fc3's timeout and memorySize.
	TimeoutSeconds int               `json:"timeout"`
	MemorySize     int               `json:"memorySize"`
	Env            map[string]string `json:"environmentVariables"`
	Async          *AsyncInvokeSpec  `json:"asyncInvokeConfig"`
	Triggers       []TriggerSpec     `json:"triggers"`
}

// AsyncInvokeSpec is fc3's asyncInvokeConfig, field by field.
type AsyncInvokeSpec struct {
	MaxAsyncRetryAttempts     *int `json:"maxAsyncRetryAttempts"`
	MaxAsyncEventAgeInSeconds int  `json:"maxAsyncEventAgeInSeconds"`
	DestinationConfig         struct {
		OnSuccess *DestinationSpec `json:"onSuccess"`
		OnFailure *DestinationSpec `json:"onFailure"`
	} `json:"destinationConfig"`
}

// DestinationSpec is one asyncInvokeConfig destination.
type DestinationSpec struct {
	Destination string `json:"destination"`
}

// TriggerSpec is one fc3 trigger. Exactly one of Timer and EventBridge is set, per Type.
type TriggerSpec struct {
	Name        string           `json:"triggerName"`
	Type        string           `json:"triggerType"`
	Qualifier   string           `json:"qualifier"`
	Timer       *TimerSpec       `json:"-"`
	EventBridge *EventBridgeSpec `json:"-"`
	// Raw is the triggerConfig as rendered.
	Raw json.RawMessage `json:"triggerConfig"`
}

// TimerSpec is a timer trigger's triggerConfig, field by field.
type TimerSpec struct {
	CronExpression string `json:"cronExpression"`
	Enable         bool   `json:"enable"`
	Payload        string `json:"payload"`
}

// EventBridgeSpec is an eventbridge trigger's triggerConfig, field by field (fc3 spells the
// inner keys of the source and runOptions in PascalCase).
type EventBridgeSpec struct {
	TriggerEnable          bool   `json:"triggerEnable"`
	AsyncInvocationType    bool   `json:"asyncInvocationType"`
	EventRuleFilterPattern string `json:"eventRuleFilterPattern"`
	EventSourceConfig      struct {
		EventSourceType       string `json:"eventSourceType"`
		EventSourceParameters struct {
			SourceMNSParameters *SourceMNSSpec `json:"sourceMNSParameters"`
		} `json:"eventSourceParameters"`
	} `json:"eventSourceConfig"`
	EventSinkConfig struct {
		DeliveryOption struct {
			Mode        string `json:"mode"`
			EventSchema string `json:"eventSchema"`
		} `json:"deliveryOption"`
	} `json:"eventSinkConfig"`
	RunOptions *RunOptionsSpec `json:"runOptions"`
}

// SourceMNSSpec is sourceMNSParameters, field by field.
type SourceMNSSpec struct {
	QueueName string `json:"QueueName"`
	// IsBase64Decode defaults to true (FC API, SourceMNSParameters).
	IsBase64Decode *bool  `json:"IsBase64Decode"`
	RegionID       string `json:"RegionId"`
}

// RunOptionsSpec is an eventbridge trigger's runOptions, field by field.
type RunOptionsSpec struct {
	Mode            string `json:"mode"`
	MaximumTasks    int    `json:"maximumTasks"`
	ErrorsTolerance string `json:"errorsTolerance"`
	RetryStrategy   *struct {
		PushRetryStrategy        string `json:"PushRetryStrategy"`
		MaximumRetryAttempts     *int   `json:"MaximumRetryAttempts"`
		MaximumEventAgeInSeconds int    `json:"MaximumEventAgeInSeconds"`
	} `json:"retryStrategy"`
	DeadLetterQueue *struct {
		Arn string `json:"Arn"`
	} `json:"deadLetterQueue"`
	BatchWindow *struct {
		CountBasedWindow int `json:"CountBasedWindow"`
		TimeBasedWindow  int `json:"TimeBasedWindow"`
	} `json:"batchWindow"`
}

// LoadProject reads and renders an s.yaml.
func LoadProject(path string, o RenderOptions) (*Project, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidProject, err)
	}
	return ParseProject(raw, o)
}

// ParseProject renders an s.yaml document.
func ParseProject(raw []byte, o RenderOptions) (*Project, error) {
	bad := func(format string, a ...any) (*Project, error) {
		return nil, fmt.Errorf("%w: %s", ErrInvalidProject, fmt.Sprintf(format, a...))
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return bad("not YAML: %v", err)
	}
	getenv := o.Getenv
	if getenv == nil {
		getenv = func(string) (string, bool) { return "", false }
	}
	vars, _ := doc["vars"].(map[string]any)
	r := &renderer{vars: vars, getenv: getenv, accountID: o.AccountID}
	resources, _ := doc["resources"].(map[string]any)
	p := &Project{}
	for name, res := range resources {
		m, _ := res.(map[string]any)
		if m == nil || m["component"] != "fc3" {
			continue
		}
		props, err := r.value(m["props"])
		if err != nil {
			return bad("resources.%s.props: %v", name, err)
		}
		b, err := json.Marshal(props)
		if err != nil {
			return bad("resources.%s.props: %v", name, err)
		}
		var fs FunctionSpec
		if err := json.Unmarshal(b, &fs); err != nil {
			return bad("resources.%s.props: %v", name, err)
		}
		fs.Resource = name
		for i := range fs.Triggers {
			if err := fs.Triggers[i].decode(); err != nil {
				return bad("resources.%s trigger %s: %v", name, fs.Triggers[i].Name, err)
			}
		}
		p.Functions = append(p.Functions, fs)
	}
	slices.SortFunc(p.Functions, func(a, b FunctionSpec) int { return strings.Compare(a.Resource, b.Resource) })
	return p, nil
}

func (t *TriggerSpec) decode() error {
	if t.Qualifier == "" {
		t.Qualifier = "LATEST"
	}
	switch t.Type {
	case TypeTimer:
		t.Timer = &TimerSpec{}
		return json.Unmarshal(t.Raw, t.Timer)
	case TypeEventBridge:
		t.EventBridge = &EventBridgeSpec{}
		return json.Unmarshal(t.Raw, t.EventBridge)
	}
	return nil // other trigger types are kept, not delivered
}

// Timeout is the function's timeout (fc3 default 3 s).
func (f FunctionSpec) Timeout() time.Duration {
	if f.TimeoutSeconds <= 0 {
		return 3 * time.Second
	}
	return time.Duration(f.TimeoutSeconds) * time.Second
}

// QueueFromARN returns the queue name of an MNS queue ARN, in either form fc3 uses:
// acs:mns:{region}:{account}:/queues/{name} (event stream dead-letter queue) or
// .../queues/{name}/messages (async destination).
func QueueFromARN(arn string) (string, error) {
	parts := strings.SplitN(arn, ":", 5)
	if len(parts) != 5 || parts[0] != "acs" || parts[1] != "mns" {
		return "", fmt.Errorf("%w: %q is not an MNS ARN", ErrInvalidProject, arn)
	}
	rest, ok := strings.CutPrefix(parts[4], "/queues/")
	if !ok {
		return "", fmt.Errorf("%w: %q does not name a queue", ErrInvalidProject, arn)
	}
	rest = strings.TrimSuffix(rest, "/messages")
	if rest == "" || strings.Contains(rest, "/") {
		return "", fmt.Errorf("%w: %q does not name a queue", ErrInvalidProject, arn)
	}
	return rest, nil
}
