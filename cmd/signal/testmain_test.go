package main

import (
	"os"
	"testing"

	"github.com/openconsult/openconsult/internal/cli"
)

// envRunSignal makes the test binary run as the signal server instead of
// running tests, so that a test can start the server as a process of its
// own, such as inside a network namespace.
const envRunSignal = "OPENCONSULT_TEST_RUN_SIGNAL"

func TestMain(m *testing.M) {
	if os.Getenv(envRunSignal) == "1" {
		cli.Main("signal", run)
		os.Exit(0)
	}
	os.Exit(m.Run())
}
