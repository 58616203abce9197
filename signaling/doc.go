// Package signaling owns the live side of a consult: the room with its lobby
// and admitted members, the rights each member holds, the JSON wire
// protocol over one WebSocket per browser tab, relaying of offers, answers
// and ICE candidates between admitted members, and chat.
//
// The server enforces the lobby: a member waiting to be admitted receives no
// roster, no chat and no media signaling, and cannot send any of them. Every
// inbound message passes one dispatcher that checks its size, its type and
// the sender's right before a handler runs; a bad message gets an error
// message with a stable code.
//
// Names that people type (display names, chat text) are PHI: they travel to
// the members who may see them and to the chat log, never into process logs
// or metrics, which carry member and consult identifiers only.
package signaling
