// Package keyring owns encryption at rest of sensitive fields: the master
// key (from a passphrase-protected key file or the environment, never from
// beside the database), the data keys wrapped by it and stored in the
// database, and sealing and unsealing of field values with AES-256-GCM,
// bound to their place by additional data.
//
// Key hierarchy: master key -> data keys (one active for new writes, older
// ones kept for reading) -> field values. Rotating the master key re-wraps
// the data keys in one transaction and touches no field; rotating the data
// key makes new writes use a fresh key while old values stay readable.
package keyring
