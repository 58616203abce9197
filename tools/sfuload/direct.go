package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/openconsult/openconsult/internal/procstat"
	"github.com/openconsult/openconsult/media"
)

// directSession is a member's session on a node, as a participant drives
// it without signaling.
type directSession interface {
	nodeSide
	View(publisherID string, width, height int) error
}

// runDirect measures the SFU core without signaling: participants join a
// media node through the media.Node interface signal uses. The node runs
// in a child process, so the CPU and memory figures are its own; with
// o.inProcess (for tests, whose binary cannot serve as the child) it runs
// in this process and the figures include the participants.
func runDirect(ctx context.Context, o options) (Result, error) {
	env := runEnv{base: time.Now(), win: &window{}}
	var join func(ctx context.Context, room, member string, p *peer) (directSession, error)
	if o.inProcess {
		node, err := media.New(nodeConfig(o.udpListen, o.ownTransport))
		if err != nil {
			return Result{}, fmt.Errorf("media node: %w", err)
		}
		defer node.Close()
		join = func(ctx context.Context, room, member string, p *peer) (directSession, error) {
			return node.Join(ctx, room, member, p)
		}
		var recs recCounters
		env.record = func(ctx context.Context, room string) error { return startRecording(ctx, node, room, &recs) }
		env.recStats = func() (recTotals, error) { return recs.totals(), nil }
		env.cpuProcess = "sfuload itself (in-process SFU and participants)"
		env.usage = func() (procstat.Usage, error) { return procstat.Read(os.Getpid()) }
		env.goroutines = func() (int, error) { return runtime.NumGoroutine(), nil }
		env.held = readHeldMemory
	} else {
		child, err := startNodeProc(o.udpListen, o.ownTransport, o.nodeProfile != "")
		if err != nil {
			return Result{}, err
		}
		defer child.stop()
		join = child.join
		env.record, env.recStats = child.record, child.recStats
		env.cpuProcess = "the media node alone (sfuload -serve-node child process)"
		env.usage = func() (procstat.Usage, error) { return procstat.Read(child.pid()) }
		env.goroutines = child.goroutines
		env.profile = child.profile
		env.mallocs = child.mallocs
		env.held = child.held
	}
	rooms := plan(o)
	env.roomName = func(room int) string { return fmt.Sprintf("room%d", room) }
	id := func(m *member) string { return fmt.Sprintf("r%d-%s", m.room, m.name) }
	r, err := measure(ctx, o, env, rooms, func(ctx context.Context, m *member) error {
		m.peer.joinAt.Store(int64(m.peer.since()))
		sess, err := join(ctx, env.roomName(m.room), id(m), m.peer)
		if err != nil {
			return fmt.Errorf("join: %w", err)
		}
		if err := m.peer.start(sess); err != nil {
			return err
		}
		if o.view == [2]int{} {
			return nil
		}
		for _, other := range rooms[m.room] {
			if other != m && other.publish {
				if err := sess.View(id(other), o.view[0], o.view[1]); err != nil {
					return fmt.Errorf("view: %w", err)
				}
			}
		}
		return nil
	})
	r.Mode = "direct"
	return r, err
}
