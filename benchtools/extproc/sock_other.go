//go:build !linux

package main

import (
	"net"
	"time"
)

// sock is a TCP connection of Go's net package; poller_other.go reads it.
type sock struct {
	net.Conn
}

func dialSock(addr string) (*sock, error) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &sock{nc}, nil
}
