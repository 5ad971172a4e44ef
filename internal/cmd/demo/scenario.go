package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/enipool/enipool/internal/testbed/scenario"
)

// runScenario is `run -scenario FILE`: the scenario's story as it happens, then its report as
// the last line, one JSON object. sYAML, when set, overrides the scenario's project; without
// either, the s.yaml of the working directory is used.
func runScenario(ctx context.Context, out io.Writer, file, sYAML, logFile string) error {
	sc, err := scenario.Load(file)
	if err != nil {
		return err
	}
	if sYAML == "" && sc.Project == "" {
		sYAML = "s.yaml"
	}
	logs := io.Discard
	if logFile != "" {
		f, err := os.Create(logFile)
		if err != nil {
			return err
		}
		defer f.Close()
		logs = f
	}
	rep, err := scenario.Run(ctx, sc, scenario.Options{Project: sYAML, Getenv: os.LookupEnv, Story: out, Logs: logs})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "%s\n", rep.JSON())
	return err
}
