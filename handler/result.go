package handler

import (
	"github.com/enipool/enipool/cloud"
	"github.com/enipool/enipool/engine"
)

// Response is what an invocation returns: one result per event (per instance for events
// naming several).
type Response struct {
	RequestID  string   `json:"requestId,omitempty"`
	Results    []Result `json:"results"`
	APICalls   int      `json:"apiCalls"`
	DurationMs int64    `json:"durationMs"`
	// Report carries the output of ad hoc actions such as status.
	Report any `json:"report,omitempty"`
}

// Result is the end of one event.
type Result struct {
	InstanceID         string         `json:"instanceId,omitempty"`
	NetworkInterfaceID string         `json:"networkInterfaceId,omitempty"`
	PrivateIP          string         `json:"privateIpAddress,omitempty"`
	ENIs               []ENIRef       `json:"networkInterfaces,omitempty"`
	Pool               string         `json:"pool,omitempty"`
	Zone               string         `json:"zone,omitempty"`
	Outcome            engine.Outcome `json:"outcome"`
	Code               string         `json:"code,omitempty"`
	Reason             string         `json:"reason,omitempty"`
	Verdict            cloud.Verdict  `json:"action,omitempty"`
	Attempts           int            `json:"attempts"`
	APICalls           int            `json:"apiCalls"`
	DurationMs         int64          `json:"durationMs"`
	Detached           []string       `json:"detached,omitempty"`
	DeadLetterID       string         `json:"deadLetterMessageId,omitempty"`
	Source             string         `json:"source,omitempty"`
	EventID            string         `json:"eventId,omitempty"`
	RequestIDs         []string       `json:"requestIds,omitempty"`
}

// ENIRef names one ENI an instance holds.
type ENIRef struct {
	ID        string `json:"networkInterfaceId"`
	PrivateIP string `json:"privateIpAddress,omitempty"`
}

// holds lists the ids of the pool ENIs the result says the instance holds.
func (r Result) holds() []string {
	if len(r.ENIs) == 0 && r.NetworkInterfaceID != "" {
		return []string{r.NetworkInterfaceID}
	}
	ids := make([]string, 0, len(r.ENIs))
	for _, e := range r.ENIs {
		ids = append(ids, e.ID)
	}
	return ids
}
