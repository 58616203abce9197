package main

import (
	"context"
	"errors"
)

// runSignal will drive the participants through signal -dev.
func runSignal(context.Context, options) (Result, error) {
	return Result{}, errors.New("the signaling path is not implemented yet; use -direct")
}
