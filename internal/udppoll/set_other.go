//go:build !linux

package udppoll

import "net/netip"

// Set is not available on this system.
type Set[T any] struct{}

// New returns ErrUnsupported.
func New[T any](int, Handler[T]) (*Set[T], error) { return nil, ErrUnsupported }

// Listen returns ErrUnsupported.
func (*Set[T]) Listen(netip.AddrPort, T) (*Socket[T], error) { return nil, ErrUnsupported }

// Close does nothing.
func (*Set[T]) Close() error { return nil }

// Socket is not available on this system.
type Socket[T any] struct{}

// LocalAddr returns the zero address.
func (*Socket[T]) LocalAddr() netip.AddrPort { return netip.AddrPort{} }

// WriteToUDPAddrPort returns ErrUnsupported.
func (*Socket[T]) WriteToUDPAddrPort([]byte, netip.AddrPort) (int, error) { return 0, ErrUnsupported }

// Connected returns ErrUnsupported.
func (*Socket[T]) Connected(netip.AddrPort) (*Socket[T], error) { return nil, ErrUnsupported }

// RemoteAddr returns the zero address.
func (*Socket[T]) RemoteAddr() netip.AddrPort { return netip.AddrPort{} }

// SetBuffers returns ErrUnsupported.
func (*Socket[T]) SetBuffers(int, int) error { return ErrUnsupported }

// Close does nothing.
func (*Socket[T]) Close() error { return nil }

// Out is not available on this system.
type Out[T any] struct{}

// Send returns ErrUnsupported.
func (*Out[T]) Send(*Socket[T], []byte, netip.AddrPort) error { return ErrUnsupported }
