//go:build !linux

package main

// realtime is Linux only: the generator runs at normal priority here.
func realtime() bool { return false }
