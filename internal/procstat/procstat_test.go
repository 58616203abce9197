package procstat

import "testing"

func TestParseProc(t *testing.T) {
	stat := "4242 (signal (dev) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 12 0 100 123456789 5000 18446744073709551615"
	tests := []struct {
		name string
		stat string
		want float64
		ok   bool
	}{
		{"name with spaces and parentheses", stat, 3.25, true},
		{"truncated", "4242 (signal) S 1 2 3", 0, false},
		{"no name", "garbage", 0, false},
		{"not numbers", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 a b 0 0", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStatCPU(tt.stat)
			if (err == nil) != tt.ok || got != tt.want {
				t.Fatalf("ParseStatCPU = %v, %v; want %v ok=%v", got, err, tt.want, tt.ok)
			}
		})
	}
	rss := []struct {
		name, status string
		want         int64
		ok           bool
	}{
		{"kB", "Name:\tsignal\nVmPeak:\t  900 kB\nVmRSS:\t   51200 kB\nThreads:\t12\n", 51200 << 10, true},
		{"missing", "Name:\tsignal\n", 0, false},
		{"other unit", "VmRSS:\t 5 MB\n", 0, false},
	}
	for _, tt := range rss {
		t.Run("rss "+tt.name, func(t *testing.T) {
			got, err := ParseStatusRSS(tt.status)
			if (err == nil) != tt.ok || got != tt.want {
				t.Fatalf("ParseStatusRSS = %v, %v; want %v ok=%v", got, err, tt.want, tt.ok)
			}
		})
	}
}

func TestParseMachineCPU(t *testing.T) {
	tests := []struct {
		name        string
		stat        string
		busy, total float64
		ok          bool
	}{
		{"aggregate line", "cpu  100 5 45 800 50 0 0 0 0 0\ncpu0 50 2 20 400 25 0 0 0 0 0\n", 1.5, 10, true},
		{"only per-cpu lines", "cpu0 1 2 3 4 5 6 7 8\n", 0, 0, false},
		{"not numbers", "cpu  a b c d e f g h\n", 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			busy, total, err := ParseMachineCPU(tt.stat)
			if (err == nil) != tt.ok || busy != tt.busy || total != tt.total {
				t.Fatalf("ParseMachineCPU = %v, %v, %v; want %v, %v ok=%v", busy, total, err, tt.busy, tt.total, tt.ok)
			}
		})
	}
}
