// Package procstat reads a process's CPU time and resident memory, and the
// machine's CPU use, from Linux's /proc, for the load tools' figures.
package procstat

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Usage is a process's CPU time and resident memory, from /proc.
type Usage struct {
	CPUSeconds float64
	RSSBytes   int64
}

// Read returns the CPU time and resident memory of process pid.
func Read(pid int) (Usage, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Usage{}, fmt.Errorf("cpu of %d: %w", pid, err)
	}
	cpu, err := ParseStatCPU(string(stat))
	if err != nil {
		return Usage{}, fmt.Errorf("cpu of %d: %w", pid, err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Usage{}, fmt.Errorf("memory of %d: %w", pid, err)
	}
	rss, err := ParseStatusRSS(string(status))
	if err != nil {
		return Usage{}, fmt.Errorf("memory of %d: %w", pid, err)
	}
	return Usage{CPUSeconds: cpu, RSSBytes: rss}, nil
}

// ErrFormat is returned for /proc contents of an unexpected shape.
var ErrFormat = errors.New("unexpected /proc format")

// ParseStatCPU returns user+system seconds from a /proc/PID/stat line.
// The command name in parentheses may itself hold spaces and parentheses,
// so fields are counted from the last ')'; utime and stime are the 14th
// and 15th fields of the whole line.
func ParseStatCPU(s string) (float64, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 > len(s) {
		return 0, ErrFormat
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 13 {
		return 0, ErrFormat
	}
	utime, err1 := strconv.ParseUint(fields[11], 10, 64)
	stime, err2 := strconv.ParseUint(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, ErrFormat
	}
	const ticks = 100 // USER_HZ on Linux
	return float64(utime+stime) / ticks, nil
}

// ParseStatusRSS returns VmRSS in bytes from /proc/PID/status.
func ParseStatusRSS(s string) (int64, error) {
	for line := range strings.Lines(s) {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, ErrFormat
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, ErrFormat
		}
		return kb << 10, nil
	}
	return 0, ErrFormat
}

// ReadMachineCPU returns the busy and total CPU seconds of the whole
// machine since boot, from /proc/stat.
func ReadMachineCPU() (busy, total float64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, fmt.Errorf("machine cpu: %w", err)
	}
	return ParseMachineCPU(string(b))
}

// ParseMachineCPU reads the aggregate "cpu" line of /proc/stat: user,
// nice, system, idle, iowait, irq, softirq, steal, in USER_HZ ticks.
// Idle and iowait are idle; the rest is busy.
func ParseMachineCPU(s string) (busy, total float64, err error) {
	for line := range strings.Lines(s) {
		f := strings.Fields(line)
		if len(f) < 9 || f[0] != "cpu" {
			continue
		}
		var v [8]uint64
		for i := range v {
			if v[i], err = strconv.ParseUint(f[i+1], 10, 64); err != nil {
				return 0, 0, ErrFormat
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
	return 0, 0, ErrFormat
}
