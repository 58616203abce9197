package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// procUsage is a process's CPU time and resident memory, from /proc.
type procUsage struct {
	CPUSeconds float64
	RSSBytes   int64
}

func readUsage(pid int) (procUsage, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procUsage{}, fmt.Errorf("cpu of %d: %w", pid, err)
	}
	cpu, err := parseStatCPU(string(stat))
	if err != nil {
		return procUsage{}, fmt.Errorf("cpu of %d: %w", pid, err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procUsage{}, fmt.Errorf("memory of %d: %w", pid, err)
	}
	rss, err := parseStatusRSS(string(status))
	if err != nil {
		return procUsage{}, fmt.Errorf("memory of %d: %w", pid, err)
	}
	return procUsage{CPUSeconds: cpu, RSSBytes: rss}, nil
}

var errProcFormat = errors.New("unexpected /proc format")

// parseStatCPU returns user+system seconds from a /proc/PID/stat line.
// The command name in parentheses may itself hold spaces and parentheses,
// so fields are counted from the last ')'; utime and stime are the 14th
// and 15th fields of the whole line.
func parseStatCPU(s string) (float64, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 > len(s) {
		return 0, errProcFormat
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 13 {
		return 0, errProcFormat
	}
	utime, err1 := strconv.ParseUint(fields[11], 10, 64)
	stime, err2 := strconv.ParseUint(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errProcFormat
	}
	const ticks = 100 // USER_HZ on Linux
	return float64(utime+stime) / ticks, nil
}

// parseStatusRSS returns VmRSS in bytes from /proc/PID/status.
func parseStatusRSS(s string) (int64, error) {
	for line := range strings.Lines(s) {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, errProcFormat
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, errProcFormat
		}
		return kb << 10, nil
	}
	return 0, errProcFormat
}
