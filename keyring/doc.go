// Package keyring owns encryption at rest of sensitive fields (TOTP secrets,
// chat text, display names, recovery e-mail addresses and the like): the
// master key, the data keys it wraps, and sealing and unsealing of field
// values with AES-256-GCM, each bound by additional data to its table,
// column and row.
//
// Key hierarchy:
//
//	master key (memory only; from SIGNAL_MASTER_KEY or a key file)
//	  └─ wraps data keys (stored wrapped in the database; one active)
//	       └─ seal field values (version | key id | nonce | ciphertext)
//
// The master key comes from the environment (MasterKeyFromBase64) or from
// a key file sealed under a passphrase with argon2id (NewKeyFile,
// OpenKeyFile, ChangePassphrase); it is never stored beside the database in
// clear, so a copy of the database or its backups alone reveals no field.
//
// Rotation needs no downtime. RotateMaster re-wraps the data keys under a
// new master key in one transaction and leaves every sealed value as it is,
// so running servers keep working. RotateDataKey starts a new data key for
// new values; older ones stay readable, and other processes load it the
// first time they meet a value sealed under it (or at Refresh).
//
// The package reaches the database only through Storage, which package
// store implements.
package keyring
