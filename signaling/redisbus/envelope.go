package redisbus

import (
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// Every message on the bus travels in an envelope sealed with
// XChaCha20-Poly1305 under the bus key, which the replicas derive from
// their shared master key. The header is in the clear and authenticated
// together with the channel the message is published on:
//
//	0         version (1)
//	1..4      key id: the first 4 bytes of SHA-256("openconsult bus key id" || key)
//	5         n, the length of the sender's replica name (1..255)
//	6..6+n    the sender's replica name
//	+16       the sender's incarnation: random, drawn when its bus starts
//	+8        sequence number, big endian, from 1 within the incarnation
//	+8        time of sealing, Unix milliseconds, big endian
//	rest      the sealed message and its 16-byte tag
//
// The 24-byte nonce is the incarnation followed by the sequence number, so
// it never repeats under one key. A receiver refuses an envelope that does
// not open, that was sealed more than maxAge ago or more than maxSkew in
// the future by its own clock, or whose incarnation and sequence number it
// accepted already (a window of replayWindow sequence numbers per
// incarnation, kept while the incarnation's messages can still be fresh).
// During a rotation of the master key a replica given the previous key as
// well seals each message twice, under the previous key then the current
// one, with one sequence number: a receiver delivers the first it opens
// and drops the other (the same sequence number under another key, or
// under a key it lacks once it accepted that number) without counting it.
// Sealing rather than only a MAC keeps the patient data the tabs exchange
// (chat, names, documents) from whoever reads the Redis.

const (
	envelopeVersion = 1
	keyIDLen        = 4
	incarnationLen  = 16
	maxSenderLen    = 255
	// fixedHeader is the header without the sender's name.
	fixedHeader = 1 + keyIDLen + 1 + incarnationLen + 8 + 8

	// maxSkew is how far ahead of the receiver's clock a sender's may be;
	// maxAge is how old a message may be on arrival: the clock skew the
	// other way plus the time it spends in transit.
	maxSkew = 5 * time.Second
	maxAge  = 10 * time.Second

	// replayWindow is how many sequence numbers back from the highest one
	// seen a receiver remembers; older ones are refused. Redis delivers a
	// sender's messages in order, so a late one is a replay.
	replayWindow = 4096
)

// Reasons an envelope is refused, as counted in metrics.
const (
	reasonMalformed = "malformed"
	reasonOtherKey  = "other_key"
	reasonForged    = "forged"
	reasonOld       = "too_old"
	reasonFuture    = "future"
	reasonReplayed  = "replayed"
	reasonHeartbeat = "forged_heartbeat"
)

var refusalReasons = []string{reasonMalformed, reasonOtherKey, reasonForged, reasonOld, reasonFuture, reasonReplayed, reasonHeartbeat}

// refusal is why an envelope was refused, and, when it opened, who sealed it.
type refusal struct {
	reason string
	sender string
	// lost is set for a genuine message that arrived too late and was never
	// delivered: the receiver has a gap, as after a break in its
	// subscription.
	lost bool
}

func (r *refusal) Error() string { return "bus message refused: " + r.reason }

// envelopeKey is the bus key's cipher and id.
type envelopeKey struct {
	aead cipher.AEAD
	id   [keyIDLen]byte
}

func newEnvelopeKey(key []byte) (envelopeKey, error) {
	if len(key) != chacha20poly1305.KeySize {
		return envelopeKey{}, fmt.Errorf("bus key: want %d bytes, have %d", chacha20poly1305.KeySize, len(key))
	}
	if allZero(key) {
		return envelopeKey{}, errors.New("bus key: all zero bytes is not a key")
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return envelopeKey{}, fmt.Errorf("bus key: %w", err)
	}
	k := envelopeKey{aead: aead}
	sum := sha256.Sum256(append([]byte("openconsult bus key id"), key...))
	copy(k.id[:], sum[:])
	return k, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// sealer seals one replica's messages: under the current key, and during a
// rotation of the master key under the previous one as well.
type sealer struct {
	keys        []envelopeKey // the current key first
	sender      string
	incarnation [incarnationLen]byte
	seq         atomic.Uint64
}

func newSealer(key envelopeKey, sender string, previous ...envelopeKey) (*sealer, error) {
	if sender == "" || len(sender) > maxSenderLen {
		return nil, fmt.Errorf("bus: replica name of %d bytes, want 1 to %d", len(sender), maxSenderLen)
	}
	s := &sealer{keys: append([]envelopeKey{key}, previous...), sender: sender}
	if _, err := rand.Read(s.incarnation[:]); err != nil {
		return nil, fmt.Errorf("bus incarnation: %w", err)
	}
	return s, nil
}

// seal returns the envelope of msg for channel, sealed at now under the
// current key.
func (s *sealer) seal(channel string, now time.Time, msg []byte) []byte {
	return s.sealWith(s.keys[0], s.seq.Add(1), channel, now, msg)
}

// sealTwins returns the envelopes of msg for channel, one per key, the
// previous key's first, all with one sequence number: a receiver delivers
// the first it can open and drops its twins without counting them.
func (s *sealer) sealTwins(channel string, now time.Time, msg []byte) [][]byte {
	seq := s.seq.Add(1)
	out := make([][]byte, len(s.keys))
	for i, k := range s.keys {
		out[len(s.keys)-1-i] = s.sealWith(k, seq, channel, now, msg)
	}
	return out
}

func (s *sealer) sealWith(key envelopeKey, seq uint64, channel string, now time.Time, msg []byte) []byte {
	n := len(s.sender)
	hdr := fixedHeader + n
	out := make([]byte, hdr, hdr+len(msg)+key.aead.Overhead())
	out[0] = envelopeVersion
	copy(out[1:], key.id[:])
	out[1+keyIDLen] = byte(n)
	p := 2 + keyIDLen
	p += copy(out[p:], s.sender)
	var nonce [chacha20poly1305.NonceSizeX]byte
	copy(nonce[:], s.incarnation[:])
	binary.BigEndian.PutUint64(nonce[incarnationLen:], seq)
	p += copy(out[p:], nonce[:])
	binary.BigEndian.PutUint64(out[p:], uint64(now.UnixMilli()))
	return key.aead.Seal(out, nonce[:], msg, additionalData(out, channel))
}

// additionalData is what the tag covers besides the message: the header
// and the channel (the header's own lengths make the split unambiguous).
func additionalData(header []byte, channel string) []byte {
	ad := make([]byte, 0, len(header)+len(channel))
	return append(append(ad, header...), channel...)
}

// header is an envelope's parsed header.
type header struct {
	keyID  []byte
	sender string
	nonce  []byte // incarnation || sequence
	seq    uint64
	millis int64
	size   int // bytes of header
}

// parseHeader reads the clear header of an envelope.
func parseHeader(b []byte) (header, bool) {
	if len(b) < fixedHeader+1 || b[0] != envelopeVersion {
		return header{}, false
	}
	n := int(b[1+keyIDLen])
	if n == 0 || n > maxSenderLen || len(b) < fixedHeader+n {
		return header{}, false
	}
	p := 2 + keyIDLen
	h := header{keyID: b[1 : 1+keyIDLen], sender: string(b[p : p+n])}
	p += n
	h.nonce = b[p : p+chacha20poly1305.NonceSizeX]
	h.seq = binary.BigEndian.Uint64(b[p+incarnationLen:])
	p += chacha20poly1305.NonceSizeX
	h.millis = int64(binary.BigEndian.Uint64(b[p:]))
	h.size = p + 8
	return h, true
}

// opener opens the envelopes a replica receives and remembers, for each
// sender's incarnation, which sequence numbers it accepted.
type opener struct {
	keys []envelopeKey // the current key, and the previous one during a rotation

	mu      sync.Mutex
	streams map[string]*stream // sender + incarnation
	swept   time.Time
}

// stream is what a receiver remembers of one sender's incarnation.
type stream struct {
	top    uint64 // highest sequence number accepted
	seen   [replayWindow / 64]uint64
	newest int64 // latest sealing time accepted, Unix ms
	// key is the id of the key of the first envelope accepted: an envelope
	// with an accepted sequence number under another key is its twin.
	key [keyIDLen]byte
}

func newOpener(keys ...envelopeKey) *opener {
	return &opener{keys: keys, streams: map[string]*stream{}}
}

// errTwin drops, uncounted, the twin of an envelope already delivered: the
// same message sealed under the other key of a rotation.
var errTwin = &refusal{reason: "twin"}

// key returns the key whose id is id.
func (o *opener) key(id []byte) (envelopeKey, bool) {
	for _, k := range o.keys {
		if string(id) == string(k.id[:]) {
			return k, true
		}
	}
	return envelopeKey{}, false
}

// open returns the sender and message of env received on channel at now,
// or a *refusal.
func (o *opener) open(channel string, now time.Time, env []byte) (string, []byte, error) {
	h, ok := parseHeader(env)
	if !ok {
		return "", nil, &refusal{reason: reasonMalformed}
	}
	key, ok := o.key(h.keyID)
	if !ok {
		if o.accepted(streamID(env, h), h.seq) {
			return "", nil, errTwin
		}
		return "", nil, &refusal{reason: reasonOtherKey}
	}
	if len(env) < h.size+key.aead.Overhead() {
		return "", nil, &refusal{reason: reasonMalformed}
	}
	msg, err := key.aead.Open(nil, h.nonce, env[h.size:], additionalData(env[:h.size], channel))
	if err != nil {
		return "", nil, &refusal{reason: reasonForged}
	}
	age := now.Sub(time.UnixMilli(h.millis))
	switch {
	case age > maxAge:
		return "", nil, &refusal{reason: reasonOld, sender: h.sender, lost: o.unseen(streamID(env, h), h.seq)}
	case age < -maxSkew:
		return "", nil, &refusal{reason: reasonFuture, sender: h.sender}
	}
	if twin, ok := o.accept(streamID(env, h), h.keyID, h.seq, h.millis, now); !ok {
		if twin {
			return "", nil, errTwin
		}
		return "", nil, &refusal{reason: reasonReplayed, sender: h.sender}
	}
	return h.sender, msg, nil
}

// streamID names the sender's incarnation: the sender's name with its
// length, and the incarnation.
func streamID(env []byte, h header) string { return string(env[1+keyIDLen : h.size-8-8]) }

// unseen reports whether seq of a stream the receiver remembers is one it
// never accepted. A replay of a forgotten stream is not reported: its
// messages were all old when it was forgotten.
func (o *opener) unseen(id string, seq uint64) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.streams[id]
	return s != nil && s.unseen(seq)
}

// accepted reports whether seq of stream id was accepted: an envelope under
// a key the receiver lacks with that sequence number is a twin.
func (o *opener) accepted(id string, seq uint64) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.streams[id]
	return s != nil && seq != 0 && seq <= s.top && s.top-seq < replayWindow && !s.unseen(seq)
}

