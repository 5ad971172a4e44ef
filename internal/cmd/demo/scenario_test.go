package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// run -scenario refuses a malformed scenario before building anything, naming the bad fields.
func TestRunScenarioRefusesMalformed(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bad.yaml")
	body := "world: ../../worlds/nope.yaml\ntimeline: [{launch: {count: 0}}]\nend: {}\n"
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := run(context.Background(), []string{"-scenario", file}, &out)
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Fatalf("err = %v", err)
	}
	if out.Len() != 0 {
		t.Errorf("printed %q before refusing", out.String())
	}

	good := filepath.Join(t.TempDir(), "fields.yaml")
	world, err := filepath.Abs("../../../localcloud/scenarios/worlds/fleet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	body = "world: " + world + "\ntimeline: [{launch: {count: 0, pool: web}}, {wait: 0s}]\nend: {}\n"
	if err := os.WriteFile(good, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	err = run(context.Background(), []string{"-scenario", good}, &out)
	for _, want := range []string{"timeline[0].launch.count: must be positive", "timeline[1].wait: must be positive", "end: required"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err lacks %q: %v", want, err)
		}
	}
}
