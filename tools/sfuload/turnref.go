package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"time"
)

// turnRef is the relay measured right after the node, in the same run, as
// the yardstick of the side-by-side figure: turnd's CPU per relayed packet
// on a video-like load (tools/turnload, channel data of 1,100 bytes, the
// size of a forwarded video packet).
type turnRef struct {
	PacketsPerSec float64 `json:"packets_per_second"`
	LossPercent   float64 `json:"loss_percent"`
	CPUSeconds    float64 `json:"relay_cpu_seconds"`
	CPUPerMillion float64 `json:"relay_cpu_seconds_per_million_packets"`
}

// measureTurnd runs tools/turnload against the turnd binary at path for
// the same duration as the node's window, at about the node's packet rate
// (100 packets/s per allocation, 20 to 500 allocations), and returns its
// figures. It runs from the module's root, as make does.
func measureTurnd(ctx context.Context, path string, pps float64, d time.Duration) (turnRef, error) {
	allocs := min(500, max(20, int(pps/100)))
	ctx, cancel := context.WithTimeout(ctx, d+2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "run", "./tools/turnload", "-json", "-turnd", path,
		"-allocations", strconv.Itoa(allocs), "-rate", "100", "-size", "1100", "-duration", d.String())
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return turnRef{}, fmt.Errorf("turnload: %w: %s", err, bytes.TrimSpace(errOut.Bytes()))
	}
	var rs []turnRef
	if err := json.Unmarshal(out.Bytes(), &rs); err != nil {
		return turnRef{}, fmt.Errorf("turnload output: %w", err)
	}
	if len(rs) == 0 || rs[0].CPUPerMillion <= 0 {
		return turnRef{}, errors.New("turnload measured no relayed packets")
	}
	return rs[0], nil
}

// addTurnRef fills r's side-by-side figures from turnd's.
func addTurnRef(r *Result, t turnRef) {
	r.TurndPacketsPerSec = t.PacketsPerSec
	r.TurndCPUPerMillion = t.CPUPerMillion
	if r.CPUPerMillion > 0 {
		r.CPURatioVsTurnd = r.CPUPerMillion / t.CPUPerMillion
	}
}
