package main

import "time"

// nowUnix is a variable so tests can fix the clock.
var nowUnix = func() int64 { return time.Now().Unix() }
