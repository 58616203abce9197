package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
)

// profiler runs in the node's process, for -node-profile: start writes
// the heap profile into path.heap0 and begins a CPU profile into
// path.cpu; stop ends it and writes the heap profile into path.heap and
// the runtime's memory figures into path.memstats and the goroutines,
// counted by stack, into path.goroutines. What was allocated in
// the window is `go tool pprof -sample_index=alloc_objects -diff_base
// path.heap0 path.heap`; in use at its end, -sample_index=inuse_space.
type profiler struct{ cpu *os.File }

func (p *profiler) do(op, path string) error {
	if path == "" {
		return errors.New("profile: no path")
	}
	switch op {
	case "profile-start":
		if p.cpu != nil {
			return errors.New("profile: already started")
		}
		if err := writeHeap(path + ".heap0"); err != nil {
			return err
		}
		f, err := os.Create(path + ".cpu")
		if err != nil {
			return fmt.Errorf("profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fmt.Errorf("profile: %w", err)
		}
		p.cpu = f
		return nil
	case "profile-stop":
		if p.cpu != nil {
			pprof.StopCPUProfile()
			err := p.cpu.Close()
			p.cpu = nil
			if err != nil {
				return fmt.Errorf("profile: %w", err)
			}
		}
		if err := writeHeap(path + ".heap"); err != nil {
			return err
		}
		if err := writeGoroutines(path + ".goroutines"); err != nil {
			return err
		}
		return writeMemStats(path + ".memstats")
	}
	return fmt.Errorf("profile: unknown operation %q", op)
}

// writeHeap writes the heap profile after a collection.
func writeHeap(path string) error {
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("profile: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	return nil
}

// writeGoroutines writes the goroutines by stack, counted.
func writeGoroutines(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	if err := pprof.Lookup("goroutine").WriteTo(f, 1); err != nil {
		f.Close()
		return fmt.Errorf("profile: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	return nil
}

// writeMemStats writes where the process's memory is, in MiB: what the
// heap profile shows (objects; the spans that hold them are in use), what the collector has yet to reach or
// keeps for reuse, goroutine stacks, and what the process got from the
// system.
func writeMemStats(path string) error {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	mib := func(b uint64) float64 { return float64(b) / (1 << 20) }
	text := fmt.Sprintf("heap objects %.1f\nheap in use %.1f\nheap idle %.1f (released %.1f)\nstacks %.1f\nother runtime %.1f\nsys %.1f\ngoroutines %d\nGC cycles %d\n",
		mib(m.HeapAlloc), mib(m.HeapInuse), mib(m.HeapIdle), mib(m.HeapReleased), mib(m.StackInuse),
		mib(m.MSpanInuse+m.MCacheInuse+m.BuckHashSys+m.GCSys+m.OtherSys), mib(m.Sys), runtime.NumGoroutine(), m.NumGC)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	return nil
}
