package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestLoadDefaults(t *testing.T) {
	c, err := Load(env("ENIPOOL_DLQ_QUEUE", "enipool-dlq"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Handler.TagKey != "enipool" || c.Handler.PerInstance != 1 || c.Cloud.Scheme != "https" ||
		c.Cloud.DeadLetterQueue != "enipool-dlq" || c.Handler.AttachTime != 2*time.Second {
		t.Fatalf("defaults wrong: %+v", c)
	}
	if len(c.Handler.StoppedOnlyFamilies) == 0 {
		t.Fatal("no default stopped-only families")
	}
}

func TestLoadErrorsNameTheVariable(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want []string // variable names the error must mention
	}{
		{"missing DLQ", nil, []string{"ENIPOOL_DLQ_QUEUE"}},
		{"bad queue name", []string{"ENIPOOL_DLQ_QUEUE", "dlq_with_underscore"}, []string{"ENIPOOL_DLQ_QUEUE"}},
		{"N out of range", []string{"ENIPOOL_DLQ_QUEUE", "q", "ENIPOOL_ENIS_PER_INSTANCE", "0"}, []string{"ENIPOOL_ENIS_PER_INSTANCE"}},
		{"bad duration", []string{"ENIPOOL_DLQ_QUEUE", "q", "ENIPOOL_ATTACH_TIME", "soon"}, []string{"ENIPOOL_ATTACH_TIME"}},
		{"bad scheme", []string{"ENIPOOL_DLQ_QUEUE", "q", "ENIPOOL_API_SCHEME", "ftp"}, []string{"ENIPOOL_API_SCHEME"}},
		{"negative qps", []string{"ENIPOOL_DLQ_QUEUE", "q", "ENIPOOL_ATTACH_QPS", "-1"}, []string{"ENIPOOL_ATTACH_QPS"}},
		{"bad release state", []string{"ENIPOOL_DLQ_QUEUE", "q", "ENIPOOL_RELEASE_ON", "Stopped,Rebooting"}, []string{"ENIPOOL_RELEASE_ON"}},
		{"bad vswitch pair", []string{"ENIPOOL_DLQ_QUEUE", "q", "ENIPOOL_WARM_VSWITCHES", "cn-hangzhou-h=vsw-1"}, []string{"ENIPOOL_WARM_VSWITCHES"}},
		{"warm pool without vswitches", []string{"ENIPOOL_DLQ_QUEUE", "q", "ENIPOOL_WARM_POOL", "web"}, []string{"ENIPOOL_WARM_POOL"}},
		{"bad lifecycle result", []string{"ENIPOOL_DLQ_QUEUE", "q", "ENIPOOL_LIFECYCLE_FAILURE_RESULT", "ROLLBACK"}, []string{"ENIPOOL_LIFECYCLE_FAILURE_RESULT"}},
		// Fail on ca38816 (Load accepted them): a reserve at or above the timeout leaves the
		// work no time at all, and an attach guess that does not fit before the reserve means
		// no attach is ever confirmed.
		{"reserve as long as the default timeout", []string{"ENIPOOL_DLQ_QUEUE", "q", "ENIPOOL_DLQ_RESERVE", "5s", "ENIPOOL_DEFAULT_TIMEOUT", "5s"},
			[]string{"ENIPOOL_DLQ_RESERVE", "ENIPOOL_DEFAULT_TIMEOUT"}},
		{"reserve beyond the function timeout", []string{"ENIPOOL_DLQ_QUEUE", "q", "ENIPOOL_DLQ_RESERVE", "30s", "ENIPOOL_FUNCTION_TIMEOUT", "20"},
			[]string{"ENIPOOL_DLQ_RESERVE", "ENIPOOL_FUNCTION_TIMEOUT"}},
		{"reserve equal to the function timeout", []string{"ENIPOOL_DLQ_QUEUE", "q", "ENIPOOL_DLQ_RESERVE", "20s", "ENIPOOL_FUNCTION_TIMEOUT", "20s"},
			[]string{"ENIPOOL_DLQ_RESERVE", "ENIPOOL_FUNCTION_TIMEOUT"}},
		{"attach guess leaves no time to confirm", []string{"ENIPOOL_DLQ_QUEUE", "q", "ENIPOOL_FUNCTION_TIMEOUT", "4", "ENIPOOL_DLQ_RESERVE", "2s", "ENIPOOL_ATTACH_TIME", "2s"},
			[]string{"ENIPOOL_ATTACH_TIME", "ENIPOOL_DLQ_RESERVE", "ENIPOOL_FUNCTION_TIMEOUT"}},
		{"bad function timeout", []string{"ENIPOOL_DLQ_QUEUE", "q", "ENIPOOL_FUNCTION_TIMEOUT", "soon"}, []string{"ENIPOOL_FUNCTION_TIMEOUT"}},
		// Fail on 968df3d (neither variable existed): the warm target outside the pools the
		// deployment serves, and a scaling group that is not an id.
		{"warm pool not served", []string{"ENIPOOL_DLQ_QUEUE", "q", "ENIPOOL_POOLS", "web", "ENIPOOL_WARM_POOL", "db",
			"ENIPOOL_WARM_VSWITCHES", "cn-hangzhou-h:vsw-a", "ENIPOOL_WARM_SECURITY_GROUPS", "sg-1"}, []string{"ENIPOOL_WARM_POOL", "ENIPOOL_POOLS"}},
		{"bad scaling group", []string{"ENIPOOL_DLQ_QUEUE", "q", "ENIPOOL_SCALING_GROUPS", "asg-1,group-2"}, []string{"ENIPOOL_SCALING_GROUPS"}},
		{"any among pools", []string{"ENIPOOL_DLQ_QUEUE", "q", "ENIPOOL_POOLS", "web,*"}, []string{"ENIPOOL_POOLS"}},
		{"any among scaling groups", []string{"ENIPOOL_DLQ_QUEUE", "q", "ENIPOOL_SCALING_GROUPS", "*,asg-1"}, []string{"ENIPOOL_SCALING_GROUPS"}},
		{"several at once", []string{"ENIPOOL_DLQ_QUEUE", "q", "ENIPOOL_LOG_LEVEL", "loud", "ENIPOOL_PLATFORM_RETRIES", "9"},
			[]string{"ENIPOOL_LOG_LEVEL", "ENIPOOL_PLATFORM_RETRIES"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(env(tt.env...))
			if err == nil {
				t.Fatal("Load accepted a bad configuration")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %s", err, w)
				}
			}
		})
	}
}

