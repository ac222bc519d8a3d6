package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// handleSignals takes SIGTERM, SIGINT and SIGHUP from the moment it is
// called, so none arriving during start-up kills the process with the
// default action. SIGTERM/SIGINT end ctx (onStop sees which, may be nil);
// SIGHUPs arrive on reloads, coalesced into one pending reload. stop
// releases the signals.
func handleSignals(onStop func(os.Signal)) (ctx context.Context, reloads <-chan struct{}, stop func()) {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, os.Interrupt, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(context.Background())
	reload := make(chan struct{}, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case sig := <-sigs:
				if sig == syscall.SIGHUP {
					select {
					case reload <- struct{}{}:
					default:
					}
					continue
				}
				if onStop != nil {
					onStop(sig)
				}
				cancel()
			}
		}
	}()
	return ctx, reload, func() {
		signal.Stop(sigs)
		cancel()
	}
}
