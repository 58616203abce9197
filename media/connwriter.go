package media

import "sync"

// writeBurst is how many packets the connection writer takes from one
// track's queue before it turns to the next: a keyframe burst of video
// does not hold audio back for long.
const writeBurst = 16

// connWriter is the one writer goroutine of a subscriber's connection:
// it writes what every track forwarded to the subscriber queued, each
// track keeping its own queue, so a track's overflow drops that track's
// packets only, and a subscriber whose transport stalls stalls its own
// writer, nobody else's. Publishers' readers queue and wake it, never
// blocking.
type connWriter struct {
	sfu  *SFU
	wake chan struct{} // one pending wake-up at most

	mu    sync.Mutex
	downs []*downTrack // the connection's tracks; stopped ones leave on the writer's next pass
}

func newConnWriter(sfu *SFU) *connWriter {
	return &connWriter{sfu: sfu, wake: make(chan struct{}, 1)}
}

// add has the writer write d's queue.
func (w *connWriter) add(d *downTrack) {
	w.mu.Lock()
	w.downs = append(w.downs, d)
	w.mu.Unlock()
}

// signal wakes the writer; it never blocks.
func (w *connWriter) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run writes until done is closed, then lets go of every track's queue.
func (w *connWriter) run(done <-chan struct{}) {
	var downs []*downTrack
	for {
		select {
		case <-w.wake:
		case <-done:
			w.mu.Lock()
			downs = append(downs[:0], w.downs...)
			w.downs = nil
			w.mu.Unlock()
			for _, d := range downs {
				d.release()
			}
			return
		}
		for {
			w.mu.Lock()
			downs = append(downs[:0], w.downs...)
			w.mu.Unlock()
			if !w.pass(downs) {
				break
			}
		}
	}
}

// pass writes up to writeBurst packets of each track, reporting whether
// it wrote any; a stopped track is released and taken off the list.
func (w *connWriter) pass(downs []*downTrack) bool {
	busy := false
	for _, d := range downs {
		select {
		case <-d.done:
			w.remove(d)
			d.release()
			continue
		default:
		}
		for range writeBurst {
			select {
			case q := <-d.queue:
				d.write(q.p, q.resume)
				w.sfu.pool.release(q.p)
				busy = true
				continue
			default:
			}
			break
		}
	}
	return busy
}

func (w *connWriter) remove(d *downTrack) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, o := range w.downs {
		if o == d {
			w.downs = append(w.downs[:i], w.downs[i+1:]...)
			return
		}
	}
}