// A function timeout given as FC's whole seconds (s.yaml's timeout) or as a duration.
func TestLoadFunctionTimeout(t *testing.T) {
	for in, want := range map[string]time.Duration{"120": 120 * time.Second, "90s": 90 * time.Second, "": 0} {
		c, err := Load(env("ENIPOOL_DLQ_QUEUE", "q", "ENIPOOL_FUNCTION_TIMEOUT", in))
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if c.FunctionTimeout != want {
			t.Errorf("%q: FunctionTimeout %v, want %v", in, c.FunctionTimeout, want)
		}
	}
}

func TestLoadOverrides(t *testing.T) {
	c, err := Load(env("ENIPOOL_DLQ_QUEUE", "q", "ENIPOOL_STOPPED_ONLY_FAMILIES", "none", "ENIPOOL_API_SCHEME", "HTTP",
		"ENIPOOL_ENIS_PER_INSTANCE", "2", "ENIPOOL_LOG_LEVEL", "debug", "ENIPOOL_MNS_DIAL_ADDR", "127.0.0.1:9"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Handler.StoppedOnlyFamilies) != 0 || c.Cloud.Scheme != "http" || c.Handler.PerInstance != 2 || c.Cloud.MNSDialAddr != "127.0.0.1:9" {
		t.Fatalf("overrides not applied: %+v", c)
	}
}

// Every variable Load reads is documented, and every documented variable is read.
func TestVariablesMatchLoad(t *testing.T) {
	read := map[string]bool{}
	Load(func(k string) string { read[k] = true; return "" })
	documented := map[string]bool{}
	for _, v := range Variables() {
		documented[v.Name] = true
		if !read[v.Name] {
			t.Errorf("%s is documented but Load never reads it", v.Name)
		}
	}
	for k := range read {
		if !documented[k] {
			t.Errorf("Load reads %s, which Variables does not document", k)
		}
	}
}

func TestLoadWarmTarget(t *testing.T) {
	c, err := Load(env("ENIPOOL_DLQ_QUEUE", "q", "ENIPOOL_WARM_POOL", "web", "ENIPOOL_WARM_MIN_AVAILABLE", "2", "ENIPOOL_WARM_MAX", "6",
		"ENIPOOL_WARM_VSWITCHES", "cn-hangzhou-h:vsw-a, cn-hangzhou-h:vsw-b,cn-hangzhou-i:vsw-c", "ENIPOOL_WARM_SECURITY_GROUPS", "sg-1,sg-2",
		"ENIPOOL_RELEASE_ON", "none"))
	if err != nil {
		t.Fatal(err)
	}
	w := c.Handler.Warm
	if !w.Enabled() || w.MinAvailable != 2 || w.Max != 6 || len(w.VSwitches["cn-hangzhou-h"]) != 2 || w.VSwitches["cn-hangzhou-i"][0] != "vsw-c" ||
		len(w.SecurityGroups) != 2 || len(c.Handler.ReleaseOn) != 0 {
		t.Fatalf("warm target misread: %+v release %v", w, c.Handler.ReleaseOn)
	}
}

// ENIPOOL_POOLS and ENIPOOL_SCALING_GROUPS are comma-separated lists; empty or "*" means any.
// Fails on 968df3d (Load read neither).
func TestLoadPoolsAndScalingGroups(t *testing.T) {
	tests := []struct {
		pools, groups   string
		wantP, wantG    []string
		serves, refuses string
	}{
		{"", "", nil, nil, "anything", ""},
		// "*" is how a deployer says any on purpose (make policy renders nothing for an empty
		// list); on a0bb83d it was a pool named "*" and a scaling group refused.
		{"*", " * ", nil, nil, "anything", ""},
		{"web, db", "asg-1,asg-2", []string{"web", "db"}, []string{"asg-1", "asg-2"}, "db", "cache"},
	}
	for _, tt := range tests {
		c, err := Load(env("ENIPOOL_DLQ_QUEUE", "q", "ENIPOOL_POOLS", tt.pools, "ENIPOOL_SCALING_GROUPS", tt.groups))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(c.Handler.Pools, tt.wantP) || !slices.Equal(c.Handler.ScalingGroups, tt.wantG) {
			t.Errorf("%q %q: pools %q groups %q, want %q %q", tt.pools, tt.groups, c.Handler.Pools, c.Handler.ScalingGroups, tt.wantP, tt.wantG)
		}
		if !c.Handler.Serves(tt.serves) || (tt.refuses != "" && c.Handler.Serves(tt.refuses)) || c.Handler.Serves("") {
			t.Errorf("%q: Serves(%q) = %v, Serves(%q) = %v", tt.pools, tt.serves, c.Handler.Serves(tt.serves), tt.refuses, c.Handler.Serves(tt.refuses))
		}
	}
}
