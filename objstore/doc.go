// Package objstore keeps large encrypted objects (shared documents, and
// later consult recordings) outside the database, in a Backend: the local
// filesystem under the data directory (the default, FS) or Azure Blob
// Storage (package objstore/azblob).
//
// Store encrypts everything before it reaches a Backend: each object gets
// a random 256-bit data key, its bytes are sealed with AES-256-GCM in
// fixed-size chunks whose index and final-chunk flag are authenticated
// (so a reordered, swapped, truncated or extended object does not open),
// and the data key itself is sealed by the caller's Sealer (the keyring)
// and kept in the database next to the row that names the object. A
// Backend therefore only ever sees ciphertext under random names.
//
// Reader decrypts only the chunks a read needs, one at a time, so a
// download of any size and any byte range takes memory for two chunks.
//
// The package is a leaf: it knows nothing of documents or recordings,
// which name their objects and keep the sealed keys.
package objstore
