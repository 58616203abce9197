package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/openconsult/openconsult/media"
)

// nodeSettings confine an in-process node to IPv4 UDP on loopback, where
// the participants are.
func nodeSettings() webrtc.SettingEngine {
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return se
}

// runDirect measures the SFU core without signaling: participants join a
// media.Node in this process through the same interface signal uses. The
// CPU figure then covers this whole process, participants included.
func runDirect(ctx context.Context, o options) (Result, error) {
	node, err := media.New(media.Config{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Settings: nodeSettings()})
	if err != nil {
		return Result{}, fmt.Errorf("media node: %w", err)
	}
	defer node.Close()
	env := runEnv{base: time.Now(), win: &window{}, cpuProcess: "sfuload (in-process SFU and participants)",
		usage: func() (procUsage, error) { return readUsage(os.Getpid()) }}
	rooms := plan(o)
	r, err := measure(ctx, o, env, rooms, func(ctx context.Context, m *member) error {
		m.peer.joinAt.Store(int64(time.Since(env.base)))
		sess, err := node.Join(ctx, "room"+strconv.Itoa(m.room), m.name, m.peer)
		if err != nil {
			return fmt.Errorf("join: %w", err)
		}
		if err := m.peer.start(sess); err != nil {
			return err
		}
		if o.view != [2]int{} {
			for _, other := range rooms[m.room] {
				if other != m && other.publish {
					if err := sess.View(other.name, o.view[0], o.view[1]); err != nil {
						return fmt.Errorf("view: %w", err)
					}
				}
			}
		}
		return nil
	})
	r.Mode = "direct"
	return r, err
}
