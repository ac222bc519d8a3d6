package main

import (
	"bufio"
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestDemoCmdFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"--help"}, 0, "usage: nxwatcher demo"},
		{[]string{"--rate=0"}, 2, "must be positive"},
		{[]string{"--incident-cycle=-1s"}, 2, "must be positive"},
		{[]string{"--backfill=-1h"}, 2, "must not be negative"},
		{[]string{"--no-such-flag"}, 2, "flag provided but not defined"},
		{[]string{"extra"}, 2, "unexpected arguments"},
	} {
		var stdout, stderr bytes.Buffer
		if code := demoCmd(tc.args, &stdout, &stderr); code != tc.code {
			t.Errorf("demo %q: exit %d, want %d (stderr %s)", tc.args, code, tc.code, stderr.String())
		}
		if out := stdout.String() + stderr.String(); !strings.Contains(out, tc.out) {
			t.Errorf("demo %q: output lacks %q:\n%s", tc.args, tc.out, out)
		}
	}
}

// TestDemoProcess runs the real binary's `demo` on free ports: it prints the
// UI URL and login, serves, and stops cleanly on SIGTERM, removing its
// temporary data directory.
func TestDemoProcess(t *testing.T) {
	if out, err := exec.Command(binPath, "demo", "--help").CombinedOutput(); err != nil {
		t.Skipf("the binary has no demo command yet (main.go must route \"demo\" to demoCmd): %v: %.200s", err, out)
	}
	cmd := exec.Command(binPath, "demo", "--web.listen-address=127.0.0.1:0", "--scrape-interval=1s")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := false
	t.Cleanup(func() {
		if !waited {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	lines := make(chan string, 32)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var uiURL, dataDir string
	login := false
	timeout := time.After(60 * time.Second)
	for uiURL == "" || dataDir == "" || !login {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("demo exited before its banner; stderr:\n%s", stderr.String())
			}
			if m := regexp.MustCompile(`UI:\s+(http://\S+)`).FindStringSubmatch(l); m != nil {
				uiURL = m[1]
			}
			if m := regexp.MustCompile(`data:\s+(\S+) \(temporary`).FindStringSubmatch(l); m != nil {
				dataDir = m[1]
			}
			if regexp.MustCompile(`login:\s+admin / \S+`).MatchString(l) {
				login = true
			}
		case <-timeout:
			t.Fatalf("no banner after 60s; stderr:\n%s", stderr.String())
		}
	}
	resp, err := http.Get(strings.TrimSuffix(uiURL, "/") + "/-/ready")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/-/ready: %s", resp.Status)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	go func() {
		for range lines {
		}
	}()
	err = cmd.Wait()
	waited = true
	if err != nil {
		t.Fatalf("demo exit: %v; stderr:\n%s", err, stderr.String())
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Errorf("temporary data dir %s left behind", dataDir)
	}
}