// unseen reports whether mark(seq) would accept seq.
func (s *stream) unseen(seq uint64) bool {
	switch {
	case seq == 0:
		return false
	case seq > s.top:
		return true
	case s.top-seq >= replayWindow:
		return false
	}
	return s.seen[seq%replayWindow/64]&(1<<(seq%64)) == 0
}

// accept records seq of stream id, sealed under key id keyID, and reports
// whether it is new, and when it is not whether it is the twin of the
// envelope accepted under another key.
func (o *opener) accept(id string, keyID []byte, seq uint64, millis int64, now time.Time) (twin, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.sweep(now)
	s := o.streams[id]
	if s == nil {
		s = &stream{}
		copy(s.key[:], keyID)
		o.streams[id] = s
	}
	if !s.mark(seq) {
		return string(keyID) != string(s.key[:]), false
	}
	s.newest = max(s.newest, millis)
	return false, true
}

// mark records seq and reports whether it was not recorded before.
func (s *stream) mark(seq uint64) bool {
	if seq == 0 {
		return false
	}
	if seq > s.top {
		if seq-s.top >= replayWindow {
			clear(s.seen[:])
		} else {
			for q := s.top + 1; q < seq; q++ {
				s.seen[q%replayWindow/64] &^= 1 << (q % 64)
			}
		}
		s.top = seq
		s.seen[seq%replayWindow/64] |= 1 << (seq % 64)
		return true
	}
	if s.top-seq >= replayWindow {
		return false
	}
	word, bit := &s.seen[seq%replayWindow/64], uint64(1)<<(seq%64)
	if *word&bit != 0 {
		return false
	}
	*word |= bit
	return true
}

// sweep forgets, once per maxAge, the incarnations none of whose messages
// can still arrive fresh: a replay of them is refused as too old. The
// caller holds mu.
func (o *opener) sweep(now time.Time) {
	if now.Sub(o.swept) < maxAge {
		return
	}
	o.swept = now
	stale := now.Add(-maxAge - maxSkew).UnixMilli()
	for id, s := range o.streams {
		if s.newest < stale {
			delete(o.streams, id)
		}
	}
}
