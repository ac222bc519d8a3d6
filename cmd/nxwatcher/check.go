package main

import (
	"fmt"
	"io"

	"github.com/prometheus/common/promslog"

	"github.com/nx-watcher/nxwatcher/internal/config"
)

func check(args []string, stdout, stderr io.Writer) int {
	if len(args) < 2 {
		fmt.Fprint(stderr, "usage: nxwatcher check config FILE...\n")
		return 2
	}
	switch args[0] {
	case "config":
		failed := false
		for _, file := range args[1:] {
			kind, err := config.CheckFile(file, promslog.NewNopLogger())
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
	default:
		fmt.Fprintf(stderr, "check: unknown target %q (want: config)\n", args[0])
		return 2
	}
}
