// Package udppoll owns sets of UDP sockets whose datagrams are read by a
// few goroutines rather than one goroutine per socket.
//
// A TURN relay holds one socket per allocation, each carrying a few dozen
// to a few hundred datagrams a second. With a goroutine per socket every
// datagram costs a goroutine wake-up through Go's network poller and a
// read that fails with EAGAIN before the goroutine parks again. A Set
// instead registers its sockets with epoll instances of its own, each
// watched by one goroutine through Go's poller: one wake-up serves every
// socket that became readable meanwhile, each ready socket costs one
// recvmmsg of up to 32 datagrams, and what handlers send through the
// loop's [Out] leaves with one sendmmsg per socket and round. This is the event loop C relays such as coturn run, with the
// goroutine parked in Go's poller instead of blocked in epoll_wait, which
// would tie up a thread and keep the runtime's monitor awake.
//
// [Socket.Connected] adds to a socket a second one on its address,
// connected to one remote address: sends to it skip the route lookup,
// and its datagrams arrive there, while everyone else's still arrive on
// the first.
//
// Sets exist on Linux; elsewhere [New] returns [ErrUnsupported] and callers
// keep their per-socket sockets.
package udppoll

import (
	"errors"
	"net/netip"
)

// ErrUnsupported is returned by New where the system has no epoll.
var ErrUnsupported = errors.New("udppoll: not supported on this system")

// Handler receives each datagram, on the goroutine of its socket's loop,
// with the value the socket was opened with. buf holds Headroom free bytes
// and then the datagram, so that a header can be put in front of it
// without a copy; it is valid only during the call. A handler must not
// block and must not close a socket of the set.
//
// out is the loop's queue of datagrams to send: what a handler sends
// through it on a socket of the set goes out once the loop has read the
// datagrams that were waiting, several of one socket in one sendmmsg.
type Handler[T any] func(v T, buf []byte, from netip.AddrPort, out *Out[T])

// Headroom is the number of free bytes in front of every datagram handed
// to a Handler.
const Headroom = 16

// MaxDatagram is the size of each of a loop's read buffers after the
// headroom. A longer datagram is dropped: media and TURN messages are
// never near it (pion/turn itself reads at most 1600 bytes), and a loop
// reads many datagrams at once into buffers of this size.
const MaxDatagram = 8192
