package main

import (
	"fmt"
	"io"

	"github.com/prometheus/common/promslog"

	"github.com/nx-watcher/nxwatcher/internal/config"
	"github.com/nx-watcher/nxwatcher/internal/ruler"
)

func check(args []string, stdout, stderr io.Writer) int {
	if len(args) < 2 {
		fmt.Fprint(stderr, "usage: nxwatcher check config|rules|agent-config FILE...\n")
		return 2
	}
	switch args[0] {
	case "config":
		failed := false
		for _, file := range args[1:] {
			kind, warnings, err := config.Check(file, promslog.NewNopLogger())
			for _, w := range warnings {
				fmt.Fprintf(stderr, "  WARNING: %s: %s\n", file, w)
			}
			if err != nil {
				fmt.Fprintf(stderr, "FAILED: %s: %v\n", file, err)
				failed = true
				continue
			}
			fmt.Fprintf(stdout, "SUCCESS: %s is a valid %s\n", file, kind)
		}
		if failed {
			return 1
		}
		return 0
	case "agent-config":
		return checkAgentConfig(args[1:], stdout, stderr)
	case "rules":
		if err := ruler.CheckRuleFiles(stdout, args[1:]...); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		return 0
	default:
		fmt.Fprintf(stderr, "check: unknown target %q (want: config, rules or agent-config)\n", args[0])
		return 2
	}
}

// testCmd runs promtool-format rule unit tests.
func testCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) < 2 || args[0] != "rules" {
		fmt.Fprint(stderr, "usage: nxwatcher test rules TEST_FILE...\n")
		return 2
	}
	if ruler.TestRuleFiles(stdout, args[1:]...) {
		return 1
	}
	return 0
}
