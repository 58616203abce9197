package main

import (
	"io"
	"os"
	"testing"
	"time"
)

func TestFlagsRefuseOddOrOutOfRangeValues(t *testing.T) {
	for _, args := range [][]string{{"-sockets", "3"}, {"-sockets", "0"}, {"-rate", "0"}, {"-duration", "0s"}, {"-workers", "1000"}} {
		if _, _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("parseFlags(%v) accepted", args)
		}
	}
	if o, _, err := parseFlags([]string{"-sockets", "10000"}, io.Discard); err != nil || o.sockets != 10000 {
		t.Fatalf("parseFlags(-sockets 10000) = %+v, %v", o, err)
	}
}

// TestSplitConsultsAgainstSignal runs a small load against a signal binary
// named by REPLICALOAD_SIGNAL (make build writes ./bin/signal), on the
// PostgreSQL and Redis of the development machine.
func TestSplitConsultsAgainstSignal(t *testing.T) {
	bin := os.Getenv("REPLICALOAD_SIGNAL")
	if bin == "" {
		t.Skip("REPLICALOAD_SIGNAL names no signal binary")
	}
	o, _, err := parseFlags([]string{"-signal", bin, "-sockets", "20", "-rate", "20", "-duration", "2s", "-warmup", "0s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	r, err := run(t.Context(), o, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if r.Dropped != 0 || r.Sent == 0 || r.Delivered != r.Sent || r.MaxMs <= 0 || r.Seconds != (2*time.Second).Seconds() {
		t.Fatalf("figures %+v", r)
	}
}
