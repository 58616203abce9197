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

// readMachineCPU returns the busy and total CPU seconds of the whole
// machine since boot, from /proc/stat.
func readMachineCPU() (busy, total float64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, fmt.Errorf("machine cpu: %w", err)
	}
	return parseMachineCPU(string(b))
}

// parseMachineCPU reads the aggregate "cpu" line of /proc/stat: user,
// nice, system, idle, iowait, irq, softirq, steal, in USER_HZ ticks.
// Idle and iowait are idle; the rest is busy.
func parseMachineCPU(s string) (busy, total float64, err error) {
	for line := range strings.Lines(s) {
		f := strings.Fields(line)
		if len(f) < 9 || f[0] != "cpu" {
			continue
		}
		var v [8]uint64
		for i := range v {
			if v[i], err = strconv.ParseUint(f[i+1], 10, 64); err != nil {
				return 0, 0, errProcFormat
			}
		}
		var sum uint64
		for _, x := range v {
			sum += x
		}
		idle := v[3] + v[4]
		const ticks = 100
		return float64(sum-idle) / ticks, float64(sum) / ticks, nil
	}
	return 0, 0, errProcFormat
}
