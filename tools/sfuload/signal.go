package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/openconsult/openconsult/internal/procstat"
	"github.com/openconsult/openconsult/tools/internal/devsignal"
)

// hasFlag reports whether the signal binary knows a flag, from its -h.
func hasFlag(path, name string) bool {
	out, _ := exec.Command(path, "-h").CombinedOutput()
	return strings.Contains(string(out), "-"+name+" ") || strings.Contains(string(out), "-"+name+"\n")
}

// signalArgs are the flags the scenario needs: the move to the node at
// three members (the default) for consults, at two for grand rounds (the
// smallest the server allows, so the presenter's first viewer moves the
// room), and room on the node for everyone.
func signalArgs(o options, participants int) []string {
	args := []string{"-sfu-max-participants", strconv.Itoa(participants + 10)}
	if o.scenario == "grandrounds" {
		args = append(args, "-sfu-min-participants", "2")
	}
	return append(args, o.signalArgs...)
}

// runSignal measures the SFU embedded in a `signal -dev` child, reached
// through the real signaling path: a clinician account with TOTP,
// consults and their patient links, guests who redeem them and wait in
// the lobby until the clinician's socket admits them, and the move to
// the node when enough members are admitted.
func runSignal(ctx context.Context, o options) (Result, error) {
	if !hasFlag(o.signal, "sfu-min-participants") {
		return Result{}, fmt.Errorf("%s has no media node signaling (no -sfu-min-participants flag); build the current signal with make build, or use -direct", o.signal)
	}
	rooms := plan(o)
	participants := 0
	for _, ms := range rooms {
		participants += len(ms)
	}
	dir, err := os.MkdirTemp("", "sfuload-signal-")
	if err != nil {
		return Result{}, fmt.Errorf("data directory: %w", err)
	}
	defer os.RemoveAll(dir)
	clinician, err := devsignal.SetUpAccounts(ctx, o.signal, dir)
	if err != nil {
		return Result{}, err
	}
	// A fresh process for the measurement: the accounts' password hashing
	// (argon2id) leaves tens of MiB of freed heap that an idle server
	// keeps resident, which would swamp the memory the sessions take.
	// The clinician's session lives in the database and survives.
	sig, err := devsignal.StartLean(ctx, o.signal, dir, signalArgs(o, participants))
	if err != nil {
		return Result{}, err
	}
	defer sig.Stop()
	clinician = sig.Reuse(clinician)
	defer clinician.CloseIdleConnections()
	states := make([]*roomState, len(rooms))
	for i, ms := range rooms {
		c, err := sig.CreateConsult(ctx, clinician, fmt.Sprintf("load %d", i+1))
		if err != nil {
			return Result{}, err
		}
		states[i] = newRoomState(c, len(ms))
	}
	var staff []*http.Cookie
	if jar := clinician.Jar; jar != nil {
		staff = jar.Cookies(sig.Public)
	}

	var mu sync.Mutex
	var sockets []*wsMember
	defer func() {
		for _, w := range sockets {
			w.close()
		}
	}()
	guests := 0
	env := runEnv{base: time.Now(), win: &window{}, cpuProcess: "the signal -dev process (signaling and the in-process SFU)",
		usage: func() (procstat.Usage, error) { return procstat.Read(sig.PID()) }}
	r, err := measure(ctx, o, env, rooms, func(ctx context.Context, m *member) error {
		host := m == rooms[m.room][0]
		w := &wsMember{m: m, host: host, room: states[m.room], view: o.view, started: make(chan error, 1)}
		mu.Lock()
		sockets = append(sockets, w)
		source := guests
		if !host {
			guests++
		}
		mu.Unlock()
		cookies := staff
		if !host {
			ck, err := sig.JoinAsGuest(ctx, w.room.consult.Link, m.name, source)
			if err != nil {
				return err
			}
			cookies = []*http.Cookie{ck}
			select { // the host admits from its socket
			case <-w.room.hostUp:
			case <-time.After(o.joinTimeout):
				return fmt.Errorf("the host's socket not open within %s", o.joinTimeout)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err := w.connect(ctx, sig, cookies, source); err != nil {
			return err
		}
		select {
		case err := <-w.started:
			return err
		case <-time.After(o.joinTimeout):
			return fmt.Errorf("not moved to the media node within %s", o.joinTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	r.Mode = "signal"
	return r, err
}
